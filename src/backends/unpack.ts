// Unpack a chroot tarball (gzip, xz, zstd or plain: GNU tar detects which) and refuse
// any member that would escape the target directory.
//
// One pass: tar extracts with `-vv`, which lists every member with its link target, into
// an index file beside the target (`--index-file`); we check each line as tar writes it
// and, once tar is done, fail the unpack at the first bad member. Checking in a separate
// listing pass would decompress the ~150 MB tarball twice. The listing goes to a file,
// not a pipe to us: through a pipe, tar's one write per member woke this process once
// per member (15,000 times for a bookworm chroot, about half a CPU-second of ours and as
// much of tar's), where the file is read in large reads every INDEX_POLL_MS. Nothing
// escapes meanwhile, because GNU tar itself never writes outside the target: it strips
// a leading "/", skips members containing "..", and creates symlinks that could lead
// out only after everything else is extracted. We still fail the build on such a
// member, because a chroot that contains one was not made for us.

import fs from "node:fs";
import path from "node:path";
import { StringDecoder } from "node:string_decoder";
import type { StepIO } from "./backend.js";
import type { ProcessRunner, RunningProcess, RunResult } from "../process/runner.js";
import { StepFailed } from "./util.js";

/**
 * A member's line in tar's `-vv` listing:
 * "<perms> <owner>/<group> <size or major,minor> <date> <time> <name>[ -> target | link to target]".
 * tar also writes other lines there ("Creating directory: ./d"), which are not members.
 */
const MEMBER_LINE = /^(\S)\S*\s+\S+\s+[\d,\s]+?\s+\d{4}-\d\d-\d\d \d\d:\d\d(?::\d\d)? (.*)$/;

/** Why a member is refused, or null when it is fine. Exported for unit tests. */
export function checkMember(line: string): string | null {
  const m = MEMBER_LINE.exec(line);
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

/** How often the index is read on while tar writes it. */
const INDEX_POLL_MS = 50;
/** One read of the index: its lines are checked in one turn of the event loop. */
const INDEX_READ_BYTES = 64 * 1024;

interface IndexCheck {
  readonly members: number;
  readonly refused: string | null;
  /** The index could not be read at the end: a refusal, unless tar failed anyway. */
  readonly unreadable: boolean;
}

/**
 * Checks each member line of the index, in order, as tar writes it: read on every
 * INDEX_POLL_MS while tar runs, so that once tar is done only the last lines are left
 * (checked after tar, all 15,000 lines of a bookworm chroot added 12–35 ms to the
 * unpack). Each read is 64 KiB, its lines checked before the next: checked at once, those
 * lines held status() up for 23–89 ms, and the index of a tarball with millions of
 * members could not be held in memory. An index that cannot be read at the end is a
 * refusal: nothing unchecked becomes a chroot.
 */
class IndexReader {
  private members = 0;
  private refused: string | null = null;
  private offset = 0;
  private partial = "";
  private readonly decoder = new StringDecoder("utf8");
  private readonly buffer = Buffer.allocUnsafe(INDEX_READ_BYTES);
  /** Reads run one after another, each from where the last stopped. */
  private reading: Promise<unknown> = Promise.resolve();
  private polling = false;
  private handle: fs.promises.FileHandle | undefined;

  constructor(private readonly file: string) {}

  /**
   * Check what tar has written so far, unless a read is still going (then it will);
   * a file not there yet is simply not read.
   */
  readOn(): void {
    if (this.polling) return;
    this.polling = true;
    this.reading = this.reading
      .then(() => this.readToEnd())
      .catch(() => {})
      .finally(() => (this.polling = false));
  }

  /** tar is done: check the rest, the last line too. */
  async finish(): Promise<IndexCheck> {
    const last = this.reading.then(() => this.readToEnd());
    this.reading = last.catch(() => {});
    try {
      await last;
      if (this.refused === null) this.take(this.decoder.end(), true);
    } catch (err) {
      const why = `its member listing could not be read (${(err as Error).message})`;
      return { members: this.members, refused: why, unreadable: true };
    } finally {
      await this.handle?.close().catch(() => {});
      this.handle = undefined;
    }
    return { members: this.members, refused: this.refused, unreadable: false };
  }

  private async readToEnd(): Promise<void> {
    if (this.refused !== null) return;
    // Opened once tar has created the file, and kept open until finish().
    this.handle ??= await fs.promises.open(this.file, "r");
    for (;;) {
      const { bytesRead } = await this.handle.read(this.buffer, 0, this.buffer.length, this.offset);
      if (bytesRead === 0) return;
      this.offset += bytesRead;
      this.take(this.decoder.write(this.buffer.subarray(0, bytesRead)), false);
      if (this.refused !== null) return;
    }
  }

  /** Check the complete lines of `text`; an unfinished last one waits, unless at the `end`. */
  private take(text: string, end: boolean): void {
    const lines = (this.partial + text).split("\n");
    this.partial = lines.pop()!;
    if (end && this.partial !== "") {
      lines.push(this.partial);
      this.partial = "";
    }
    for (const line of lines) {
      if (!MEMBER_LINE.test(line)) continue;
      this.members++;
      const why = checkMember(line);
      if (why) {
        this.refused = why;
        return;
      }
    }
  }
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
      // Each line's date in UTC: in local time, glibc's localtime() looks at
      // /etc/localtime again for every member (15,000 stat()s for a bookworm chroot,
      // most of what the listing added to tar's own time). Nothing reads the dates.
      "--utc",
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
  const reader = new IndexReader(index);
  const polling = setInterval(() => reader.readOn(), INDEX_POLL_MS);
  const done = tar.done.then(async (r): Promise<RunResult> => {
    clearInterval(polling);
    // Checked whether or not tar succeeded: GNU tar skips a member with ".." and fails
    // at the end, and the listing names it. A listing tar did not get to write is a
    // refusal only when tar claims success; otherwise tar's stderr says why.
    const check = await reader.finish();
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
