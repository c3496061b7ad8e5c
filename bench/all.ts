// `npm run bench`: every benchmark in sequence, each in its own process (so one's
// processes, memory and event loop never affect the next), then a summary of the
// targets from the JSON files they wrote. Exits non-zero if a benchmark failed to run
// (a missed target is a result, not a failure). Meant to finish in under ten minutes.
//
// Run a subset: npm run bench -- rpc lifecycle

import { spawn, type ChildProcess } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import os from "node:os";
import { fmt, loadAverage, RESULTS_DIR, ROOT, type Figure } from "./lib.js";

const ALL = [
  "rpc",
  "rpc-under-download",
  "ensurepresent",
  "filecache",
  "logtail",
  "lifecycle",
  "journal",
  "web-poll",
  "startup",
  "unpack",
  "buildbot",
];

const chosen = process.argv.slice(2);
const unknown = chosen.filter((n) => !ALL.includes(n));
if (unknown.length > 0) {
  console.error(`unknown benchmark(s): ${unknown.join(", ")}; known: ${ALL.join(", ")}`);
  process.exit(2);
}
const names = chosen.length > 0 ? chosen : ALL;

let current: ChildProcess | null = null;
for (const signal of ["SIGINT", "SIGTERM"] as const) {
  process.on(signal, () => {
    // The benchmark cleans up on the signal; wait for it, then stop.
    current?.kill(signal);
    process.exitCode = 130;
    names.length = 0;
  });
}

function run(name: string): Promise<number> {
  return new Promise((resolve) => {
    const child = spawn(
      process.execPath,
      ["--import", "tsx", path.join(ROOT, "bench", `${name}.ts`)],
      {
        cwd: ROOT,
        stdio: "inherit",
      },
    );
    current = child;
    child.once("exit", (code, signal) => {
      current = null;
      resolve(code ?? (signal ? 128 : 1));
    });
  });
}

const started = Date.now();
const loadAtStart = loadAverage().text;
const failed: string[] = [];
const summary: string[] = [];
for (let i = 0; i < names.length; i++) {
  const name = names[i]!;
  console.log(`\n=== ${name} (${i + 1}/${names.length}) ===`);
  const t0 = Date.now();
  const code = await run(name);
  if (code !== 0) failed.push(`${name} (exit ${code})`);
  const file = path.join(RESULTS_DIR, `${name}.json`);
  if (fs.existsSync(file) && fs.statSync(file).mtimeMs >= t0) {
    const data = JSON.parse(fs.readFileSync(file, "utf8")) as { figures: Figure[] };
    for (const f of data.figures) {
      if (f.target) {
        summary.push(
          `${f.target.met ? "MET    " : "NOT MET"} ${f.name}: ${fmt(f.value)} ${f.unit} ` +
            `(ratio ${fmt(f.ratio)} vs ${f.reference.name}; target ${f.target.text})`,
        );
      }
    }
  } else {
    summary.push(`-       ${name}: no results written`);
  }
}

console.log(`\n=== summary (${((Date.now() - started) / 1000).toFixed(0)} s in all) ===`);
console.log(
  `${new Date().toISOString()}, ${os.cpus().length} cores, load average ${loadAtStart} at the start, ` +
    `${loadAverage().text} at the end (other work on the machine makes every wall-clock figure noisy)`,
);
for (const line of summary) console.log(line);
if (failed.length > 0) {
  console.error(`failed to run: ${failed.join(", ")}`);
  process.exitCode = 1;
}
