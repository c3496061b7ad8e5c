// `buildd build`: one whole build from local files, as a manager would drive it. It
// serves the inputs itself on loopback, ensurepresent()s each (concurrently), calls
// build(), follows status() and the log until WAITING, fetches every result into --out
// and checks its SHA-1, saves the log beside them and clean()s. The exit status is the
// result (0 for OK; RESULT_EXIT below). SIGINT aborts the build and still cleans.

import fs from "node:fs";
import path from "node:path";
import { BuilderStatus, BuildStatus, type BuildResult } from "../protocol/states.js";
import { asStringStruct } from "../protocol/values.js";
import { BuilderClient, shortName, str } from "./client.js";
import { CliError, EXIT } from "./errors.js";
import { serveFiles, type FileServer, type LocalFile } from "./file-server.js";
import { formatBytes, formatDuration } from "./format.js";
import { LogFollower } from "./log-follower.js";
import { createReporter, type Reporter } from "./progress.js";
import { fetchResults } from "./results.js";
import type { BuildPlan } from "./build-inputs.js";
import type { Target } from "./target.js";

/** The exit status for each result, so a script can tell them apart. */
export const RESULT_EXIT: Readonly<Record<BuildResult, number>> = {
  [BuildStatus.OK]: 0,
  [BuildStatus.PACKAGEFAIL]: 3,
  [BuildStatus.DEPFAIL]: 4,
  [BuildStatus.CHROOTFAIL]: 5,
  [BuildStatus.BUILDERFAIL]: 6,
  [BuildStatus.GIVENBACK]: 7,
  [BuildStatus.ABORTED]: 8,
};

export interface DriveOptions {
  readonly out: string;
  readonly buildId?: string;
  /** The address the builder reaches this command's file server at. */
  readonly serveHost: string;
  readonly keep?: boolean;
  readonly quiet?: boolean;
}

const POLL_MS = 500;
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

function defaultBuildId(type: string): string {
  const stamp = new Date().toISOString().replace(/[-:]/g, "").replace(/\..*$/, "");
  return `cli-${type}-${stamp}-${process.pid}`;
}

async function ensureAll(
  client: BuilderClient,
  server: FileServer,
  files: readonly LocalFile[],
  report: Reporter,
): Promise<void> {
  const total = files.reduce((n, f) => n + f.size, 0);
  const active = new Set(files);
  const tick = setInterval(() => {
    const done = files.reduce((n, f) => n + (active.has(f) ? server.sent(f) : f.size), 0);
    report.downloads({ done, total, active: [...active].map((f) => f.name) });
  }, 200);
  try {
    await Promise.all(
      files.map(async (f) => {
        const answer = await client.call("ensurepresent", f.sha1, server.urlOf(f), "", "");
        const [present, info] = Array.isArray(answer) ? answer : [false, String(answer)];
        active.delete(f);
        if (present !== true) {
          throw new CliError(`the builder could not get ${f.name} (${f.path}): ${String(info)}`);
        }
        report.line(`${f.name}: ${String(info)} (${formatBytes(f.size)}, sha1 ${f.sha1})`);
      }),
    );
  } finally {
    clearInterval(tick);
  }
}

