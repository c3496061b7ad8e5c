// start(): a command whose output streams into the build log through the scrubber, as it
// is written. Partial lines (progress counters, prompts) are flushed when the command
// goes quiet, so the log shows them without waiting for a newline.
//
// Backpressure: a sink that cannot take more for now (BuildLogStream.whenWritable — a
// Buildbot command whose updates the master has not acknowledged yet) stops the reading
// of that pipe until it can; the child then blocks writing into the full pipe, as it
// would writing to a slow disk. Nothing is dropped and the order is kept. A paused child
// is still killed as usual; its output is read to the end once the sink takes it.

import readline from "node:readline";
import type { Readable } from "node:stream";
import { execa } from "execa";
import type { BuildLogStream } from "../log/buildlog.js";
import { commandLine } from "./isolation.js";
import { killAlive } from "./pidns.js";
import { spawnBasics, type RunResult, type RunSpec, type RunningProcess } from "./spec.js";
import { ProcessTree, startFailure } from "./tree.js";

/** How often a held-back partial line is flushed to the log. */
const IDLE_FLUSH_MS = 250;

const NOT_STARTED: RunResult = { exitCode: 127, signal: null };

export function startStreaming(spec: RunSpec): RunningProcess {
  if (spec.argv.length === 0) throw new TypeError("start: empty argv");
  const { log } = spec;
  log.logCommand(spec.logArgv ?? spec.argv);

  // A log that cannot be written (disk full) must not take the daemon down from inside
  // a stream callback; the build goes on and the failure is reported once.
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

  const { command, isolated, fallback } = commandLine(spec.argv, spec.isolation, spec.wrap);
  if (fallback) guard(() => log.write(`[buildd] ${fallback}\n`));

  let subprocess;
  try {
    subprocess = execa(command[0]!, command.slice(1), {
      ...spawnBasics(spec),
      // execa writes the input into a pipe and closes it; a command that does not read
      // it is not held up (a write into a closed pipe is ignored).
      ...(spec.stdin === undefined ? {} : { stdin: "pipe" as const, input: spec.stdin }),
      buffer: false,
      encoding: "buffer",
    });
  } catch (e) {
    // Invalid arguments (a NUL byte in argv or env) throw instead of failing the promise.
    notStarted(startFailure((e as Error).message));
    return {
      pid: -1,
      done: Promise.resolve(NOT_STARTED),
      terminate: async () => ({ survivors: [] }),
      namespace: Promise.resolve(null),
      killRemaining: killAlive,
    };
  }
  // Pipes paused for backpressure: the tree does not cut them while they are (tree.ts).
  const paused = new Set<Readable>();
  const tree = new ProcessTree(subprocess, subprocess, isolated, () => paused.size > 0);

  /** Each chunk to the sink; reading pauses while the sink is full. */
  const feed = (input: Readable, sink: BuildLogStream, filter: (b: Buffer) => Buffer): void => {
    input.on("data", (chunk: Buffer) => {
      const wait = guard(() => {
        sink.push(filter(chunk));
        return sink.whenWritable?.();
      });
      if (wait === null || wait === undefined) return;
      input.pause();
      paused.add(input);
      const resume = (): void => {
        paused.delete(input);
        input.resume();
      };
      wait.then(resume, resume);
    });
  };

  const out: BuildLogStream = log.stream("stdout");
  const err: BuildLogStream = log.stream("stderr");
  const onLine = spec.stdout;
  if (typeof onLine === "function") {
    readline
      .createInterface({ input: subprocess.stdout, crlfDelay: Infinity })
      .on("line", (line) => guard(() => onLine(line)));
  } else {
    feed(subprocess.stdout, out, (chunk) => chunk);
  }
  feed(subprocess.stderr, err, (chunk) => tree.filterStderr(chunk));
  const idle = setInterval(
    () =>
      guard(() => {
        out.flushIdle();
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
  // execa settles once the process exited and its pipes closed (or were cut, tree.ts).
  const done = subprocess.then(
    (r) => {
      if (r.exitCode === undefined && r.signal === undefined) {
        // No process at all (no such program, bad cwd): execa says why.
        notStarted(startFailure(r.originalMessage ?? r.shortMessage));
        return finish(NOT_STARTED);
      }
      return finish(tree.exitResult(r.exitCode, r.signal));
    },
    (e: unknown) => {
      notStarted(startFailure(e instanceof Error ? e.message : String(e)));
      return finish(NOT_STARTED);
    },
  );

  return {
    pid: tree.pid,
    done,
    terminate: (graceMs) => tree.terminate(graceMs),
    namespace: tree.namespace,
    killRemaining: killAlive,
  };
}
