// Probes: does a declared capability really work? A worker that says it has PostgreSQL 15
// but whose cluster is down (or is 16) would accept builds that can only fail, so what
// a worker declares is checked at start-up and periodically.
//
// - `probe="command"`: run with /bin/sh -c, in the environment the capability gives a
//   build; exit 0 means available.
// - postgresql without a probe: connect with the declared properties and compare the
//   server's major version with the declared one.
// - anything else: available as declared (nothing to check).
//
// Probes run through the process runner, each as PID 1 of its own PID namespace, so a
// timeout or the registry closing kills the probe and everything it started (even a
// `setsid` daemon); nothing here blocks the event loop.

import path from "node:path";
import { DEFAULT_PATH } from "../process/environment.js";
import type { CaptureResult, ProcessRunner } from "../process/runner.js";
import { scrubText } from "../log/scrub.js";
import { capabilityEnv } from "./env.js";
import type { CapabilityDecl, CapabilityEnvMap } from "../config/capabilities.js";

export interface ProbeResult {
  readonly available: boolean;
  /** Why not, in one line; "" when available. */
  readonly reason: string;
}

export interface ProbeOptions {
  readonly timeoutMs: number;
  readonly custom: CapabilityEnvMap;
  readonly signal?: AbortSignal;
  readonly runner: ProcessRunner;
}

function runCommand(
  argv: readonly string[],
  env: Record<string, string>,
  opts: ProbeOptions,
): Promise<CaptureResult> {
  return opts.runner.capture({
    argv,
    env,
    cwd: "/",
    timeoutMs: opts.timeoutMs,
    signal: opts.signal,
  });
}

/**
 * One line of a command's output, shortened: what a person needs to see. A probe script
 * usually ends with its complaint; psql starts with it ("psql: error: connection …"),
 * followed by a generic hint.
 */
function oneLine(output: string, which: "first" | "last"): string {
  const lines = output
    .split("\n")
    .map((l) => l.trim())
    .filter((l) => l !== "");
  const line = (which === "first" ? lines[0] : lines.at(-1)) ?? "";
  return scrubText(line.length > 300 ? `${line.slice(0, 300)}…` : line);
}

function failure(
  what: string,
  r: CaptureResult,
  timeoutMs: number,
  which: "first" | "last",
): string {
  if (r.timedOut) return `${what} timed out after ${timeoutMs / 1000} s`;
  if (r.error !== null) {
    return r.exitCode === null && r.signal === null
      ? `${what} could not be started: ${r.error}`
      : `${what} failed: ${r.error}`;
  }
  const how = r.signal !== null ? `was killed by ${r.signal}` : `exited with status ${r.exitCode}`;
  const said = oneLine(r.output, which);
  return `${what} ${how}${said ? `: ${said}` : ""}`;
}

function baseEnv(decl: CapabilityDecl, custom: CapabilityEnvMap): Record<string, string> {
  return { PATH: DEFAULT_PATH, HOME: "/", LANG: "C.UTF-8", ...capabilityEnv([decl], custom) };
}

async function probeCommand(
  decl: CapabilityDecl,
  command: string,
  opts: ProbeOptions,
): Promise<ProbeResult> {
  const env = baseEnv(decl, opts.custom);
  const r = await runCommand(["/bin/sh", "-c", command], env, opts);
  if (r.exitCode === 0 && r.error === null && !r.timedOut) return { available: true, reason: "" };
  return { available: false, reason: failure("probe", r, opts.timeoutMs, "last") };
}

/** The major version a declared PostgreSQL version names: "15" and "15.4" → 15. */
export function postgresMajor(version: string): number | null {
  const m = /^(?:\d+:)?(\d+)/.exec(version);
  return m ? Number(m[1]) : null;
}

async function probePostgres(decl: CapabilityDecl, opts: ProbeOptions): Promise<ProbeResult> {
  const p = decl.properties;
  const env: Record<string, string> = {
    ...baseEnv(decl, opts.custom),
    PGCONNECT_TIMEOUT: "5",
  };
  // Connect exactly as declared, whatever a custom mapping does with these names.
  for (const [variable, property] of [
    ["PGHOST", "host"],
    ["PGPORT", "port"],
    ["PGUSER", "user"],
    ["PGPASSWORD", "password"],
  ] as const) {
    const v = p[property];
    if (v !== undefined && v !== "") env[variable] = v;
  }
  const psql = p["bin"] ? path.join(p["bin"], "psql") : "psql";
  const argv = [
    psql,
    "--no-psqlrc",
    "--no-password",
    "--tuples-only",
    "--no-align",
    "--dbname",
    p["database"] || "postgres",
    "--command",
    "SHOW server_version_num",
  ];
  const r = await runCommand(argv, env, opts);
  if (r.exitCode !== 0 || r.error !== null || r.timedOut) {
    return {
      available: false,
      reason: failure("connecting with psql", r, opts.timeoutMs, "first"),
    };
  }
  const num = Number(r.output.trim());
  if (!Number.isInteger(num) || num <= 0) {
    return {
      available: false,
      reason: `unexpected answer to SHOW server_version_num: ${oneLine(r.output, "first")}`,
    };
  }
  const actual = Math.floor(num / 10000);
  const declared = decl.version === null ? null : postgresMajor(decl.version);
  if (declared !== null && declared !== actual) {
    return {
      available: false,
      reason: `the server is PostgreSQL ${actual} (server_version_num ${num}), declared ${decl.version}`,
    };
  }
  return { available: true, reason: "" };
}

export async function probeCapability(
  decl: CapabilityDecl,
  opts: ProbeOptions,
): Promise<ProbeResult> {
  const command = decl.properties["probe"];
  if (command !== undefined) return probeCommand(decl, command, opts);
  if (decl.name === "postgresql") return probePostgres(decl, opts);
  return { available: true, reason: "" };
}
