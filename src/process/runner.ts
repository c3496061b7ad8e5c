// The one way a build command runs: argv only (never a shell string), output streamed into
// the build log through the scrubber, and a terminate() that kills the whole tree.
//
// Isolation (the default): the command runs as PID 1 of a fresh PID namespace, via
//   unshare --pid --fork --kill-child --mount-proc [flags] -- [wrap...] argv...
// When PID 1 exits or is SIGKILLed, the kernel kills every other process in the namespace,
// including ones that called setsid, double-forked or ignore SIGTERM, so nothing a build
// started can outlive it. unshare only exits after that teardown (its waitpid on PID 1
// returns once the namespace is empty), so its exit means "the namespace is gone".
//
// Without isolation (isolate: false, or unshare unusable here), the command leads its own
// process group and terminate() signals the group. That is weaker: a process that calls
// setsid/setpgid leaves the group and survives, and a daemonised leftover can keep
// our pipes open (done still settles 2 s after the top process exits).

import { spawn, spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { DEFAULT_PATH, defaultEnv } from "./environment.js";
import type { BuildLog, BuildLogStream } from "../log/buildlog.js";
import {
  isAlive,
  nsChildPid,
  pidNamespaceOf,
  processesInGroup,
  processesInNamespace,
  signalAll,
  signalNamespace,
  waitFor,
} from "./pidns.js";

export interface RunSpec {
  /** The command; never a shell string. */
  argv: readonly string[];
  cwd?: string;
  /** The child's whole environment (default: defaultEnv(), not the daemon's process.env). */
  env?: Readonly<Record<string, string>>;
  /** Gets the RUN line and all stdout/stderr, scrubbed. */
  log: BuildLog;
  /** Run inside a new PID namespace (default true). */
  isolate?: boolean;
  /** Extra unshare flags, e.g. ["--mount", "--net"]. */
  unshareFlags?: readonly string[];
  /** argv placed between unshare and the command, e.g. ["chroot", "/path"]. */
  wrap?: readonly string[];
  /** What the RUN line shows, if not argv. */
  logArgv?: readonly string[];
}

export interface RunResult {
  exitCode: number | null;
  signal: NodeJS.Signals | null;
}

export interface RunningProcess {
  /** The spawned top process (unshare when isolated); -1 if it could not be spawned. */
  readonly pid: number;
  /** Settles once the process exited and its output is in the log; never rejects. */
  readonly done: Promise<RunResult>;
  /** TERM every process of the tree, wait up to graceMs, KILL; report what is still alive. */
  terminate(graceMs: number): Promise<{ survivors: number[] }>;
  /** The PID namespace the command runs in ("pid:[…]"), or null when not isolated. */
  readonly namespace: Promise<string | null>;
  /**
   * SIGKILL those of `pids` (survivors terminate() reported) that are still alive, and
   * return them: abort() calls it until nothing is left or its timeout passes.
   */
  killRemaining(pids: readonly number[]): number[];
}

/** The usual killRemaining(): by PID, skipping what has died meanwhile. */
export function killAlive(pids: readonly number[]): number[] {
  const alive = pids.filter(isAlive);
  signalAll(alive, "SIGKILL");
  return alive;
}

const UNSHARE_FLAGS = ["--pid", "--fork", "--kill-child", "--mount-proc"] as const;
const PDEATHSIG: readonly string[] = existsSync("/usr/bin/setpriv")
  ? ["/usr/bin/setpriv", "--pdeathsig", "SIGKILL", "--"]
  : [];
/** How often a held-back partial line is flushed to the log. */
const IDLE_FLUSH_MS = 250;
/** How long done waits for the pipes after the process exited. */
const PIPE_GRACE_MS = 2000;
/** How long terminate() waits after SIGKILL before reporting survivors. */
const KILL_WAIT_MS = 2000;

// util-linux 2.38's unshare, when its child was killed by SIGKILL, tries to re-raise the
// signal on itself, fails (SIGKILL cannot be reset), prints this and exits 1. We drop the
// line and report the SIGKILL it stands for.
const UNSHARE_SIGKILL_QUIRK = Buffer.from(
  "unshare: sigprocmask unblock failed: Invalid argument\n",
);

export interface IsolationSupport {
  ok: boolean;
  /** Absolute path of unshare when ok; why not otherwise. */
  detail: string;
}

let support: IsolationSupport | undefined;

/**
 * Whether PID namespaces work here (root, or user namespaces allowed). Probed once, by
 * running `unshare ... -- true`, and cached for the daemon's life.
 */
export function isolationSupport(): IsolationSupport {
  if (support) return support;
  const unshare = DEFAULT_PATH.split(":")
    .map((dir) => `${dir}/unshare`)
    .find((path) => existsSync(path));
  if (!unshare) return (support = { ok: false, detail: "unshare not found" });
  const probe = spawnSync(unshare, [...UNSHARE_FLAGS, "--", "true"], {
    env: defaultEnv(),
    stdio: ["ignore", "ignore", "pipe"],
    timeout: 10_000,
    encoding: "utf8",
  });
  if (probe.status === 0) return (support = { ok: true, detail: unshare });
  const why = probe.error?.message ?? (probe.stderr.trim() || `exit status ${probe.status}`);
  return (support = { ok: false, detail: why });
}

export function startProcess(spec: RunSpec): RunningProcess {
  if (spec.argv.length === 0) throw new TypeError("startProcess: empty argv");
  const { log } = spec;
  log.logCommand(spec.logArgv ?? spec.argv);

  let isolated = spec.isolate ?? true;
  let command = [...(spec.wrap ?? []), ...spec.argv];
  if (isolated) {
    const iso = isolationSupport();
    if (iso.ok) {
      // setpriv --pdeathsig: if the builder itself dies (even by SIGKILL), the kernel
      // kills unshare, whose --kill-child then takes the whole namespace down. A build
      // can never outlive the daemon that would have to report on it.
      command = [
        ...PDEATHSIG,
        iso.detail,
        ...UNSHARE_FLAGS,
        ...(spec.unshareFlags ?? []),
        "--",
        ...command,
      ];
    } else {
      isolated = false;
      log.write(
        `[buildd] PID namespaces unavailable (${iso.detail}); falling back to killing by ` +
          `process group, which misses processes that leave the group\n`,
      );
    }
  }

  // A log that cannot be written (disk full) must not take the daemon down from inside
  // a stream callback; the build goes on and the failure is reported once.
  let logFailed = false;
  const guard = (fn: () => void): void => {
    try {
      fn();
    } catch (err) {
      if (!logFailed) console.error(`buildd: writing the build log ${log.path} failed:`, err);
      logFailed = true;
    }
  };

  let child;
  try {
    child = spawn(command[0]!, command.slice(1), {
      cwd: spec.cwd,
      env: spec.env ?? defaultEnv(),
      stdio: ["ignore", "pipe", "pipe"],
      // Own process group: the fallback kill target (and unshare's group when isolated).
      detached: true,
    });
  } catch (e) {
    // Invalid arguments (a NUL byte in argv or env) throw instead of emitting 'error'.
    guard(() => log.write(`[buildd] failed to start ${command[0]}: ${(e as Error).message}\n`));
    const failed: RunResult = { exitCode: 127, signal: null };
    return {
      pid: -1,
      done: Promise.resolve(failed),
      terminate: async () => ({ survivors: [] }),
      namespace: Promise.resolve(null),
      killRemaining: killAlive,
    };
  }
  const pid = child.pid ?? -1;

  const out: BuildLogStream = log.stream();
  const err: BuildLogStream = log.stream();
  let sawSigkillQuirk = false;
  child.stdout.on("data", (chunk: Buffer) => guard(() => out.push(chunk)));
  child.stderr.on("data", (chunk: Buffer) => {
    if (isolated) {
      const at = chunk.indexOf(UNSHARE_SIGKILL_QUIRK);
      if (at !== -1) {
        sawSigkillQuirk = true;
        chunk = Buffer.concat([
          chunk.subarray(0, at),
          chunk.subarray(at + UNSHARE_SIGKILL_QUIRK.length),
        ]);
      }
    }
    guard(() => err.push(chunk));
  });
  // Partial lines (progress counters, prompts) reach the log without waiting for a newline.
  const idle = setInterval(
    () =>
      guard(() => {
        out.flushIdle();
        err.flushIdle();
      }),
    IDLE_FLUSH_MS,
  );
  idle.unref();

  let exited = false;
  let settled = false;
  let openPipes = 2;
  let exitCode: number | null = null;
  let exitSignal: NodeJS.Signals | null = null;
  // Read once the pipes are drained: unshare's quirk line may arrive after 'exit'.
  const exitResult = (): RunResult =>
    isolated && exitCode === 1 && sawSigkillQuirk
      ? { exitCode: null, signal: "SIGKILL" }
      : { exitCode, signal: exitSignal };
  let resolveDone!: (r: RunResult) => void;
  const done = new Promise<RunResult>((resolve) => (resolveDone = resolve));
  let pipeTimer: NodeJS.Timeout | undefined;

  const finish = (result: RunResult): void => {
    if (settled) return;
    settled = true;
    clearInterval(idle);
    clearTimeout(pipeTimer);
    // Anything still holding our pipes after the grace period is cut off.
    child.stdout.destroy();
    child.stderr.destroy();
    guard(() => {
      out.end();
      err.end();
    });
    resolveDone(result);
  };
  const pipeClosed = (): void => {
    openPipes--;
    if (exited && openPipes === 0) finish(exitResult());
  };
  child.stdout.on("close", pipeClosed);
  child.stderr.on("close", pipeClosed);
  child.on("exit", (code, signal) => {
    exited = true;
    exitCode = code;
    exitSignal = signal;
    if (openPipes === 0) finish(exitResult());
    else pipeTimer = setTimeout(() => finish(exitResult()), PIPE_GRACE_MS);
  });
  child.on("error", (e) => {
    // Spawn failure (no such program, bad cwd): there is no process; 'exit' never comes.
    if (child.pid !== undefined) return;
    exited = true;
    guard(() => log.write(`[buildd] failed to start ${command[0]}: ${e.message}\n`));
    finish({ exitCode: 127, signal: null });
  });

  // Find the namespace right away, while its PID 1 certainly exists.
  const ownNs = pidNamespaceOf(process.pid);
  const nsInfo: Promise<{ init: number; ns: string } | null> =
    isolated && pid > 0
      ? nsChildPid(pid).then((init) => {
          const ns = init === null ? null : pidNamespaceOf(init);
          return init !== null && ns !== null && ns !== ownNs ? { init, ns } : null;
        })
      : Promise.resolve(null);

  let terminating: Promise<{ survivors: number[] }> | undefined;
  const terminate = (graceMs: number): Promise<{ survivors: number[] }> => {
    // Not short-cut when done: without isolation, group members can outlive the command.
    if (pid < 0) return Promise.resolve({ survivors: [] });
    terminating ??= (async () => {
      const info = await nsInfo;
      // unshare exiting by itself means it reaped PID 1, which the kernel only lets exit
      // once the namespace is empty. After we SIGKILL unshare that proves nothing.
      let exitMeansEmpty = true;
      // Isolated: the namespace's processes and unshare. Otherwise: the process group.
      const remaining = (): number[] => {
        if (!info) return processesInGroup(pid);
        if (exited && exitMeansEmpty) return [];
        return [...processesInNamespace(info.ns), ...(isAlive(pid) ? [pid] : [])];
      };
      const killGroup = (signal: NodeJS.Signals): void => signalAll([-pid], signal);

      // PID 1 of the namespace ignores this unless it handles TERM; the rest get a chance
      // to clean up. unshare itself blocks TERM.
      if (info) signalNamespace(info.ns, "SIGTERM");
      killGroup("SIGTERM");
      await waitFor(() => remaining().length === 0, graceMs, 50);

      if (info && !exited) {
        // Killing PID 1 makes the kernel kill the rest; the direct kills are for good
        // measure. unshare is left to reap PID 1 (killing it first would orphan a zombie)
        // and is only killed, with its group, if it does not exit by itself.
        signalAll([info.init], "SIGKILL");
        signalNamespace(info.ns, "SIGKILL");
        await waitFor(() => exited, 1000);
      }
      if (remaining().length > 0) {
        exitMeansEmpty = false;
        killGroup("SIGKILL");
      }
      await waitFor(() => remaining().length === 0, KILL_WAIT_MS, 20);
      return { survivors: remaining() };
    })();
    return terminating;
  };

  return {
    pid,
    done,
    terminate,
    namespace: nsInfo.then((info) => info?.ns ?? null),
    killRemaining: killAlive,
  };
}
