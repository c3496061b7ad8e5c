// A command's output on its way to the master: scrubbed, decoded, cut into whole lines,
// batched into `update` messages.
//
// The master appends what it gets to its logs as whole lines: text without a final "\n"
// loses its last character, so a partial line is held until its newline arrives or the
// stream ends (then it is sent with a "\n" added). Each text update is
// `[text, [offsets of each "\n"], [a time per line]]`; the master uses the text only, the
// rest is the protocol's shape. Updates are sent when buffer_size bytes are waiting or
// buffer_timeout after the first one, as the master asked (set_worker_settings), and
// always before the command's rc, so the logs are complete when the step ends.
//
// Flow control: the master acknowledges an update once it has stored it. Updates sent
// and not yet acknowledged are bounded per command (MAX_UNACKED_BYTES); over that, the
// command's sources are asked to wait (whenWritable: the runner pauses the child's pipes,
// the logfile watchers skip their reads), so a step writing faster than the master stores
// does not grow the worker's memory; it is slowed down to the master's pace instead.

import type { BuildLogStream, OutputSink } from "../log/buildlog.js";
import { StreamScrubber, type Scrubber } from "../log/scrub.js";

export interface OutputSettings {
  /** Bytes of updates held before they are sent. */
  readonly bufferSize: number;
  /** How long the first held update may wait, in ms. */
  readonly bufferTimeoutMs: number;
  /** Longer lines are cut into pieces of this many characters. */
  readonly maxLineLength: number;
  /** What the master counts as a line break besides "\n" (\r\n, a lone \r, cursor moves). */
  readonly newline: RegExp;
}

