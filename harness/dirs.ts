// The directories of a builder under test: a temporary root with its buildd.conf, state
// directory and file cache. Shared by the in-process builder (builder.ts) and the child
// processes (process.ts), which reuse the same directories across restarts.

import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { isSecretProperty } from "../src/protocol/names.js";

export type ConfSections = Record<string, Record<string, string | number>>;
/** Sections written line by line, e.g. {capabilities: ["postgresql 15 port=5432"]}. */
export type RawSections = Record<string, readonly string[]>;

export interface BuilderDirs {
  /** Temporary root holding buildd.conf, var/ and var/filecache/. */
  readonly dir: string;
  readonly configFile: string;
  readonly filecache: string;
  readonly statedir: string;
}

/** `[section] key = value` text of sections. */
function iniText(sections: ConfSections): string {
  return Object.entries(sections)
    .map(
      ([name, keys]) =>
        `[${name}]\n${Object.entries(keys)
          .map(([k, v]) => `${k} = ${v}`)
          .join("\n")}\n`,
    )
    .join("\n");
}

/** Words of a [capabilities] line (a double-quoted value stays one word). */
const lineWords = (line: string): string[] => line.match(/(?:[^\s"]+|"(?:\\.|[^"\\])*")+/g) ?? [];

/**
 * Split what a test configures into buildd.conf and the secrets file, as buildd requires:
 * `[auth] password` and a capability line's secret properties (password=, token=, …) go
 * to secrets.conf (mode 0600), named by `[builder] secrets`.
 */
function splitSecrets(
  sections: ConfSections,
  raw: RawSections,
): { sections: ConfSections; raw: RawSections; secrets: string } {
  const auth = { ...sections["auth"] };
  const password = auth["password"];
  delete auth["password"];
  const secretSections: ConfSections = password === undefined ? {} : { auth: { password } };
  const publicLines: string[] = [];
  const secretLines: string[] = [];
  for (const line of raw["capabilities"] ?? []) {
    const words = lineWords(line);
    const isSecret = (w: string): boolean => w.includes("=") && isSecretProperty(w.split("=")[0]!);
    const head = words.filter((w, i) => i < 2 && !w.includes("="));
    const secret = words.filter(isSecret);
    publicLines.push(words.filter((w) => !isSecret(w)).join(" "));
    if (secret.length > 0) secretLines.push([...head, ...secret].join(" "));
  }
  const secrets =
    iniText(secretSections) +
    (secretLines.length > 0 ? `\n[capabilities]\n${secretLines.join("\n")}\n` : "");
  const keptRaw: RawSections = raw["capabilities"] ? { ...raw, capabilities: publicLines } : raw;
  return { sections: { ...sections, auth }, raw: keptRaw, secrets };
}

/** Write a temporary buildd.conf; `sections` override or add keys, `raw` adds line sections. */
export function makeBuilderDirs(
  sections: ConfSections = {},
  dir?: string,
  raw: RawSections = {},
): BuilderDirs {
  const root = dir ?? fs.mkdtempSync(path.join(os.tmpdir(), "buildd-test-"));
  const split = splitSecrets(sections, raw);
  const secretsFile = path.join(root, "secrets.conf");
  if (split.secrets !== "") fs.writeFileSync(secretsFile, split.secrets, { mode: 0o600 });
  const merged: ConfSections = {
    ...split.sections,
    builder: {
      ...(split.secrets !== "" ? { secrets: "secrets.conf" } : {}),
      bindhost: "127.0.0.1",
      bindport: 0,
      filecache: "var/filecache",
      statedir: "var",
      ...sections["builder"],
    },
    log: { level: "debug", ...sections["log"] },
    // Tests stop builders with builds still running: abort those at once rather than
    // waiting out the production grace (the shutdown tests set their own).
    build: { shutdown_grace: 0, ...sections["build"] },
  };
  if (Object.keys(merged["auth"] ?? {}).length === 0) delete merged["auth"];
  const text = iniText(merged);
  const rawText = Object.entries(split.raw)
    .map(([name, lines]) => `\n[${name}]\n${lines.map((l) => `${l}\n`).join("")}`)
    .join("");
  const configFile = path.join(root, "buildd.conf");
  fs.writeFileSync(configFile, text + rawText);
  return {
    dir: root,
    configFile,
    filecache: path.join(root, "var/filecache"),
    statedir: path.join(root, "var"),
  };
}
