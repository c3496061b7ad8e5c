// Unpack a chroot tarball (gzip, xz, zstd or plain: GNU tar detects which) and refuse
// any member that would escape the target directory.
//
// One pass: tar extracts with `-vv`, which prints every member with its link target as
// it goes; we check each line and stop tar at the first bad member. Checking in a
// separate listing pass would decompress the ~150 MB tarball twice. Nothing escapes
// meanwhile, because GNU tar itself never writes outside the target: it strips a
// leading "/", skips members containing "..", and creates symlinks that could lead
// out only after everything else is extracted. We still fail the build on such a member,
// because a chroot that contains one was not made for us.

import path from "node:path";
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
  let refused: string | null = null;
  let members = 0;
  const tar: RunningProcess = runner.start({
    argv: ["tar", "-xvv", "--numeric-owner", "--quoting-style=escape", "-f", tarball, "-C", dest],
    log: io.log,
    // The listing is checked, not logged: a chroot has tens of thousands of members.
    stdout: (line) => {
      members++;
      const why = refused === null ? checkMember(line) : null;
      if (why) {
        refused = why;
        void tar.terminate(0);
      }
    },
  });
  const done = tar.done.then((r): RunResult => {
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
