// Small helpers the backends share.

import { execFile } from "node:child_process";
import fs from "node:fs";
import { promisify } from "node:util";
import type { RunningProcess } from "../process/runner.js";

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
export async function removeTree(dir: string): Promise<void> {
  if (!fs.existsSync(dir)) return;
  await promisify(execFile)("rm", ["-rf", "--one-file-system", "--", dir]);
}
