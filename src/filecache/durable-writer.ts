// Writes a download to its file in large batches and makes it durable as it goes.
//
// Chunks arrive at 64 KiB (a socket read); they are queued and written with one
// writev() per megabyte or so, which is a sixteenth of the system calls and promises of
// one write per chunk. Every SYNC_EVERY bytes an fdatasync() is started in the
// background (one at a time, never awaited by the writes): without it the kernel keeps
// the whole file dirty in memory until the final fsync, which then waits for the disk
// to write all of it, long after the network was done. With it the disk writes while
// the body arrives and the final fsync (still required: a name in the cache must
// survive power loss) has only the tail left. All I/O goes through the FileHandle, so
// closing it waits for whatever is still in flight.

import type { FileHandle } from "node:fs/promises";

/** Queue this much before a write (the last batch may be smaller). */
const BATCH_BYTES = 1024 * 1024;
/** Above this much queued, write() asks the caller to pause the source. */
const HIGH_WATER_BYTES = 4 * 1024 * 1024;
/** Start a background fdatasync after this many bytes written since the last one. */
const SYNC_EVERY = 32 * 1024 * 1024;

export class DurableWriter {
  /** Called once the queue is below the high-water mark after write() returned false. */
  onDrain: () => void = () => undefined;
  /** Called once, with the first write or sync failure. */
  onError: (err: unknown) => void = () => undefined;

  private queue: Buffer[] = [];
  /** Called once each queued chunk is written (its buffer may then be reused). */
  private releases: (() => void)[] = [];
  private queued = 0;
  private writing = false;
  private paused = false;
  private ending = false;
  private stopped = false;
  private failure: unknown = undefined;
  private sinceSync = 0;
  private syncing: Promise<void> | null = null;
  private finished: { resolve: () => void; reject: (err: unknown) => void } | null = null;

  constructor(private readonly file: FileHandle) {}

  /**
   * Queue `chunk`; false means "pause until onDrain". `release`, if given, is called once
   * the chunk is written (or dropped after a failure): the caller may reuse its memory.
   */
  write(chunk: Buffer, release?: () => void): boolean {
    if (this.stopped) {
      release?.();
      return true;
    }
    if (release !== undefined) this.releases.push(release);
    this.queue.push(chunk);
    this.queued += chunk.length;
    if (!this.writing && this.queued >= BATCH_BYTES) void this.drain();
    if (this.queued < HIGH_WATER_BYTES) return true;
    this.paused = true;
    return false;
  }

  /** Write what is queued, wait for the background sync, fsync; then close the handle. */
  finish(): Promise<void> {
    this.ending = true;
    return new Promise((resolve, reject) => {
      this.finished = { resolve, reject };
      if (this.failure !== undefined) reject(this.failure);
      else if (!this.writing) void this.drain();
    });
  }

  /** Take no more work (the download failed); what is in flight completes on its own. */
  stop(): void {
    this.stopped = true;
    this.queue = [];
    this.queued = 0;
    // Chunks in a write in flight are released when it completes.
    if (!this.writing) for (const r of this.releases.splice(0)) r();
  }

  private fail(err: unknown): void {
    if (this.failure !== undefined) return;
    this.failure = err;
    this.stop();
    this.onError(err);
    this.finished?.reject(err);
  }

  private async drain(): Promise<void> {
    this.writing = true;
    try {
      while (!this.stopped && (this.queued >= BATCH_BYTES || (this.ending && this.queued > 0))) {
        const batch = this.queue;
        const size = this.queued;
        const releases = this.releases;
        this.queue = [];
        this.queued = 0;
        this.releases = [];
        if (this.paused) {
          this.paused = false;
          this.onDrain();
        }
        try {
          await this.writeAll(batch, size);
        } finally {
          for (const r of releases) r();
        }
        this.sinceSync += size;
        if (this.sinceSync >= SYNC_EVERY && this.syncing === null) {
          this.sinceSync = 0;
          this.syncing = this.file.datasync().then(
            () => void (this.syncing = null),
            (err: unknown) => {
              this.syncing = null;
              this.fail(err);
            },
          );
        }
      }
      if (this.ending && !this.stopped) {
        await this.syncing;
        await this.file.sync();
        await this.file.close();
        this.finished?.resolve();
      }
    } catch (err) {
      this.fail(err);
    } finally {
      this.writing = false;
      if (this.stopped) for (const r of this.releases.splice(0)) r();
    }
  }

  /** writev() until every byte is written (a regular file may take fewer). */
  private async writeAll(batch: Buffer[], size: number): Promise<void> {
    let rest = batch;
    let left = size;
    for (;;) {
      const { bytesWritten } = await this.file.writev(rest);
      left -= bytesWritten;
      if (left <= 0 || this.stopped) return;
      let skip = bytesWritten;
      while (skip >= rest[0]!.length) skip -= rest.shift()!.length;
      rest = skip > 0 ? [rest[0]!.subarray(skip), ...rest.slice(1)] : rest;
    }
  }
}
