// One spawned command and everything it starts: spawned (by the spawn helper) into its own
// process group, and killed by our own ladder (TERM the namespace → grace → KILL), which
// execa 9 does not have — its kill(), timeout and cancelSignal signal the direct child
// only. Isolated, that child is unshare, which blocks SIGTERM; killing it first would
// leave PID 1 a zombie of whoever reaps orphans. Not isolated, a plain kill leaves
// grandchildren holding the pipes, and the command would never be settled: so once the
// command exited, pipes still held after PIPE_GRACE_MS are cut.
//
// It all runs in the builder, from /proc and kill(2); the spawn helper only reports
// the exit (onExit), finds the namespace (spawn-helper.ts: polling /proc for it would
// block the builder) and cuts the pipes when told to.

import {
  isAlive,
  isSameNamespace,
  processesInGroup,
  processesInRecordedNamespace,
  signalAll,
  signalRecordedNamespace,
  waitFor,
  type NamespaceIdentity,
} from "./pidns.js";
import type { RunResult } from "./spec.js";

/** How long the result waits for the pipes after the process exited. */
export const PIPE_GRACE_MS = 2000;
/** Past the grace, how often a pipe paused for backpressure is looked at again. */
const PIPE_RECHECK_MS = 100;
/** How long terminate() waits after SIGKILL before reporting survivors. */
const KILL_WAIT_MS = 2000;

// util-linux 2.38's unshare, when its child was killed by SIGKILL, tries to re-raise the
// signal on itself, fails (SIGKILL cannot be reset), prints this and exits 1. We drop the
// line and report the SIGKILL it stands for.
const UNSHARE_SIGKILL_QUIRK = "unshare: sigprocmask unblock failed: Invalid argument\n";
const QUIRK_BYTES = Buffer.from(UNSHARE_SIGKILL_QUIRK);
const EMPTY = Buffer.alloc(0);

/** How many bytes at the end of `data` are the quirk line's first bytes (not all of it). */
function quirkStartAtEnd(data: Buffer): number {
  for (let k = Math.min(QUIRK_BYTES.length - 1, data.length); k > 0; k--) {
    if (data.subarray(data.length - k).equals(QUIRK_BYTES.subarray(0, k))) return k;
  }
  return 0;
}

export class ProcessTree {
  private exited = false;
  private sawQuirk = false;
  /** terminate() SIGKILLed the namespace's PID 1 itself (see exitResult). */
  private killedInit = false;
  private terminating: Promise<{ survivors: number[] }> | undefined;

  private pipeTimer: NodeJS.Timeout | undefined;
  /** The end of stderr that may be the start of the quirk line (filterStderr). */
  private heldStderr: Buffer = EMPTY;
  private heldSince = 0;

  constructor(
    /** The spawned top process (unshare when isolated); -1 if nothing was spawned. */
    readonly pid: number,
    readonly isolated: boolean,
    /** The PID namespace it runs in, once found; null when not isolated or never found. */
    readonly namespace: Promise<NamespaceIdentity | null>,
    /** Close the command's pipes (stdout and stderr), wherever they are held. */
    private readonly cutPipes: () => void,
    /**
     * The reader paused a pipe because its sink is full (stream.ts): what is left in the
     * pipe is output still to come, not a pipe held open, so it is not cut meanwhile.
     */
    private readonly readingPaused: () => boolean = () => false,
  ) {}

  /** The command exited: whatever still holds its pipes gets PIPE_GRACE_MS. */
  onExit(): void {
    this.exited = true;
    this.pipeTimer = setTimeout(this.cut, PIPE_GRACE_MS);
  }

  /** Its pipes are closed (or were cut): nothing is left to cut. */
  onSettled(): void {
    clearTimeout(this.pipeTimer);
  }

  private readonly cut = (): void => {
    if (this.readingPaused()) {
      this.pipeTimer = setTimeout(this.cut, PIPE_RECHECK_MS);
      return;
    }
    this.cutPipes();
  };

