// The built program, as `npm start` runs it: bin/buildd.js, which imports dist/cli.js
// (bundled from src/ by package.json's "prepare" script, which `npm ci` runs). A builder
// started from dist/ must be the code in src/: a dist/ older than any source file is
// rebuilt with that same script, and if that fails the start is refused, saying why,
// rather than measuring or testing yesterday's program.

import { spawnSync } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
/** What `npm start` runs (with `serve --config FILE`). */
export const START_SCRIPT = path.join(ROOT, "bin/buildd.js");
const BUNDLE = path.join(ROOT, "dist/cli.js");
const SOURCES = path.join(ROOT, "src");

function newestMtime(dir: string): number {
  let newest = 0;
  for (const entry of fs.readdirSync(dir, { withFileTypes: true })) {
    const full = path.join(dir, entry.name);
    const m = entry.isDirectory() ? newestMtime(full) : fs.statSync(full).mtimeMs;
    if (m > newest) newest = m;
  }
  return newest;
}

function isCurrent(): boolean {
  return fs.existsSync(BUNDLE) && fs.statSync(BUNDLE).mtimeMs >= newestMtime(SOURCES);
}

export interface DistCheck {
  /** This call found dist/ missing or older than src/ and built it again. */
  readonly rebuilt: boolean;
}

// Checked once per process: one run measures one build of the program, even if the
// sources change while it runs.
let checked = false;

/**
 * Make sure dist/ is built from the current src/, rebuilding it with `npm run prepare`
 * (the esbuild command `npm ci` runs) if not. Throws, with the build's own output, if it
 * cannot be built.
 */
export function ensureDist(): DistCheck {
  if (checked || isCurrent()) {
    checked = true;
    return { rebuilt: false };
  }
  const r = spawnSync("npm", ["run", "--silent", "prepare"], { cwd: ROOT, encoding: "utf8" });
  const said = `${r.stdout ?? ""}${r.stderr ?? ""}`.trim();
  if (r.error || r.status !== 0 || !fs.existsSync(BUNDLE)) {
    throw new Error(
      `dist/ is missing or older than src/, and rebuilding it with \`npm run prepare\` failed ` +
        `(${r.error ? r.error.message : `exit status ${r.status}`}); a builder started from ` +
        `dist/ would not run the current sources, so it is not started.` +
        (said ? `\n${said}` : ""),
    );
  }
  checked = true;
  return { rebuilt: true };
}
