// What a caller asks of the process runner, and what it gets back. The runner
// (runner.ts) is the one place the builder starts processes; everything else — the
// backends, the unpacker, capability probes, removal, dpkg — holds a ProcessRunner it
// was given, so tests can hand them a recording one instead (harness/recording-runner.ts).

import type { OutputSink } from "../log/buildlog.js";
import { defaultEnv } from "./environment.js";
import type { NamespaceIdentity } from "./pidns.js";
import type { JobOptions } from "./spawn-messages.js";

/**
 * How a command is isolated. By default it runs as PID 1 of a fresh PID namespace, so
 * that killing it kills everything it started. Chroot is not an option here: the chroot
 * backend must mount /proc, /sys and /dev inside the mount namespace before it enters
 * the chroot, so `chroot` is the last word of its own prologue (backends/chroot.ts).
 */
export interface Isolation {
  /**
   * A fresh PID namespace (default true). false: the command only leads its own process
   * group, and a process that leaves the group (setsid) survives a kill.
   */
  readonly pid?: boolean;
  /** A private mount namespace (with the PID namespace): mounts made inside vanish with it. */
  readonly mount?: boolean;
  /** A fresh network namespace (with the PID namespace): only a loopback interface, down. */
  readonly network?: boolean;
}

interface CommandSpec {
  /** The command; never a shell string. */
  readonly argv: readonly string[];
  readonly cwd?: string;
  /** The child's whole environment (default: defaultEnv(), never the daemon's process.env). */
  readonly env?: Readonly<Record<string, string>>;
  readonly isolation?: Isolation;
}

/** A command whose output streams, scrubbed, into a build log (build steps, tar). */
export interface RunSpec extends CommandSpec {
  /** Gets the RUN line and all output, scrubbed (a BuildLog, or stdout and stderr apart). */
  readonly log: OutputSink;
  /**
   * Written to the command's stdin, which is then closed (a Buildbot step's
   * `initial_stdin`). Without it stdin is /dev/null, as for every other command.
   */
  readonly stdin?: string | Buffer;
  /** argv placed between the isolation and the command (the chroot backend's prologue). */
  readonly wrap?: readonly string[];
  /** What the RUN line shows, if not argv. */
  readonly logArgv?: readonly string[];
}

export interface RunResult {
  readonly exitCode: number | null;
  readonly signal: NodeJS.Signals | null;
}

export interface RunningProcess {
  /** The spawned top process (unshare when isolated), once spawned; -1 if it could not be. */
  readonly pid: Promise<number>;
  /** Settles once the process exited and its output is in the log; never rejects. */
  readonly done: Promise<RunResult>;
  /** TERM every process of the tree, wait up to graceMs, KILL; report what is still alive. */
  terminate(graceMs: number): Promise<{ survivors: number[] }>;
  /** The PID namespace the command runs in, or null when not isolated. */
  readonly namespace: Promise<NamespaceIdentity | null>;
  /**
   * SIGKILL those of `pids` (survivors terminate() reported) that are still alive, and
   * return them: abort() calls it until nothing is left or its timeout passes.
   */
  killRemaining(pids: readonly number[]): number[];
}

/** A short command whose output is read, not logged (dpkg, probes, rm). */
export interface CaptureSpec extends CommandSpec {
  /** Kill the whole tree after this long (the result says timedOut). */
  readonly timeoutMs?: number;
  /** Kill the whole tree when this aborts (the result says canceled). */
  readonly signal?: AbortSignal;
  /** Output kept per stream, in characters (default 1 Mi); more ends it with an error. */
  readonly maxBytes?: number;
}

export interface CaptureResult extends RunResult {
  readonly stdout: string;
  readonly stderr: string;
  /** stdout and stderr interleaved as they were written. */
  readonly output: string;
  readonly timedOut: boolean;
  readonly canceled: boolean;
  /**
   * Why the command did not run to its own end, in one line (it could not be started, or
   * its output exceeded maxBytes); null when it did. A non-zero exit is not an error here.
   */
  readonly error: string | null;
}

/**
 * What every command the runner spawns shares, whether its output streams or is
 * captured: its given environment only (never the daemon's), and the input if any. The
 * spawn helper adds the rest: no stdin otherwise, exit codes as results, and its own
 * process group (the fallback kill target, and unshare's group when isolated).
 */
export function jobOptions(spec: Pick<RunSpec, "cwd" | "env" | "stdin">): JobOptions {
  return {
    cwd: spec.cwd,
    env: { ...(spec.env ?? defaultEnv()) },
    ...(spec.stdin === undefined ? {} : { input: spec.stdin }),
  };
}

export interface ProcessRunner {
  /** Start a command whose output streams into a build log; the caller awaits `done`. */
  start(spec: RunSpec): RunningProcess;
  /** Run a short command to its end and hand back its output; never rejects. */
  capture(spec: CaptureSpec): Promise<CaptureResult>;
}