/** The master's own choice, which it sends at attach anyway; used until it does. */
export const DEFAULT_SETTINGS: OutputSettings = {
  bufferSize: 64 * 1024,
  bufferTimeoutMs: 5000,
  maxLineLength: 4096,
  // Escape sequences and backspaces are what a progress bar redraws with.
  // eslint-disable-next-line no-control-regex
  newline: /(\r\n|\r(?=.)|\x1b\[u|\x1b\[[0-9]+;[0-9]+[Hf]|\x1b\[2J|\x08+)/g,
};

/** The newline pattern the master sent (Python syntax, which JS reads the same here). */
export function newlinePattern(source: string): RegExp {
  try {
    return new RegExp(source, "g");
  } catch {
    return DEFAULT_SETTINGS.newline;
  }
}

/** Cuts text into whole lines; holds the partial last one. */
export class LineSplitter {
  private partial = "";

  constructor(private readonly settings: OutputSettings) {}

  /** The whole lines now complete ("" when none). */
  push(text: string): string {
    const all = (this.partial + text).replace(this.settings.newline, "\n");
    const cut = all.lastIndexOf("\n") + 1;
    this.partial = all.slice(cut);
    let out = this.limit(all.slice(0, cut));
    // A partial line that is already too long is sent in pieces too.
    const max = this.settings.maxLineLength;
    while (this.partial.length >= max) {
      out += `${this.partial.slice(0, max)}\n`;
      this.partial = this.partial.slice(max);
    }
    return out;
  }

  /** The held partial line with a "\n" added ("" when none). */
  flush(): string {
    const rest = this.partial;
    this.partial = "";
    return rest === "" ? "" : `${rest}\n`;
  }

  private limit(lines: string): string {
    const max = this.settings.maxLineLength;
    if (lines.length <= max) return lines;
    return lines
      .split("\n")
      .map((line) => {
        if (line.length <= max) return line;
        const pieces: string[] = [];
        for (let i = 0; i < line.length; i += max) pieces.push(line.slice(i, i + max));
        return pieces.join("\n");
      })
      .join("\n");
  }
}

/** `[text, [offsets of "\n"], [times]]` for whole lines of text. */
export function lineInfo(text: string, now = Date.now() / 1000): [string, number[], number[]] {
  const offsets: number[] = [];
  for (let i = text.indexOf("\n"); i !== -1; i = text.indexOf("\n", i + 1)) offsets.push(i);
  return [text, offsets, offsets.map(() => now)];
}

/**
 * Bytes of one command's updates sent and not yet acknowledged (as the batcher counts
 * them: text plus a little per line), beyond which its output is paused. The master asks
 * for updates of buffer_size (64 KiB) each; 4 MiB is 64 of them in flight, enough to keep
 * a link of 40 MB/s busy at 100 ms round trip, while a worker running a few steps at once
 * holds a few MiB for each at most, whatever they write. Never less than two updates of
 * the master's size, whatever buffer_size it asks for.
 */
export const MAX_UNACKED_BYTES = 4 * 1024 * 1024;

type Info = [string, number[], number[]];
type Entry = [string, unknown];

/** A text stream of the protocol: stdout, stderr, header, or a named log file. */
export type TextKey = "stdout" | "stderr" | "header" | { readonly log: string };

/** Batches one command's updates and sends them in order. */
export class UpdateBatcher {
  private entries: Entry[] = [];
  private bytes = 0;
  private timer: NodeJS.Timeout | undefined;
  /** Updates sent and not yet answered, each settling (never rejecting) with its answer. */
  private readonly sent = new Set<Promise<void>>();
  /** Their bytes. */
  private unacked = 0;
  /** Who waits for room (whenWritable). */
  private waiters: (() => void)[] = [];

  constructor(
    private readonly send: (args: Entry[]) => Promise<unknown>,
    private readonly settings: () => OutputSettings,
    private readonly maxUnacked = MAX_UNACKED_BYTES,
  ) {}

  /** Bytes sent and not yet acknowledged. */
  get pending(): number {
    return this.unacked;
  }

  /** A source waits for room now: output is paused on the master's acknowledgements. */
  get waiting(): boolean {
    return this.waiters.length > 0;
  }

  /** Too much is unacknowledged: sources should wait (whenWritable). */
  get full(): boolean {
    return this.unacked + this.bytes >= this.limit();
  }

  /**
   * null when more output may come now; otherwise a promise that resolves once the
   * master acknowledged enough (or the connection is gone, or the batcher discarded).
   */
  whenWritable(): Promise<void> | null {
    if (!this.full) return null;
    return new Promise((resolve) => this.waiters.push(resolve));
  }

  /** Whole lines for a text stream. */
  text(key: TextKey, lines: string): void {
    if (lines === "") return;
    const info = lineInfo(lines);
    const last = this.entries.at(-1);
    if (typeof key === "string") {
      if (last !== undefined && last[0] === key) joinInfo(last[1] as Info, info);
      else this.entries.push([key, info]);
    } else {
      const tail = last?.[0] === "log" ? (last[1] as [string, Info]) : undefined;
      if (tail !== undefined && tail[0] === key.log) joinInfo(tail[1], info);
      else this.entries.push(["log", [key.log, info]]);
    }
    this.added(lines.length + 16 * info[1].length);
  }

  /** Any other update: rc, elapsed, files, stat. */
  value(key: string, value: unknown): void {
    this.entries.push([key, value]);
    this.added(20);
  }

  /** Send what is held now. */
  flush(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
    if (this.entries.length === 0) return;
    const entries = this.entries;
    const size = this.bytes;
    this.entries = [];
    this.bytes = 0;
    this.unacked += size;
    // An update the master refuses (its step already gone) is not ours to handle; one
    // the connection lost frees its room too, so nothing waits for a gone master.
    const answered = (): void => {
      this.sent.delete(sent);
      this.unacked -= size;
      this.wake();
    };
    const sent: Promise<void> = this.send(entries).then(answered, answered);
    this.sent.add(sent);
  }

  /** Send what is held and wait until the master acknowledged every update. */
  async drain(): Promise<void> {
    this.flush();
    while (this.sent.size > 0) await Promise.all([...this.sent]);
  }

  /** Stop the timer without sending (the connection is gone); nobody waits for room. */
  discard(): void {
    clearTimeout(this.timer);
    this.entries = [];
    this.bytes = 0;
    this.release();
  }

  private limit(): number {
    return Math.max(this.maxUnacked, 2 * this.settings().bufferSize);
  }

  private wake(): void {
    if (this.waiters.length === 0 || this.full) return;
    this.release();
  }

  private release(): void {
    for (const resolve of this.waiters.splice(0)) resolve();
  }

  private added(size: number): void {
    this.bytes += size;
    const s = this.settings();
    if (this.bytes >= s.bufferSize) this.flush();
    else this.timer ??= setTimeout(() => this.flush(), s.bufferTimeoutMs);
  }
}

function joinInfo(into: Info, more: Info): void {
  const base = into[0].length;
  into[0] += more[0];
  for (const o of more[1]) into[1].push(base + o);
  into[2].push(...more[2]);
}

/**
 * A command's output streams: bytes → scrubbed (credentials can straddle chunks, hence the
 * StreamScrubber) → decoded as UTF-8 (a character can straddle chunks too) → whole lines.
 */
export class TextStream {
  private readonly scrubber: StreamScrubber;
  private readonly decoder = new TextDecoder("utf-8");
  private readonly lines: LineSplitter;

  constructor(
    private readonly key: TextKey,
    scrubber: Scrubber,
    settings: OutputSettings,
    private readonly updates: UpdateBatcher,
    /** false: the master did not want this stream (want_stdout); it is read and dropped. */
    private readonly wanted = true,
  ) {
    this.scrubber = new StreamScrubber(scrubber);
    this.lines = new LineSplitter(settings);
  }

  push(chunk: Buffer): void {
    this.emit(this.scrubber.push(chunk), false);
  }

  /** Quiet for a while: let out what can safely be scrubbed (still whole lines only). */
  flushIdle(): void {
    this.emit(this.scrubber.flushIdle(), false);
  }

  end(): void {
    this.emit(this.scrubber.end(), true);
  }

  /** The command's updates are over their bound: wait before reading more for it. */
  get full(): boolean {
    return this.wanted && this.updates.full;
  }

  /** Backpressure: the command's updates are over their bound (UpdateBatcher). */
  whenWritable(): Promise<void> | null {
    // A stream read only to be dropped holds nothing: it is never held up.
    return this.wanted ? this.updates.whenWritable() : null;
  }

  private emit(bytes: Buffer, last: boolean): void {
    const text = this.decoder.decode(bytes, { stream: !last });
    if (!this.wanted) return;
    let out = this.lines.push(text);
    if (last) out += this.lines.flush();
    this.updates.text(this.key, out);
  }
}

/** The runner's sink for a Buildbot command: stdout and stderr to their own streams. */
export class CommandSink implements OutputSink {
  readonly path: string;

  constructor(
    label: string,
    private readonly streams: { stdout: TextStream; stderr: TextStream },
    /** What the runner says itself ("failed to start …") becomes a header line. */
    private readonly say: (text: string) => void,
    /** Output was seen (the no-output timeout starts again). */
    private readonly activity: () => void,
  ) {
    this.path = label;
  }

  logCommand(): void {
    // The command's header lines are the shell command's own (shell.ts).
  }

  write(text: string | Buffer): void {
    this.say(text.toString());
  }

  stream(which: "stdout" | "stderr"): BuildLogStream {
    const s = this.streams[which];
    return {
      push: (chunk) => {
        this.activity();
        s.push(chunk);
      },
      flushIdle: () => s.flushIdle(),
      end: () => s.end(),
      whenWritable: () => s.whenWritable(),
    };
  }
}
