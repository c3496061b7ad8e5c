// capture(): a short command run to its end, its output handed back rather than logged
// (dpkg, capability probes, rm). execa, in the spawn helper (spawner.ts), buffers and
// interleaves the output and caps it; timeouts and cancelling kill the whole tree with
// our own ladder (tree.ts), from here.

import { commandLine } from "./isolation.js";
import { spawnHelper, supportFor, type Job } from "./spawner.js";
import type { Settled } from "./spawn-messages.js";
import { jobOptions, type CaptureResult, type CaptureSpec } from "./spec.js";
import { ProcessTree, startFailure } from "./tree.js";

const DEFAULT_MAX = 1024 * 1024;
const EXEC_FAILED = /^unshare: failed to execute (.*)$/m;

export async function capture(spec: CaptureSpec): Promise<CaptureResult> {
  if (spec.argv.length === 0) throw new TypeError("capture: empty argv");
  const none = { stdout: "", stderr: "", output: "", timedOut: false, canceled: false };
  const notRun = (why: string): CaptureResult => ({
    ...none,
    exitCode: null,
    signal: null,
    error: startFailure(why),
  });
  let support;
  try {
    support = await supportFor(spec.isolation);
  } catch (e) {
    return notRun(e instanceof Error ? e.message : String(e));
  }
  const { command, isolated } = commandLine(support, spec.argv, spec.isolation);
  const maxBytes = spec.maxBytes ?? DEFAULT_MAX;

  let tree: ProcessTree | null = null;
  let killWanted = false;
  let timedOut = false;
  let canceled = false;
  const kill = (): void => {
    killWanted = true;
    void tree?.terminate(0);
  };
  const timer =
    spec.timeoutMs === undefined
      ? undefined
      : setTimeout(() => {
          timedOut = true;
          kill();
        }, spec.timeoutMs);
  const onAbort = (): void => {
    canceled = true;
    kill();
  };
  if (spec.signal?.aborted) onAbort();
  else spec.signal?.addEventListener("abort", onAbort, { once: true });
  try {
    // A helper that cannot be started fails this command, never the caller.
    let r: Settled;
    try {
      r = await new Promise<Settled>((settle) => {
        const job: Job = spawnHelper().start(
          { command, options: jobOptions(spec), kind: "capture", maxBuffer: maxBytes, isolated },
          {
            spawned(pid) {
              tree = new ProcessTree(pid ?? -1, isolated, job.namespace, () => job.cut());
              if (killWanted) void tree.terminate(0);
            },
            exit: () => tree?.onExit(),
            settled(result) {
              tree?.onSettled();
              settle(result);
            },
          },
        );
      });
    } catch (e) {
      return notRun(e instanceof Error ? e.message : String(e));
    }
    const ran = tree as ProcessTree | null;
    if (!ran) return notRun(r.message ?? "it was not started");
    // The spawn helper stopped under it: nothing will report its end, so it is killed.
    if (r.lost) await ran.terminate(0);
    const stderr = ran.filterStderrText(r.stderr ?? "");
    const result = {
      ...ran.exitResult(r.exitCode, r.signal),
      stdout: r.stdout ?? "",
      stderr,
      output: ran.filterStderrText(r.all ?? ""),
      timedOut,
      canceled,
    };
    if (r.isMaxBuffer) {
      return { ...result, error: `its output exceeded ${maxBytes} characters` };
    }
    if (r.exitCode === undefined && r.signal === undefined && !timedOut && !canceled) {
      return { ...result, exitCode: null, error: startFailure(r.message) };
    }
    // Isolated, a program that cannot be run is unshare's to report: say it the same way.
    const execFailed = isolated && (r.exitCode ?? 0) >= 126 ? EXEC_FAILED.exec(stderr) : null;
    if (execFailed) return { ...result, exitCode: null, error: execFailed[1]! };
    return { ...result, error: null };
  } finally {
    clearTimeout(timer);
    spec.signal?.removeEventListener("abort", onAbort);
  }
}