  /**
   * stderr without unshare's SIGKILL quirk line (noting that it was there). unshare
   * writes that line in several write()s, so it can arrive in pieces: the end of a chunk
   * that could begin it is held back until the next chunk shows whether it does, or
   * until releaseStderr().
   */
  filterStderr(chunk: Buffer): Buffer {
    if (!this.isolated) return chunk;
    let data = this.heldStderr.length === 0 ? chunk : Buffer.concat([this.heldStderr, chunk]);
    this.heldStderr = EMPTY;
    const at = data.indexOf(QUIRK_BYTES);
    if (at !== -1) {
      this.sawQuirk = true;
      data = Buffer.concat([data.subarray(0, at), data.subarray(at + QUIRK_BYTES.length)]);
    }
    const keep = quirkStartAtEnd(data);
    if (keep === 0) return data;
    this.heldStderr = Buffer.from(data.subarray(data.length - keep));
    this.heldSince = performance.now();
    return data.subarray(0, data.length - keep);
  }

  /**
   * What filterStderr() has held back for at least `minAgeMs`: the rest of the quirk
   * line comes within microseconds, so a command quiet for longer (or ended) did not
   * write it, and those bytes are its own.
   */
  releaseStderr(minAgeMs = 0): Buffer {
    if (this.heldStderr.length === 0 || performance.now() - this.heldSince < minAgeMs) {
      return EMPTY;
    }
    const held = this.heldStderr;
    this.heldStderr = EMPTY;
    return held;
  }

  /** The same, for captured text. */
  filterStderrText(text: string): string {
    if (!this.isolated || !text.includes(UNSHARE_SIGKILL_QUIRK)) return text;
    this.sawQuirk = true;
    return text.replace(UNSHARE_SIGKILL_QUIRK, "");
  }

  /**
   * The exit as the command sees it; read once stderr has been drained. unshare's exit 1
   * stands for SIGKILL when it printed its quirk line, or when we killed PID 1 ourselves:
   * the line can reach us split across two reads, or not at all before the pipe is cut.
   */
  exitResult(exitCode: number | undefined, signal: string | undefined): RunResult {
    if (this.isolated && exitCode === 1 && (this.sawQuirk || this.killedInit)) {
      return { exitCode: null, signal: "SIGKILL" };
    }
    return { exitCode: exitCode ?? null, signal: (signal as NodeJS.Signals | undefined) ?? null };
  }

  /** TERM every process of the tree, wait up to graceMs, KILL; report what is still alive. */
  terminate(graceMs: number): Promise<{ survivors: number[] }> {
    // Not short-cut when exited: without isolation, group members can outlive the command.
    if (this.pid < 0) return Promise.resolve({ survivors: [] });
    this.terminating ??= this.kill(graceMs);
    return this.terminating;
  }

  private async kill(graceMs: number): Promise<{ survivors: number[] }> {
    const pid = this.pid;
    const info = await this.namespace;
    // unshare exiting by itself means it reaped PID 1, which the kernel only lets exit
    // once the namespace is empty. After we SIGKILL unshare that proves nothing.
    let exitMeansEmpty = true;
    // Isolated: the namespace's processes and unshare. Otherwise: the process group.
    const remaining = (): number[] => {
      if (!info) return processesInGroup(pid);
      if (this.exited && exitMeansEmpty) return [];
      return [...processesInRecordedNamespace(info), ...(isAlive(pid) ? [pid] : [])];
    };
    const killGroup = (signal: NodeJS.Signals): void => signalAll([-pid], signal);

    // PID 1 of the namespace ignores this unless it handles TERM; the rest get a chance
    // to clean up. unshare itself blocks TERM.
    if (info) signalRecordedNamespace(info, "SIGTERM");
    killGroup("SIGTERM");
    await waitFor(() => remaining().length === 0, graceMs, 50);

    if (info && !this.exited) {
      // Killing PID 1 makes the kernel kill the rest; the direct kills are for good
      // measure. unshare is left to reap PID 1 (killing it first would orphan a zombie)
      // and is only killed, with its group, if it does not exit by itself.
      this.killedInit = true;
      if (isSameNamespace(info)) signalAll([info.init], "SIGKILL");
      signalRecordedNamespace(info, "SIGKILL");
      await waitFor(() => this.exited, 1000);
    }
    if (remaining().length > 0) {
      exitMeansEmpty = false;
      killGroup("SIGKILL");
    }
    await waitFor(() => remaining().length === 0, KILL_WAIT_MS, 20);
    return { survivors: remaining() };
  }
}

/** One line saying why a command could not be started, from execa's message. */
export function startFailure(message: string | undefined): string {
  return (message ?? "unknown error").split("\n")[0]!;
}
