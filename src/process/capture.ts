// capture(): a short command run to its end, its output handed back rather than logged
// (dpkg, capability probes, rm). execa buffers and interleaves the output and caps it;
// timeouts and cancelling kill the whole tree with our own ladder (tree.ts).

import { execa } from "execa";
import { commandLine } from "./isolation.js";
import { spawnBasics, type CaptureResult, type CaptureSpec } from "./spec.js";
import { ProcessTree, startFailure } from "./tree.js";

const DEFAULT_MAX = 1024 * 1024;
const EXEC_FAILED = /^unshare: failed to execute (.*)$/m;

export async function capture(spec: CaptureSpec): Promise<CaptureResult> {
  if (spec.argv.length === 0) throw new TypeError("capture: empty argv");
  const { command, isolated } = commandLine(spec.argv, spec.isolation);
  const maxBytes = spec.maxBytes ?? DEFAULT_MAX;
  const none = { stdout: "", stderr: "", output: "", timedOut: false, canceled: false };
  let subprocess;
  try {
    subprocess = execa(command[0]!, command.slice(1), {
      ...spawnBasics(spec),
      all: true,
      maxBuffer: maxBytes,
      stripFinalNewline: false,
    });
  } catch (e) {
    return { ...none, exitCode: null, signal: null, error: startFailure((e as Error).message) };
  }
  const tree = new ProcessTree(subprocess, subprocess, isolated);
  let timedOut = false;
  let canceled = false;
  const timer =
    spec.timeoutMs === undefined
      ? undefined
      : setTimeout(() => {
          timedOut = true;
          void tree.terminate(0);
        }, spec.timeoutMs);
  const onAbort = (): void => {
    canceled = true;
    void tree.terminate(0);
  };
  if (spec.signal?.aborted) onAbort();
  else spec.signal?.addEventListener("abort", onAbort, { once: true });
  try {
    const r = await subprocess;
    const stderr = tree.filterStderrText(r.stderr);
    const result = {
      ...tree.exitResult(r.exitCode, r.signal),
      stdout: r.stdout,
      stderr,
      output: tree.filterStderrText(r.all),
      timedOut,
      canceled,
    };
    if (r.isMaxBuffer) {
      return { ...result, error: `its output exceeded ${maxBytes} characters` };
    }
    if (r.exitCode === undefined && r.signal === undefined && !timedOut && !canceled) {
      return {
        ...result,
        exitCode: null,
        error: startFailure(r.originalMessage ?? r.shortMessage),
      };
    }
    // Isolated, a program that cannot be run is unshare's to report: say it the same way.
    const notRun = isolated && (r.exitCode ?? 0) >= 126 ? EXEC_FAILED.exec(stderr) : null;
    if (notRun) return { ...result, exitCode: null, error: notRun[1]! };
    return { ...result, error: null };
  } finally {
    clearTimeout(timer);
    spec.signal?.removeEventListener("abort", onAbort);
  }
}
