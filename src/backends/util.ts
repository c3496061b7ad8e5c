// Small helpers the backends share.

import fs from "node:fs";
import type { ProcessRunner, RunningProcess } from "../process/runner.js";

/** A machinery step failed (unpack, mount, unmount, remove): the message names the step. */
export class StepFailed extends Error {}

export async function runToCompletion(proc: RunningProcess, what: string): Promise<void> {
  const r = await proc.done;
  if (r.exitCode !== 0) {
    throw new StepFailed(
      `${what} failed (${r.signal ? `killed by ${r.signal}` : `exit status ${r.exitCode}`})`,
    );
  }
}

/**
 * Remove a directory tree without ever crossing into another file system: if a mount
 * was left behind inside it, rm refuses that part instead of deleting the host's files.
 */
export async function removeTree(runner: ProcessRunner, dir: string): Promise<void> {
  if (!fs.existsSync(dir)) return;
  const r = await runner.capture({ argv: ["rm", "-rf", "--one-file-system", "--", dir] });
  if (r.exitCode !== 0) {
    const said = r.stderr.trim().split("\n").at(-1) ?? "";
    const how = r.error ?? (r.signal ? `killed by ${r.signal}` : `exit status ${r.exitCode}`);
    throw new StepFailed(`removing ${dir} failed (${how})${said ? `: ${said}` : ""}`);
  }
}
