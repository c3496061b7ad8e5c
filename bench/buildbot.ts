// buildbot: the worker's cost per ShellCommand, against the real Python buildbot-worker
// on the same master in the same run. A real Buildbot master (Debian's, as the tests
// use) has two one-step builders running `true`, one on each worker; each round forces a
// build on each (the order swaps every round) and waits until the master says it is
// complete, polling its REST API every POLL_MS. buildd runs from the built dist/, as
// `npm start` does, on a `buildd create-worker` directory, as root when run as root (so
// its steps go through the sandbox: the build user, PID and mount namespaces).
//
// Figures: (build complete − force) median and p90, measured here; the step's own
// duration as the master records it (step started_at / complete_at: whole seconds, so
// their mean over the rounds is the estimate, and the median is 0 or 1). Target: median
// force → complete ≤ 1.0× the Python worker's (a one-step build running `true` is almost
// nothing but the worker's and the master's overhead; the master's share is the same).
// Also: the command's run time as each worker reports it (`elapsedTime=` in the log:
// buildd's includes its sandbox), and the cost of one more step (ten-step builds).

import { buildbotMissing, startBuildbotMaster, type StepJson } from "../harness/buildbot-master.js";
import { startPythonWorker } from "../harness/buildbot-python-worker.js";
import { startWorkerDir } from "../harness/buildbot-worker-dir.js";
import {
  atMostRatio,
  interleave,
  main,
  median,
  onCleanup,
  percentile,
  Report,
  sleep,
} from "./lib.js";

const ROUNDS = Number(process.env["BENCH_BUILDBOT_ROUNDS"] ?? 20);
/** Rounds of the ten-step builds, for the cost of one more step. */
const ROUNDS_10 = Math.max(2, Math.round(ROUNDS / 4));
const WARMUP = 2;
const POLL_MS = 10;

const BUILDERS = `
  for kind in ['buildd', 'python']:
      c['builders'].append(util.BuilderConfig(name='true-' + kind, workernames=['bench-' + kind],
          factory=util.BuildFactory([steps.ShellCommand(name='true', command=['true'])])))
      c['builders'].append(util.BuilderConfig(name='steps10-' + kind, workernames=['bench-' + kind],
          factory=util.BuildFactory([steps.ShellCommand(name='true', command=['true'])
                                     for _ in range(10)])))
`;

interface Sample {
  /** Force → the build request complete, ms (measured here). */
  readonly buildMs: number;
  /** The step's complete_at − started_at as the master stores them (whole seconds). */
  readonly stepS: number;
  /** The command's run time as the worker reports it (`elapsedTime=` in the step's log). */
  readonly elapsedMs: number;
}

const mean = (v: readonly number[]): number => v.reduce((a, b) => a + b, 0) / v.length;

