// startup: process start → first answered echo() for `node --import tsx src/cli.ts serve`
// and for the compiled `node dist/cli.js serve`, against `node -e ''` (spawn → exit).
// RUNS runs of each, interleaved (the order rotates every round). Target: ≤ 0.3 s.
//
// Each run uses fresh directories (a new journal), a free port chosen beforehand, and
// polls echo() every POLL_MS on a new connection from spawn() on. dist/ is compiled
// first (npm run prepare) if it is missing or older than any src/ file.

import { spawn, spawnSync } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { atMost, main, median, Report, ROOT, startBuilder, timeMs } from "./lib.js";

const RUNS = 5;
const POLL_MS = 2;

function newestMtime(dir: string): number {
  let newest = 0;
  for (const entry of fs.readdirSync(dir, { withFileTypes: true })) {
    const full = path.join(dir, entry.name);
    const m = entry.isDirectory() ? newestMtime(full) : fs.statSync(full).mtimeMs;
    if (m > newest) newest = m;
  }
  return newest;
}

/** Make dist/ current; returns why the compiled variant cannot run, or null. */
function ensureDist(report: Report): string | null {
  const cli = path.join(ROOT, "dist/cli.js");
  const fresh = (): boolean =>
    fs.existsSync(cli) && fs.statSync(cli).mtimeMs >= newestMtime(path.join(ROOT, "src"));
  if (fresh()) return null;
  report.note("dist/ is missing or stale: npm run prepare");
  const r = spawnSync("npm", ["run", "prepare"], {
    cwd: ROOT,
    encoding: "utf8",
  });
  if (r.status !== 0) {
    // tsc still emits on type errors; say so, and use what it wrote if it did.
    report.note(`tsc exited ${r.status}: ${(r.stdout + r.stderr).trim().slice(0, 400)}`);
  }
  return fs.existsSync(cli) ? null : "dist/cli.js could not be compiled";
}

function nodeE(): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ["-e", ""], { stdio: "ignore" });
    child.once("error", reject);
    child.once("exit", (code) => (code === 0 ? resolve() : reject(new Error(`node -e: ${code}`))));
  });
}

async function serveOnce(entry: "tsx" | "dist"): Promise<number> {
  const b = await startBuilder({}, { entry, pollMs: POLL_MS });
  await b.stop();
  return b.startupMs;
}

await main("startup", async () => {
  const report = new Report("startup");
  const distProblem = ensureDist(report);
  if (distProblem) report.note(`compiled variant skipped: ${distProblem}`);
  const variants: { name: string; run: () => Promise<number>; times: number[] }[] = [
    { name: "tsx", run: () => serveOnce("tsx"), times: [] },
    ...(distProblem ? [] : [{ name: "dist", run: () => serveOnce("dist"), times: [] }]),
    { name: "node -e ''", run: () => timeMs(nodeE), times: [] },
  ];
  for (const v of variants) await v.run(); // warm-up: file system caches
  for (let round = 0; round < RUNS; round++) {
    for (let k = 0; k < variants.length; k++) {
      const v = variants[(round + k) % variants.length]!;
      v.times.push(await v.run());
    }
  }
  const ref = variants[variants.length - 1]!;
  const refS = median(ref.times) / 1000;
  for (const v of variants.slice(0, -1)) {
    const s = median(v.times) / 1000;
    report.add({
      name: `${v.name}.first_echo`,
      value: s,
      unit: "s",
      ref: { name: "node -e ''", value: refS },
      target: atMost(s, 0.3, "s"),
      samples: v.times.length,
    });
    report.add({
      name: `${v.name}.overhead`,
      value: s - refS,
      unit: "s",
      ref: { name: "node -e ''", value: refS },
      ratio: s / refS,
      samples: v.times.length,
    });
  }
  report.note(
    `median of ${RUNS} interleaved runs; echo() polled every ${POLL_MS} ms from spawn(); ` +
      `the target is applied to the absolute time`,
  );
  console.log(
    `  -> ${report.write({ timesMs: Object.fromEntries(variants.map((v) => [v.name, v.times])) })}`,
  );
});
