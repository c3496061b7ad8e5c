// Writes a download to its file in large batches and makes it durable as it goes.
//
// Chunks arrive at 64 KiB (a socket read); they are queued and written with one
// writev() per megabyte or so, which is a sixteenth of the system calls and promises of
// one write per chunk. Up to WRITES_IN_FLIGHT batches are written at once, each at its
// own offset: the copy into the page cache is most of a download's CPU (perf: 62% of
// the daemon's samples, in the thread pool, against 14% for SHA-1 on the main thread),
// and one write at a time left it on one core.
//
// Every SYNC_EVERY bytes an fdatasync() is started in the background (one at a time,
// never awaited by the writes): without it the kernel keeps the whole file dirty in
// memory until the final fsync, which then waits for the disk to write all of it, long
// after the network was done. With it the disk writes while the body arrives and the
// final fsync (still required: a name in the cache must survive power loss) has only
// the tail left. All I/O goes through the FileHandle, so closing it waits for whatever
// is still in flight.

import type { FileHandle } from "node:fs/promises";

/** Queue this much before a write (the last batch may be smaller). */
const BATCH_BYTES = 1024 * 1024;
/**
 * Above this much queued (besides the batches being written), write() asks the caller
 * to pause the source. 2 MiB with two batches in flight: 19 MiB of peak RSS growth for
 * a 1 GiB download, where 4 MiB took it to 37 MiB (bench/ensurepresent.ts).
 */
const HIGH_WATER_BYTES = 2 * 1024 * 1024;
/** Batches written at once (each by a thread of libuv's pool, at its own offset). */
const WRITES_IN_FLIGHT = 2;
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
  /** Batches being written. */
  private writing = 0;
  /** Where the next batch goes (the file is written from its start, in order). */
  private position = 0;
  private closing = false;
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
    if (this.queued >= BATCH_BYTES) this.pump();
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
      else this.pump();
    });
  }

  /** Take no more work (the download failed); what is in flight completes on its own. */
  stop(): void {
    this.stopped = true;
    this.queue = [];
    this.queued = 0;
    // Chunks in a write in flight are released when it completes.
    for (const r of this.releases.splice(0)) r();
  }

  private fail(err: unknown): void {
    if (this.failure !== undefined) return;
    this.failure = err;
    this.stop();
    this.onError(err);
    this.finished?.reject(err);
  }

  /** Start writes while batches are ready and fewer than WRITES_IN_FLIGHT run; then close. */
  private pump(): void {
    while (
      !this.stopped &&
      this.writing < WRITES_IN_FLIGHT &&
      (this.queued >= BATCH_BYTES || (this.ending && this.queued > 0))
    ) {
      const batch = this.queue;
      const size = this.queued;
      const releases = this.releases;
      const at = this.position;
      this.queue = [];
      this.queued = 0;
      this.releases = [];
      this.position += size;
      this.writing++;
      if (this.paused) {
        this.paused = false;
        this.onDrain();
      }
      this.writeAll(batch, size, at).then(
        () => {
          this.writing--;
          for (const r of releases) r();
          this.written(size);
          this.pump();
        },
        (err: unknown) => {
          this.writing--;
          for (const r of releases) r();
          this.fail(err);
        },
      );
    }
    if (this.ending && !this.stopped && this.writing === 0 && this.queued === 0) {
      void this.close();
    }
  }

  /** Every SYNC_EVERY bytes, one fdatasync in the background. */
  private written(size: number): void {
    this.sinceSync += size;
    if (this.sinceSync < SYNC_EVERY || this.syncing !== null || this.stopped) return;
    this.sinceSync = 0;
    this.syncing = this.file.datasync().then(
      () => void (this.syncing = null),
      (err: unknown) => {
        this.syncing = null;
        this.fail(err);
      },
    );
  }

  private async close(): Promise<void> {
    if (this.closing) return;
    this.closing = true;
    try {
      await this.syncing;
      await this.file.sync();
      await this.file.close();
      this.finished?.resolve();
    } catch (err) {
      this.fail(err);
    }
  }

  /** writev() at `at` until every byte is written (a regular file may take fewer). */
  private async writeAll(batch: Buffer[], size: number, at: number): Promise<void> {
    let rest = batch;
    let left = size;
    for (;;) {
      const { bytesWritten } = await this.file.writev(rest, at + size - left);
      left -= bytesWritten;
      if (left <= 0 || this.stopped) return;
      let skip = bytesWritten;
      while (skip >= rest[0]!.length) skip -= rest.shift()!.length;
      rest = skip > 0 ? [rest[0]!.subarray(skip), ...rest.slice(1)] : rest;
    }
  }
}