await main("buildbot", async () => {
  const report = new Report("buildbot");
  const missing = buildbotMissing();
  if (missing) {
    report.skip(missing);
    report.write();
    return;
  }
  const master = await startBuildbotMaster({
    workers: [
      { name: "bench-buildd", password: "bench-buildd-pw", maxBuilds: 1 },
      { name: "bench-python", password: "bench-python-pw", maxBuilds: 1 },
    ],
    builders: BUILDERS,
  });
  onCleanup("master", () => master.stop());
  const buildd = await startWorkerDir(
    { masterPort: master.workerPort, name: "bench-buildd", password: "bench-buildd-pw" },
    { entry: "dist" },
  );
  onCleanup("buildd", () => buildd.stop());
  const python = await startPythonWorker({
    masterPort: master.workerPort,
    name: "bench-python",
    password: "bench-python-pw",
  });
  onCleanup("python worker", () => python.stop());
  await Promise.all([
    master.waitForWorker("bench-buildd", true),
    master.waitForWorker("bench-python", true),
  ]);

  async function once(builder: string): Promise<Sample> {
    const t0 = performance.now();
    const { buildrequestId } = await master.forceBuild(builder);
    for (;;) {
      const { buildrequests } = await master.api<{
        buildrequests: { complete: boolean; results: number }[];
      }>(`buildrequests/${buildrequestId}`);
      const r = buildrequests[0];
      if (r?.complete) {
        const buildMs = performance.now() - t0;
        if (r.results !== 0)
          throw new Error(`${builder}: build request ${buildrequestId} results ${r.results}`);
        const [build] = await master.builds(buildrequestId);
        const steps: StepJson[] = await master.steps(build!.buildid);
        const step = steps.find((s) => s.name === "true")!; // the first
        const log = await master.logText(build!.buildid, step.number);
        const elapsed = /^elapsedTime=([\d.]+)$/m.exec(log);
        return {
          buildMs,
          stepS: (step["complete_at"] as number) - (step["started_at"] as number),
          elapsedMs: elapsed ? Number(elapsed[1]) * 1000 : NaN,
        };
      }
      if (performance.now() - t0 > 60_000) throw new Error(`${builder}: no result within 60 s`);
      await sleep(POLL_MS);
    }
  }

  for (let i = 0; i < WARMUP; i++) {
    await once("true-buildd");
    await once("true-python");
  }
  const ours: Sample[] = [];
  const ref: Sample[] = [];
  await interleave(
    ROUNDS,
    async () => void ours.push(await once("true-buildd")),
    async () => void ref.push(await once("true-python")),
  );

  const ours10: Sample[] = [];
  const ref10: Sample[] = [];
  await interleave(
    ROUNDS_10,
    async () => void ours10.push(await once("steps10-buildd")),
    async () => void ref10.push(await once("steps10-python")),
  );

  const b = (s: Sample[]): number[] => s.map((x) => x.buildMs);
  const st = (s: Sample[]): number[] => s.map((x) => x.stepS);
  const el = (s: Sample[]): number[] => s.map((x) => x.elapsedMs);
  const refName = "python buildbot-worker";
  const p90 = (xs: number[]): number => percentile(xs, 90);
  // Each figure: one statistic of one measure, ours against the Python worker's.
  const figures: [string, (xs: number[]) => number, (s: Sample[]) => number[], string][] = [
    ["force_to_complete.median", median, b, "ms"],
    ["force_to_complete.p90", p90, b, "ms"],
    ["step_duration.mean", mean, st, "s"],
    ["step_duration.median", median, st, "s"],
    ["step_duration.p90", p90, st, "s"],
    ["worker_reported_elapsed.median", median, el, "ms"],
  ];
  for (const [name, stat, measure, unit] of figures) {
    report.add({
      name,
      value: stat(measure(ours)),
      unit,
      ref: { name: refName, value: stat(measure(ref)) },
      // The one target: the whole forced build, median against median.
      ...(name === "force_to_complete.median"
        ? { target: atMostRatio(median(b(ours)) / median(b(ref)), 1.0) }
        : {}),
      samples: ROUNDS,
    });
  }
  const perStep = (one: Sample[], ten: Sample[]): number => (median(b(ten)) - median(b(one))) / 9;
  report.add({
    name: "per_added_step",
    value: perStep(ours, ours10),
    unit: "ms",
    ref: { name: refName, value: perStep(ref, ref10) },
    samples: ROUNDS_10,
  });
  report.note(
    `per_added_step: (median of a ten-step build − median of the one-step build) / 9, ` +
      `${ROUNDS_10} interleaved rounds of the ten-step builds`,
  );
  report.note(
    `${ROUNDS} interleaved rounds after ${WARMUP} warm-up builds each; one master, one ` +
      `one-step builder per worker running \`true\`; completion polled every ${POLL_MS} ms; ` +
      `buildd from dist/ ${process.getuid?.() === 0 ? "as root (steps sandboxed, as the build user)" : "not as root (steps run as this user, no sandbox)"}; ` +
      `the master stores step times in whole seconds (mean = estimate)`,
  );
  console.log(
    `  -> ${report.write({ builddMs: b(ours), pythonMs: b(ref), builddStepS: st(ours), pythonStepS: st(ref), buildd10Ms: b(ours10), python10Ms: b(ref10), builddElapsedMs: el(ours), pythonElapsedMs: el(ref) })}`,
  );
});
