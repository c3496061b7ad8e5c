// startup: process start → first answered echo() for `node --import tsx src/cli.ts serve`
// and for the built program as `npm start` runs it (`node bin/buildd.js serve`, which
// loads dist/cli.js), against `node -e ''` (spawn → exit). RUNS runs of each,
// interleaved (the order rotates every round). Target: ≤ 0.3 s for the built program.
//
// Each run uses fresh directories (a new journal) and bindport 0; from spawn() on, every
// POLL_MS the harness looks in /proc for the port the child listens on and tries echo()
// on a new connection. dist/ is rebuilt first (npm run prepare) if it is missing or
// older than any src/ file.

import { spawn } from "node:child_process";
import { ensureDist } from "../harness/dist.js";
import { atMost, main, median, Report, startBuilder, timeMs } from "./lib.js";

const RUNS = 5;
const POLL_MS = 2;

/** Make dist/ current; returns why the compiled variant cannot run, or null. */
function distProblemOf(report: Report): string | null {
  try {
    if (ensureDist().rebuilt) report.note("dist/ is missing or stale: npm run prepare");
    return null;
  } catch (err) {
    return err instanceof Error ? err.message : String(err);
  }
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
  const distProblem = distProblemOf(report);
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
      // The target is the program that ships (`npm start`); through tsx, which compiles
      // every module as it loads, is how the tests start it, shown for comparison.
      target: v.name === "dist" ? atMost(s, 0.3, "s") : null,
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
      `the target (≤ 0.3 s, the built program only) is applied to the absolute time`,
  );
  console.log(
    `  -> ${report.write({ timesMs: Object.fromEntries(variants.map((v) => [v.name, v.times])) })}`,
  );
});
