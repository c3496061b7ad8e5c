// What `buildd build` shows while it works. On a terminal: one bar at the bottom, redrawn
// in place with \r (downloads: bytes sent of the total; the build: step n of m and the
// time so far), with the build log scrolling above it. Anywhere else (a pipe, a file, CI):
// plain lines only, one per event, never a \r or an escape sequence, so the output reads
// the same in a log file as it did live.

import { formatBytes, formatDuration } from "./format.js";

export interface DownloadProgress {
  readonly done: number;
  readonly total: number;
  /** Names of the files still being downloaded. */
  readonly active: readonly string[];
}

export interface BuildProgress {
  readonly step: string | null;
  /** 1-based position of the step among the known steps, when known. */
  readonly index: number | null;
  readonly count: number | null;
  readonly elapsedMs: number;
}

export interface Reporter {
  /** An event worth a line of its own: "build X started", "fetched report.txt". */
  line(text: string): void;
  /** Text of the build log, as it arrives (any chunking). */
  log(text: string): void;
  downloads(p: DownloadProgress): void;
  building(p: BuildProgress): void;
  /** The downloads or the build are over: remove the bar (lines go on). */
  endProgress(): void;
  /** Remove the bar and finish any partial log line. */
  close(): void;
}

export interface ReporterOptions {
  /** Do not show the build log. */
  readonly quiet: boolean;
}

const PREFIX = "buildd: ";

function bar(fraction: number, width: number): string {
  const f = Math.max(0, Math.min(1, fraction));
  const full = Math.round(f * width);
  return `[${"#".repeat(full)}${".".repeat(width - full)}]`;
}

class PlainReporter implements Reporter {
  private lastStep: string | null = null;
  private logEndsInNewline = true;

  constructor(
    private readonly out: NodeJS.WritableStream,
    private readonly opts: ReporterOptions,
  ) {}

  line(text: string): void {
    this.endLog();
    this.out.write(`${PREFIX}${text}\n`);
  }

  log(text: string): void {
    if (this.opts.quiet || text === "") return;
    this.out.write(text);
    this.logEndsInNewline = text.endsWith("\n");
  }

  downloads(): void {
    // Plain output says when each file is there (a line), not how far along it is.
  }

  building(p: BuildProgress): void {
    if (p.step === null || p.step === this.lastStep) return;
    this.lastStep = p.step;
    const of = p.index !== null && p.count !== null ? ` (${p.index}/${p.count})` : "";
    this.line(`step ${p.step}${of}`);
  }

  endProgress(): void {
    // No bar to remove.
  }

  close(): void {
    this.endLog();
  }

  private endLog(): void {
    if (!this.logEndsInNewline) this.out.write("\n");
    this.logEndsInNewline = true;
  }
}

class TtyReporter implements Reporter {
  private status = "";
  private partial = "";
  private lastStep: string | null = null;

  constructor(
    private readonly out: NodeJS.WriteStream,
    private readonly opts: ReporterOptions,
  ) {}

  line(text: string): void {
    this.above(`${PREFIX}${text}\n`);
  }

  log(text: string): void {
    if (this.opts.quiet) return;
    // Whole lines go above the bar; a partial line waits for its end.
    const joined = this.partial + text;
    const cut = joined.lastIndexOf("\n") + 1;
    this.partial = joined.slice(cut);
    if (cut > 0) this.above(joined.slice(0, cut));
  }

  downloads(p: DownloadProgress): void {
    const pct = p.total === 0 ? 100 : Math.floor((100 * p.done) / p.total);
    const names = p.active.length > 0 ? ` ${p.active.join(", ")}` : "";
    this.draw(
      `downloading ${bar(p.total === 0 ? 1 : p.done / p.total, 24)} ${pct}% ${formatBytes(p.done)}/${formatBytes(p.total)}${names}`,
    );
  }

  building(p: BuildProgress): void {
    if (p.step !== null && p.step !== this.lastStep) {
      this.lastStep = p.step;
      this.line(`step ${p.step}`);
    }
    const known = p.index !== null && p.count !== null;
    const progress = known ? `${bar((p.index! - 1) / p.count!, 24)} ${p.index}/${p.count} ` : "";
    this.draw(`building ${progress}${p.step ?? ""} ${formatDuration(p.elapsedMs)}`);
  }

  endProgress(): void {
    this.clear();
    this.status = "";
  }

  close(): void {
    if (this.partial !== "") this.above(`${this.partial}\n`);
    this.partial = "";
    this.endProgress();
  }

  private draw(status: string): void {
    // A pseudo-terminal may report 0 columns: assume 80 then.
    const width = Math.max(20, (this.out.columns || 80) - 1);
    this.status = status.length > width ? `${status.slice(0, width - 1)}…` : status;
    this.out.write(`\r\x1b[K${this.status}`);
  }

  private clear(): void {
    if (this.status !== "") this.out.write("\r\x1b[K");
  }

  /** Write text above the bar, then draw the bar again. */
  private above(text: string): void {
    this.clear();
    this.out.write(text);
    if (this.status !== "") this.out.write(this.status);
  }
}

export function createReporter(out: NodeJS.WriteStream, opts: ReporterOptions): Reporter {
  return out.isTTY ? new TtyReporter(out, opts) : new PlainReporter(out, opts);
}
