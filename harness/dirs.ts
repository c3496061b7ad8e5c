// The directories of a builder under test: a temporary root with its buildd.conf, state
// directory and file cache. Shared by the in-process builder (builder.ts) and the child
// processes (process.ts), which reuse the same directories across restarts.

import fs from "node:fs";
import os from "node:os";
import path from "node:path";

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

/** Write a temporary buildd.conf; `sections` override or add keys, `raw` adds line sections. */
export function makeBuilderDirs(
  sections: ConfSections = {},
  dir?: string,
  raw: RawSections = {},
): BuilderDirs {
  const root = dir ?? fs.mkdtempSync(path.join(os.tmpdir(), "buildd-test-"));
  const merged: ConfSections = {
    ...sections,
    builder: {
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
  const text = Object.entries(merged)
    .map(
      ([name, keys]) =>
        `[${name}]\n${Object.entries(keys)
          .map(([k, v]) => `${k} = ${v}`)
          .join("\n")}\n`,
    )
    .join("\n");
  const rawText = Object.entries(raw)
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