export async function drive(target: Target, plan: BuildPlan, opts: DriveOptions): Promise<number> {
  const client = new BuilderClient(target);
  const report = createReporter(process.stdout, { quiet: opts.quiet ?? false });
  const buildId = opts.buildId ?? defaultBuildId(plan.buildType);
  const before = await client.status();
  const state = str(before, "builder_status");
  if (state !== BuilderStatus.IDLE) {
    const id = str(before, "build_id");
    throw new CliError(
      `the builder at ${target.base} is ${shortName(state)}${id ? ` with build ${id}` : ""}, not IDLE; ` +
        "wait for it (buildd status), or collect and clean that build first",
    );
  }
  const inputs = [plan.chroot, ...plan.files];
  const server = await serveFiles(inputs, opts.serveHost);
  let interrupted = false;
  let building = false;
  const onSigint = (): void => {
    if (interrupted) {
      // A second ^C: stop waiting for anything, as an unhandled SIGINT does.
      process.off("SIGINT", onSigint);
      process.kill(process.pid, "SIGINT");
      return;
    }
    interrupted = true;
    if (building) {
      report.line("interrupted: aborting the build (it is collected and cleaned as usual)");
      void client.call("abort").catch(() => undefined);
    } else {
      // Downloads from our server stop, so ensurepresent answers at once.
      void server.close();
    }
  };
  process.on("SIGINT", onSigint);
  try {
    report.line(
      `${plan.buildType} build ${buildId} on ${target.base}: sending ${inputs.length} file(s)`,
    );
    try {
      await ensureAll(client, server, inputs, report);
    } catch (err) {
      if (interrupted) throw new CliError("interrupted while sending the files", EXIT.INTERRUPTED);
      throw err;
    }
    report.endProgress();
    if (interrupted) throw new CliError("interrupted before the build started", EXIT.INTERRUPTED);
    const filemap = Object.fromEntries(plan.files.map((f) => [f.name, f.sha1]));
    const started = await client.call(
      "build",
      buildId,
      plan.buildType,
      plan.chroot.sha1,
      filemap,
      plan.args,
    );
    const [answer, detail] = Array.isArray(started) ? started : [started, ""];
    if (answer !== BuilderStatus.BUILDING) {
      throw new CliError(`build() was refused: ${String(answer)} ${String(detail)}`.trim());
    }
    building = true;
    const t0 = Date.now();
    report.line(`build ${buildId} started`);
    const final = await follow(client, plan, buildId, report, t0);
    report.endProgress();
    const result = str(final, "build_status") as BuildResult | null;
    report.line(
      `build ${buildId} finished: ${shortName(result)} after ${formatDuration(Date.now() - t0)}`,
    );
    const deps = str(final, "dependencies");
    if (deps) report.line(`unmet build dependencies: ${deps}`);
    await collect(client, final, opts.out, report);
    if (!opts.keep) {
      await client.call("clean");
      report.line("cleaned the builder (it is IDLE)");
    } else {
      report.line("--keep: the builder stays WAITING with this build; clean() it when done");
    }
    report.close();
    return result === null ? EXIT.FAILED : (RESULT_EXIT[result] ?? EXIT.FAILED);
  } finally {
    report.close();
    process.off("SIGINT", onSigint);
    await server.close();
  }
}

/** Poll status() and the log until the build is WAITING; returns that status. */
async function follow(
  client: BuilderClient,
  plan: BuildPlan,
  buildId: string,
  report: Reporter,
  t0: number,
) {
  const log = new LogFollower(client);
  for (;;) {
    const s = await client.status();
    const state = str(s, "builder_status");
    const current = str(s, "build_id");
    // As a manager checks: another id means our build was cleaned away and replaced.
    if (current !== null && current !== buildId) {
      throw new CliError(
        `the builder now has build ${current}, not ${buildId}: someone else collected this build`,
      );
    }
    const step = str(s, "build_step");
    const at = step === null ? -1 : plan.steps.indexOf(step);
    // The step first: the log read next is mostly that step's output.
    if (state === BuilderStatus.BUILDING || state === BuilderStatus.ABORTING) {
      report.building({
        step,
        index: at < 0 ? null : at + 1,
        count: at < 0 ? null : plan.steps.length,
        elapsedMs: Date.now() - t0,
      });
    }
    const text = await log.poll();
    if (text) report.log(text);
    if (state === BuilderStatus.WAITING && s["cleaning"] !== true) {
      // The rest of the log, written before the result.
      const rest = await log.poll();
      if (rest) report.log(rest);
      return s;
    }
    if (state === BuilderStatus.IDLE) {
      throw new CliError(
        "the builder went IDLE before this command collected the build: someone else cleaned it",
      );
    }
    await sleep(POLL_MS);
  }
}

async function collect(
  client: BuilderClient,
  final: Awaited<ReturnType<BuilderClient["status"]>>,
  out: string,
  report: Reporter,
): Promise<void> {
  fs.mkdirSync(out, { recursive: true });
  const filemap = asStringStruct(final["filemap"]) ?? {};
  await fetchResults(client, out, filemap, (f) =>
    report.line(
      `fetched ${f.name} (${formatBytes(f.size)}, sha1 ${f.sha1} verified), saved as ${f.file}`,
    ),
  );
  // The log too, unless a result has that name (results win).
  if (!Object.hasOwn(filemap, "buildlog")) {
    const res = await client.request("GET", "/filecache/buildlog");
    if (res.status === 200) {
      const file = path.join(out, "buildlog");
      const chunks: Buffer[] = [];
      for await (const c of res.body) chunks.push(c as Buffer);
      fs.writeFileSync(file, Buffer.concat(chunks));
      report.line(`saved the build log as ${file}`);
    } else {
      res.body.resume();
    }
  }
}
