// start(): a command whose output streams into the build log through the scrubber, as it
// is written. Partial lines (progress counters, prompts) are flushed when the command
// goes quiet, so the log shows them without waiting for a newline.
//
// Backpressure: a sink that cannot take more for now (BuildLogStream.whenWritable — a
// Buildbot command whose updates the master has not acknowledged yet) stops the reading
// of that pipe until it can; the child then blocks writing into the full pipe, as it
// would writing to a slow disk. Nothing is dropped and the order is kept. A paused child
// is still killed as usual; its output is read to the end once the sink takes it.
//
// The command is spawned, and its pipes read, by the spawn helper (spawner.ts); each
// chunk comes here, and the helper reads that pipe on once the sink has taken it.

import type { BuildLogStream } from "../log/buildlog.js";
import { commandLine } from "./isolation.js";
import { killAlive } from "./pidns.js";
import type { IsolationSupport } from "./spawn-messages.js";
import { spawnHelper, supportFor, type Job } from "./spawner.js";
import { jobOptions, type RunResult, type RunSpec, type RunningProcess } from "./spec.js";
import { ProcessTree, startFailure } from "./tree.js";

/** How often a held-back partial line is flushed to the log. */
const IDLE_FLUSH_MS = 250;

const NOT_STARTED: RunResult = { exitCode: 127, signal: null };

export function startStreaming(spec: RunSpec): RunningProcess {
  if (spec.argv.length === 0) throw new TypeError("start: empty argv");
  const { log } = spec;
  log.logCommand(spec.logArgv ?? spec.argv);

  // A log that cannot be written (disk full) must not take the daemon down from inside
  // a message callback; the build goes on and the failure is reported once.
  let logFailed = false;
  const guard = <T>(fn: () => T): T | undefined => {
    try {
      return fn();
    } catch (err) {
      if (!logFailed) console.error(`buildd: writing the build log ${log.path} failed:`, err);
      logFailed = true;
      return undefined;
    }
  };
  const notStarted = (why: string): void =>
    guard(() => log.write(`[buildd] failed to start ${spec.argv[0]}: ${why}\n`));

  const out: BuildLogStream = log.stream("stdout");
  const err: BuildLogStream = log.stream("stderr");
  let tree: ProcessTree | null = null;
  /** stderr the quirk filter held back, once it is known not to be the quirk (tree.ts). */
  const releaseStderr = (minAgeMs: number): void => {
    const held = tree?.releaseStderr(minAgeMs);
    if (held && held.length > 0) err.push(held);
  };
  const idle = setInterval(
    () =>
      guard(() => {
        out.flushIdle();
        releaseStderr(IDLE_FLUSH_MS);
        err.flushIdle();
      }),
    IDLE_FLUSH_MS,
  );
  idle.unref();
  const finish = (result: RunResult): RunResult => {
    clearInterval(idle);
    guard(() => {
      out.end();
      err.end();
    });
    return result;
  };

  // Known once the spawn helper has spawned it (null: it never got that far).
  let treeKnown!: (tree: ProcessTree | null) => void;
  const treePromise = new Promise<ProcessTree | null>((resolve) => (treeKnown = resolve));
  const done = new Promise<RunResult>((settle) => {
    const run = (support: IsolationSupport): void => {
      const { command, isolated, fallback } = commandLine(
        support,
        spec.argv,
        spec.isolation,
        spec.wrap,
      );
      if (fallback) guard(() => log.write(`[buildd] ${fallback}\n`));
      // Pipes whose last chunk the sink has not taken yet: the tree does not cut them
      // meanwhile (tree.ts), and the helper reads them on only once it has.
      const paused = new Set<1 | 2>();
      const job: Job = spawnHelper().start(
        { command, options: jobOptions(spec), kind: "stream", isolated },
        {
          spawned(pid) {
            tree = new ProcessTree(
              pid ?? -1,
              isolated,
              job.namespace,
              () => job.cut(),
              () => paused.size > 0,
            );
            treeKnown(tree);
          },
          data(fd, chunk) {
            const sink = fd === 1 ? out : err;
            const wait = guard(() => {
              sink.push(fd === 2 && tree ? tree.filterStderr(chunk) : chunk);
              return sink.whenWritable?.();
            });
            if (wait === null || wait === undefined) {
              job.resume(fd);
              return;
            }
            paused.add(fd);
            const resume = (): void => {
              paused.delete(fd);
              job.resume(fd);
            };
            wait.then(resume, resume);
          },
          exit: () => tree?.onExit(),
          settled(r) {
            tree?.onSettled();
            treeKnown(null);
            guard(() => releaseStderr(0));
            if (r.exitCode !== undefined || r.signal !== undefined) {
              settle(finish(tree ? tree.exitResult(r.exitCode, r.signal) : NOT_STARTED));
            } else if (r.lost && tree && tree.pid > 0) {
              // It ran, but the spawn helper stopped under it: nothing will report its
              // end, so it is killed, and done says it did not finish.
              const line = `${spec.argv[0]}: ${startFailure(r.message)}; killing what it started`;
              guard(() => log.write(`[buildd] ${line}\n`));
              const over = (): void => settle(finish({ exitCode: null, signal: null }));
              tree.terminate(0).then(over, over);
            } else {
              // No process at all (no such program, bad cwd, a NUL byte): execa says why.
              notStarted(startFailure(r.message));
              settle(finish(NOT_STARTED));
            }
          },
        },
      );
    };
    // A helper that cannot be started (or asked) fails this command, never the caller.
    Promise.resolve(spec.isolation)
      .then(supportFor)
      .then(run)
      .catch((e: unknown) => {
        treeKnown(null);
        notStarted(startFailure(e instanceof Error ? e.message : String(e)));
        settle(finish(NOT_STARTED));
      });
  });

  return {
    pid: treePromise.then((tree) => tree?.pid ?? -1),
    done,
    terminate: async (graceMs) => (await treePromise)?.terminate(graceMs) ?? { survivors: [] },
    namespace: treePromise.then((tree) => tree?.namespace ?? null),
    killRemaining: killAlive,
  };
}
