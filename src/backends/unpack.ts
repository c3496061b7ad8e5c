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

import { spawn } from "node:child_process";
import path from "node:path";
import readline from "node:readline";
import type { StepIO } from "./backend.js";
import { killAlive, type RunningProcess, type RunResult } from "../process/runner.js";
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

/** Start unpacking; `done` reports failure as a non-zero exit with the reason logged. */
export function startUnpack(tarball: string, dest: string, io: StepIO): RunningProcess {
  const argv = [
    "tar",
    "-xvv",
    "--numeric-owner",
    "--quoting-style=escape",
    "-f",
    tarball,
    "-C",
    dest,
  ];
  io.log.logCommand(argv);
  const child = spawn(argv[0]!, argv.slice(1), { stdio: ["ignore", "pipe", "pipe"] });
  let refused: string | null = null;
  let members = 0;
  readline.createInterface({ input: child.stdout }).on("line", (line) => {
    members++;
    const why = refused === null ? checkMember(line) : null;
    if (why) {
      refused = why;
      child.kill("SIGKILL");
    }
  });
  child.stderr.on("data", (chunk: Buffer) => io.log.write(chunk));
  const done = new Promise<RunResult>((resolve) => {
    child.once("error", (err) => {
      io.log.write(`[buildd] cannot run tar: ${err.message}\n`);
      resolve({ exitCode: 127, signal: null });
    });
    child.once("close", (code, signal) => {
      if (refused) io.log.write(`[buildd] refusing the chroot tarball: ${refused}\n`);
      else io.log.write(`[buildd] unpacked ${members} members\n`);
      resolve(refused ? { exitCode: 1, signal: null } : { exitCode: code, signal });
    });
  });
  return {
    pid: child.pid ?? -1,
    done,
    namespace: Promise.resolve(null),
    killRemaining: killAlive,
    async terminate() {
      child.kill("SIGKILL");
      await done;
      return { survivors: [] };
    },
  };
}

export async function unpack(tarball: string, dest: string, io: StepIO): Promise<void> {
  const r = await io.track(startUnpack(tarball, dest, io)).done;
  if (r.exitCode !== 0) {
    throw new StepFailed(
      `unpacking the chroot tarball failed (${r.signal ? `killed by ${r.signal}` : `exit status ${r.exitCode}`})`,
    );
  }
}
