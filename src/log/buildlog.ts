// The build log file: what the manager fetches as /filecache/buildlog and tails in status().
//
// Everything reaches the file through a Scrubber, so no unscrubbed copy ever exists on
// disk (the reference renames the raw log aside and rewrites a scrubbed copy at the end;
// the raw file then stays downloadable). Writes are synchronous appends on an O_APPEND
// fd: a reader (the HTTP file server, readLogTail) always sees whole writes in order,
// and nothing is lost in a buffer if the daemon dies.
//
// The log also keeps its last LOG_TAIL_BYTES in memory (tail()): status() sends them on
// every call of a build, and reading them back from the file cost four system calls a
// call, the largest part of status() of ours during a build (docs/performance.md).

import {
  closeSync,
  constants,
  fchmodSync,
  fstatSync,
  openSync,
  readSync,
  writeSync,
} from "node:fs";
import type { Scrubber } from "./scrub.js";
import { StreamScrubber } from "./scrub.js";

/** How much of the log's end status() sends as its logtail. */
export const LOG_TAIL_BYTES = 2048;

export interface BuildLogOptions {
  /** The file never grows past this many bytes of output (plus one final notice line). */
  maxBytes: number;
  scrubber: Scrubber;
}

/** One output stream (a child's stdout or stderr) feeding the log, scrubbed across chunks. */
export interface BuildLogStream {
  push(chunk: Buffer): void;
  /**
   * Backpressure: null when the sink takes more now; otherwise a promise that settles
   * (never rejects) once it does. The runner asks after every push and, given a promise,
   * stops reading the child's pipe until it settles: the child then blocks on a full
   * pipe, as it would writing to a slow disk. Absent: never full (the build log file).
   */
  whenWritable?(): Promise<void> | null;
  /** Emit a held-back partial line that cannot contain a credential (see StreamScrubber). */
  flushIdle(): void;
  end(): void;
}

/**
 * Where a command's output goes: the build log (one file, both streams in it), or a sink
 * that keeps stdout and stderr apart (the Buildbot worker sends them to the master as two
 * kinds of update). The runner (src/process/stream.ts) writes only through this.
 */
export interface OutputSink {
  /** Where the output goes, for messages (the build log's path). */
  readonly path: string;
  /** Note a command about to run (the RUN line), scrubbed. */
  logCommand(argv: readonly string[]): void;
  /** Whole text the runner says itself ("failed to start …"), scrubbed. */
  write(text: string | Buffer): void;
  /** A sink for one of the child's output streams; called once for each. */
  stream(which: "stdout" | "stderr"): BuildLogStream;
}

export class BuildLog implements OutputSink {
  private fd: number | null;
  private bytes: number;
  private over = false;
  private readonly callbacks: (() => void)[] = [];
  /** The file's last bytes: `recentLength` bytes at the start, room for as many again. */
  private readonly recent = Buffer.alloc(2 * LOG_TAIL_BYTES);
  private recentLength = 0;
  /** tail() as last given, until the next write. */
  private tailCopy: Buffer | null = null;

  private constructor(
    readonly path: string,
    fd: number,
    private readonly opts: BuildLogOptions,
  ) {
    this.fd = fd;
    this.bytes = fstatSync(fd).size;
    // A log reopened after a restart may already be at the limit.
    if (this.bytes >= opts.maxBytes) this.over = true;
    if (this.bytes > 0) this.remember(readLogTail(path, LOG_TAIL_BYTES));
  }

  /** Create (or truncate) the log, mode 0644 whatever the umask. */
  static create(path: string, opts: BuildLogOptions): BuildLog {
    const { O_WRONLY, O_CREAT, O_TRUNC, O_APPEND } = constants;
    const fd = openSync(path, O_WRONLY | O_CREAT | O_TRUNC | O_APPEND, 0o644);
    fchmodSync(fd, 0o644);
    return new BuildLog(path, fd, opts);
  }

  /** Append to an existing log (after a builder restart); created if missing. */
  static reopen(path: string, opts: BuildLogOptions): BuildLog {
    return new BuildLog(path, openSync(path, "a", 0o644), opts);
  }

  get size(): number {
    return this.bytes;
  }

  /**
   * The last LOG_TAIL_BYTES of the file (all of it if shorter), from memory: exactly the
   * bytes a read of the file's end would give. The same Buffer until the next write;
   * the caller must not change it.
   */
  tail(): Buffer {
    this.tailCopy ??= Buffer.from(
      this.recent.subarray(Math.max(0, this.recentLength - LOG_TAIL_BYTES), this.recentLength),
    );
    return this.tailCopy;
  }

  get exceeded(): boolean {
    return this.over;
  }

