// A shell step's environment, by Buildbot's rules, starting from the worker's own build
// environment (never the daemon's process.env, which may name our config and secrets):
//   - a value None removes the variable;
//   - a list is joined with ":";
//   - "${name}" in a value is replaced by the worker environment's value ("" if unset);
//   - PYTHONPATH given by the step keeps the worker's after it;
//   - variables the step does not name are the worker's.

import { WireError, type WireMap } from "./wire.js";

const SUBSTITUTION = /\$\{([0-9a-zA-Z_]*)\}/g;

export function stepEnvironment(
  base: Readonly<Record<string, string>>,
  given: WireMap | null,
): Record<string, string> {
  if (given === null) return { ...base };
  const removed = new Set(
    Object.entries(given)
      .filter(([, v]) => v === null || v === undefined)
      .map(([k]) => k),
  );
  const env: Record<string, string> = Object.fromEntries(
    Object.entries(base).filter(([k]) => !removed.has(k)),
  );
  for (const [key, raw] of Object.entries(given)) {
    if (raw === null || raw === undefined) continue;
    let value: string;
    if (typeof raw === "string") value = raw;
    else if (Array.isArray(raw) && raw.every((x) => typeof x === "string")) {
      value = raw.join(":");
    } else {
      throw new WireError(`env: the value of ${key} must be a string or a list of strings`);
    }
    if (key === "PYTHONPATH") value += ":${PYTHONPATH}";
    env[key] = value.replace(SUBSTITUTION, (_m, name: string) => base[name] ?? "");
  }
  return env;
}

/** The header the reference worker writes when logEnviron is on: one "  NAME=value" a line. */
export function environmentHeader(env: Readonly<Record<string, string>>): string {
  const names = Object.keys(env).sort();
  return ` environment:\n${names.map((n) => `  ${n}=${env[n]}\n`).join("")}`;
}
