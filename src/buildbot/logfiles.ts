// A shell step's `logfiles`: files in its working directory that the master shows as logs
// of their own, sent as `["log", [name, text]]` updates while the step runs. Each is read
// as root from the step's directory, so it is resolved through the builder's Tree on
// every poll: a step that replaces its log with a link to a file outside gets a refusal
// line in that log, not the file.
//
// A file is read no further ahead than the master acknowledges: while the command's
// updates are over their bound (UpdateBatcher), polls read nothing, and the last read
// at the step's end waits for room between chunks.

import fs from "node:fs";
import type { Tree } from "../backends/inroot.js";
import type { TextStream } from "./output.js";
import { WireError, type WireMap } from "./wire.js";

/** How often the files are read while the step runs (the reference polls every 2 s). */
const POLL_MS = 1000;
/** Read per poll and file at most, so one huge file cannot stall the others. */
const CHUNK = 256 * 1024;

export interface LogfileSpec {
  readonly name: string;
  readonly filename: string;
  /** Only what is appended after the step started. */
  readonly follow: boolean;
}

export function logfileSpecs(args: WireMap): LogfileSpec[] {
  const given = args.logfiles;
  if (given === undefined || given === null) return [];
  if (typeof given !== "object" || Array.isArray(given)) {
    throw new WireError('argument "logfiles" is not a map');
  }
  return Object.entries(given as WireMap).map(([name, v]) => {
    if (typeof v === "string") return { name, filename: v, follow: false };
    const spec = v as WireMap | null;
    if (spec !== null && typeof spec === "object" && typeof spec.filename === "string") {
      return { name, filename: spec.filename, follow: spec.follow === true };
    }
    throw new WireError(`logfiles: ${name} names no filename`);
  });
}

export class LogfileWatcher {
  private offset = 0;
  private refused = false;
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly tree: Tree,
    /** The file's path relative to the tree's root. */
    private readonly rel: string,
    private readonly stream: TextStream,
    private readonly spec: LogfileSpec,
    private readonly activity: () => void,
  ) {
    if (spec.follow) this.offset = this.size() ?? 0;
  }

  start(): void {
    this.timer = setInterval(() => this.poll(), POLL_MS);
  }

  /** Read what is left, at the master's pace, and end the log. */
  async stop(): Promise<void> {
    clearInterval(this.timer);
    do await this.stream.whenWritable();
    while (this.read(CHUNK));
    this.stream.end();
  }

  private size(): number | null {
    try {
      return fs.statSync(this.tree.regularFile(this.rel)).size;
    } catch {
      return null;
    }
  }

  private poll(): void {
    if (!this.stream.full) this.read(CHUNK);
  }

  /** Read up to `limit` bytes; true when it did, so there may be more. */
  private read(limit: number): boolean {
    if (this.refused) return false;
    let file: string;
    try {
      file = this.tree.regularFile(this.rel);
    } catch (err) {
      const problem = (err as { problem?: string }).problem;
      if (problem === "missing") return false; // not written yet
      this.refused = true;
      this.stream.push(
        Buffer.from(`[buildd] not reading ${this.spec.filename}: ${(err as Error).message}\n`),
      );
      return false;
    }
    let fd: number;
    try {
      fd = fs.openSync(
        file,
        fs.constants.O_RDONLY | fs.constants.O_NOFOLLOW | fs.constants.O_NONBLOCK,
      );
    } catch {
      return false;
    }
    let read = 0;
    try {
      const size = fs.fstatSync(fd).size;
      // Truncated or replaced by a shorter file: start again from its beginning.
      if (size < this.offset) this.offset = 0;
      const buf = Buffer.alloc(64 * 1024);
      while (read < limit) {
        const n = fs.readSync(fd, buf, 0, buf.length, this.offset);
        if (n === 0) break;
        this.offset += n;
        read += n;
        this.activity();
        this.stream.push(Buffer.from(buf.subarray(0, n)));
      }
    } finally {
      fs.closeSync(fd);
    }
    return read >= limit;
  }
}