  /** `cb` runs once, when the limit is hit (at once if it already was). */
  onExceeded(cb: () => void): void {
    if (this.over) cb();
    else this.callbacks.push(cb);
  }

  /** Append whole text (a builder message), scrubbed. */
  write(text: string | Buffer): void {
    const { scrubber } = this.opts;
    this.append(
      typeof text === "string"
        ? Buffer.from(scrubber.scrub(text), "utf8")
        : scrubber.scrubBuffer(text),
    );
  }

  /**
   * A sink for a stream of arbitrary chunks (child output). Chunks may split a credential
   * anywhere, so it goes through a StreamScrubber rather than write(); call end() when
   * the stream closes to emit what is held back. Both of a child's streams go to the
   * same file, so which one this is does not matter here.
   */
  stream(): BuildLogStream {
    const scrubber = new StreamScrubber(this.opts.scrubber);
    return {
      push: (chunk) => this.append(scrubber.push(chunk)),
      flushIdle: () => this.append(scrubber.flushIdle()),
      end: () => this.append(scrubber.end()),
    };
  }

  /**
   * Log a command about to run. Timestamp format: "YYYY-MM-DD HH:MM:SS UTC", always UTC
   * (the reference prints local ctime and labels it UTC, which is wrong off-UTC).
   */
  logCommand(argv: readonly string[]): void {
    this.write(`[${utcTimestamp(new Date())}]\nRUN: ${shellQuote(argv)}\n`);
  }

  /** Further writes are dropped: output can still trickle in while a build is torn down. */
  close(): void {
    if (this.fd === null) return;
    closeSync(this.fd);
    this.fd = null;
  }

  /** Bytes here are already scrubbed. */
  private append(bytes: Buffer): void {
    if (this.fd === null || this.over || bytes.length === 0) return;
    const room = this.opts.maxBytes - this.bytes;
    if (bytes.length <= room) {
      this.writeAll(bytes);
      return;
    }
    this.writeAll(bytes.subarray(0, Math.max(0, room)));
    this.writeAll(
      Buffer.from(
        `\n[buildd] build log exceeded the maximum size of ${this.opts.maxBytes} bytes; stopping the build\n`,
      ),
    );
    this.over = true;
    for (const cb of this.callbacks.splice(0)) cb();
  }

  private writeAll(bytes: Buffer): void {
    // writeSync may write less than asked (rare for files, but allowed).
    for (let off = 0; off < bytes.length;) {
      off += writeSync(this.fd!, bytes, off, bytes.length - off);
    }
    this.bytes += bytes.length;
    this.remember(bytes);
  }

  /** Keep the end of what was just written to the file (tail()). */
  private remember(bytes: Buffer): void {
    if (bytes.length === 0) return;
    this.tailCopy = null;
    if (bytes.length >= LOG_TAIL_BYTES) {
      bytes.copy(this.recent, 0, bytes.length - LOG_TAIL_BYTES);
      this.recentLength = LOG_TAIL_BYTES;
      return;
    }
    if (this.recentLength + bytes.length > this.recent.length) {
      // Keep only what the tail can still need, at the front.
      const keep = LOG_TAIL_BYTES - bytes.length;
      this.recent.copyWithin(0, this.recentLength - keep, this.recentLength);
      this.recentLength = keep;
    }
    bytes.copy(this.recent, this.recentLength);
    this.recentLength += bytes.length;
  }
}

export function utcTimestamp(date: Date): string {
  return `${date.toISOString().slice(0, 19).replace("T", " ")} UTC`;
}

/**
 * The last ≤maxBytes bytes of the file. One positioned read at the end: the cost does not
 * depend on the log's size. A missing file (cleaned, or not started) gives an empty Buffer.
 */
export function readLogTail(path: string, maxBytes = 2048): Buffer {
  let fd: number;
  try {
    fd = openSync(path, "r");
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return Buffer.alloc(0);
    throw err;
  }
  try {
    const size = fstatSync(fd).size;
    const want = Math.min(size, maxBytes);
    const buf = Buffer.alloc(want);
    let got = 0;
    while (got < want) {
      const n = readSync(fd, buf, got, want - got, size - want + got);
      if (n === 0) break; // truncated under us
      got += n;
    }
    return buf.subarray(0, got);
  } finally {
    closeSync(fd);
  }
}

// Python's shlex.quote: these characters never need quoting.
const SAFE = /^[A-Za-z0-9_@%+=:,./-]+$/;

/** POSIX sh quoting, like Python's shlex.join. */
export function shellQuote(argv: readonly string[]): string {
  return argv.map((arg) => (SAFE.test(arg) ? arg : `'${arg.replaceAll("'", `'"'"'`)}'`)).join(" ");
}
