// Unpack a chroot tarball (gzip, xz, zstd or plain: GNU tar detects which) and refuse
// any member that would escape the target directory.
//
// One pass: tar extracts with `-vv`, which lists every member with its link target, into
// an index file beside the target (`--index-file`); once tar is done we check each line
// and fail the unpack at the first bad member. Checking in a separate listing pass
// would decompress the ~150 MB tarball twice. The listing goes to a file, not a pipe to
// us: through a pipe, tar's one write per member woke this process once per member
// (15,000 times for a bookworm chroot, about half a CPU-second of ours and as much of
// tar's), where the file is read in a few large reads at the end. Nothing escapes
// meanwhile, because GNU tar itself never writes outside the target: it strips a
// leading "/", skips members containing "..", and creates symlinks that could lead
// out only after everything else is extracted. We still fail the build on such a member,
// because a chroot that contains one was not made for us.

import fs from "node:fs";
import path from "node:path";
import readline from "node:readline";
import type { StepIO } from "./backend.js";
import type { ProcessRunner, RunningProcess, RunResult } from "../process/runner.js";
import { StepFailed } from "./util.js";

/** Why a member is refused, or null when it is fine. Exported for unit tests. */
export function checkMember(line: string): string | null {
  // "<perms> <owner>/<group> <size or major,minor> <date> <time> <name>[ -> target | link to target]"
  const m = /^(\S)\S*\s+\S+\s+[\d,\s]+?\s+\d{4}-\d\d-\d\d \d\d:\d\d(?::\d\d)? (.*)$/.exec(line);
  if (!m) return null;
  const kind = m[1];
  let name = m[2]!;
  let target: string | null = null;
  if (kind === "l") {
    const i = name.indexOf(" -> ");
    if (i >= 0) [name, target] = [name.slice(0, i), name.slice(i + 4)];
  } else if (kind === "h") {
    const i = name.indexOf(" link to ");
    if (i >= 0) [name, target] = [name.slice(0, i), name.slice(i + 9)];
  }
  if (name.startsWith("/")) return `member ${name} has an absolute path`;
  if (name.split("/").includes("..")) return `member ${name} contains ".."`;
  if (target !== null) {
    if (kind === "h" && (target.startsWith("/") || target.split("/").includes(".."))) {
      return `hard link ${name} points outside the chroot (${target})`;
    }
    // Absolute symlinks are fine: inside the chroot they resolve against its root.
    if (kind === "l" && !target.startsWith("/")) {
      const resolved = path.posix.normalize(path.posix.join(path.posix.dirname(name), target));
      if (resolved === ".." || resolved.startsWith("../")) {
        return `symlink ${name} points outside the chroot (${target})`;
      }
    }
  }
  return null;
}

/** Where tar lists the members: beside the target, never inside the chroot. */
export function indexFileFor(dest: string): string {
  return path.join(path.dirname(dest), `.${path.basename(dest)}.members`);
}

/**
 * Each member line of the index, in order: the count and the first refusal. Read as a
 * stream, a 64 KiB chunk at a time with the event loop free in between: checked at once,
 * a bookworm chroot's 15,000 lines held status() up for 23-89 ms, and the index of a
 * tarball with millions of members could not be held in memory. An index that cannot be
 * read is a refusal: nothing unchecked becomes a chroot.
 */
async function checkIndex(
  index: string,
): Promise<{ members: number; refused: string | null; unreadable: boolean }> {
  let members = 0;
  try {
    const lines = readline.createInterface({
      input: fs.createReadStream(index, { encoding: "utf8" }),
      crlfDelay: Infinity,
    });
    for await (const line of lines) {
      members++;
      const why = checkMember(line);
      if (why) {
        lines.close();
        return { members, refused: why, unreadable: false };
      }
    }
  } catch (err) {
    const why = `its member listing could not be read (${(err as Error).message})`;
    return { members, refused: why, unreadable: true };
  }
  return { members, refused: null, unreadable: false };
}

/**
 * Start unpacking, through the runner like any step: tar is PID 1 of its own namespace,
 * so an abort during the unpack kills it and whatever it started (a decompressor). `done`
 * reports a refused member as exit status 1, with the reason logged.
 */
export function startUnpack(
  runner: ProcessRunner,
  tarball: string,
  dest: string,
  io: StepIO,
): RunningProcess {
  const index = indexFileFor(dest);
  fs.rmSync(index, { force: true });
  const tar: RunningProcess = runner.start({
    argv: [
      "tar",
      "-xvv",
      `--index-file=${index}`,
      "--numeric-owner",
      "--quoting-style=escape",
      "-f",
      tarball,
      "-C",
      dest,
    ],
    // The listing is checked, not logged: a chroot has tens of thousands of members.
    log: io.log,
  });
  const done = tar.done.then(async (r): Promise<RunResult> => {
    // Checked whether or not tar succeeded: GNU tar skips a member with ".." and fails
    // at the end, and the listing names it. A listing tar did not get to write is a
    // refusal only when tar claims success; otherwise tar's stderr says why.
    const check = await checkIndex(index);
    const { members } = check;
    const refused = check.unreadable && r.exitCode !== 0 ? null : check.refused;
    fs.rmSync(index, { force: true });
    if (refused) io.log.write(`[buildd] refusing the chroot tarball: ${refused}\n`);
    else if (r.exitCode === 0) io.log.write(`[buildd] unpacked ${members} members\n`);
    return refused ? { exitCode: 1, signal: null } : r;
  });
  return { ...tar, done, terminate: (graceMs) => tar.terminate(graceMs) };
}

export async function unpack(
  runner: ProcessRunner,
  tarball: string,
  dest: string,
  io: StepIO,
): Promise<void> {
  const r = await io.track(startUnpack(runner, tarball, dest, io)).done;
  if (r.exitCode !== 0) {
    throw new StepFailed(
      `unpacking the chroot tarball failed (${r.signal ? `killed by ${r.signal}` : `exit status ${r.exitCode}`})`,
    );
  }
}
