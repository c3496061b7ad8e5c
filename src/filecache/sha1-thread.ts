// SHA-1 of a download on a thread of its own.
//
// Hashing was most of the main thread's work in a download (0.77 of its 1.2 CPU-s per
// GiB, measured here with the page cache warm), and with it there the main thread was
// the download's bottleneck: 812 MB/s where `dd` + fsync wrote 906, and every status()
// call waited behind the hash of a 256 KiB read. On a thread of its own the hash runs
// beside the reads and the writes, on the other core.
//
// The bytes are not copied when they are in shared memory: body-capture.ts reads into
// SharedArrayBuffers, and the thread is told where each piece lies. Adjacent pieces of
// one buffer go as one range (up to RANGE_BYTES), so a GiB is about a thousand messages.
// A piece's `hashed` callback runs once the thread has hashed it (until then its memory
// must not be reused). Pieces elsewhere (node:http's own buffers, HTTPS) are copied into
// a shared staging buffer first; their callback runs at once.
//
// One thread per daemon, started by the first download and kept for the next; it serves
// every download, each by an id, in order. If it fails, every hash in progress fails
// (the download then fails with that reason, nothing is named in the cache) and the next
// download starts a new thread. Where no thread can be started, the hash runs inline.

import { createHash, type Hash } from "node:crypto";
import { Worker } from "node:worker_threads";

/** Send a range once this much is pending (adjacent pieces of one buffer). */
const RANGE_BYTES = 1024 * 1024;
/**
 * Above this much given to the thread and not yet hashed, update() asks the caller to
 * pause the source: the thread may fall behind the socket when both cores are busy, and
 * every piece it has not read holds a buffer.
 */
const HIGH_WATER_BYTES = 4 * 1024 * 1024;
/** Staging buffers for pieces not in shared memory, and how many are kept for reuse. */
const STAGING_BYTES = 1024 * 1024;
const MAX_SPARE_STAGING = 4;

export interface Sha1 {
  /**
   * Hash `chunk` after everything before it; `hashed`: its memory is no longer read.
   * False: pause the source until onDrain.
   */
  update(chunk: Buffer, hashed?: () => void): boolean;
  /** Called once the backlog is below the high-water mark after update() returned false. */
  onDrain: () => void;
  /** The hex digest of all of it; rejects if the hashing thread failed. */
  digest(): Promise<string>;
  /** Abandon the hash (the download failed). Safe after digest() and more than once. */
  drop(): void;
}

// Plain JavaScript, run with `eval: true`: the worker needs no file of its own next to
// the bundle (dist/cli.js) or the sources (tests run src/ through tsx).
const WORKER_SOURCE = `
const { parentPort } = require("node:worker_threads");
const { createHash } = require("node:crypto");
const hashes = new Map();
parentPort.on("message", (m) => {
  if (m.drop) { hashes.delete(m.id); return; }
  let h = hashes.get(m.id);
  if (h === undefined) { h = createHash("sha1"); hashes.set(m.id, h); }
  if (m.end) {
    hashes.delete(m.id);
    parentPort.postMessage({ id: m.id, hex: h.digest("hex") });
    return;
  }
  h.update(new Uint8Array(m.sab, m.off, m.len));
  parentPort.postMessage({ id: m.id, ack: true });
});
`;

interface Range {
  sab: SharedArrayBuffer;
  off: number;
  len: number;
  /** The pieces' callbacks (and the staging buffer's return), once the range is hashed. */
  done: (() => void)[];
}

type Reply = { id: number; ack: true } | { id: number; hex: string };

/** The thread and the hashes it is working on. */
class HashThread {
  private readonly worker: Worker;
  private readonly streams = new Map<number, ThreadSha1>();
  private nextId = 1;
  failure: Error | null = null;
  /** It has answered at least once: it started, so a later failure is not a failure to start. */
  answered = false;

  constructor(private readonly onGone: (thread: HashThread) => void) {
    this.worker = new Worker(WORKER_SOURCE, {
      eval: true,
      // It holds one Hash per download; a small heap is plenty.
      resourceLimits: { maxOldGenerationSizeMb: 16, maxYoungGenerationSizeMb: 2 },
    });
    this.worker.on("message", (reply: Reply) => {
      this.answered = true;
      this.streams.get(reply.id)?.reply(reply);
    });
    this.worker.on("error", (err) => this.gone(err));
    this.worker.on("exit", (code) => this.gone(new Error(`exited with code ${code}`)));
    this.worker.on("messageerror", (err) => this.gone(err));
    // Held (ref'd) only while a hash is open: an idle thread never keeps the process
    // alive. After the listeners, since adding a 'message' listener refs the worker.
    this.worker.unref();
  }

  open(): ThreadSha1 {
    const stream = new ThreadSha1(this, this.nextId++);
    if (this.streams.size === 0) this.worker.ref();
    this.streams.set(stream.id, stream);
    return stream;
  }

  post(message: object): void {
    this.worker.postMessage(message);
  }

  close(id: number): void {
    if (this.streams.delete(id) && this.streams.size === 0) this.worker.unref();
  }

  private gone(err: Error): void {
    if (this.failure !== null) return;
    this.failure = new Error(`the SHA-1 thread stopped: ${err.message}`);
    this.onGone(this);
    for (const stream of this.streams.values()) stream.fail(this.failure);
    this.streams.clear();
    void this.worker.terminate();
  }

  /** For tests: stop the thread as a crash would. */
  crash(): Promise<number> {
    return this.worker.terminate();
  }
}

const spareStaging: SharedArrayBuffer[] = [];

class ThreadSha1 implements Sha1 {
  onDrain: () => void = () => undefined;
  /** Bytes given to update() and not yet hashed. */
  private backlog = 0;
  private full = false;
  /** Adjacent pieces not yet sent. */
  private pending: Range | null = null;
  /** Ranges sent and not yet hashed, in order (the thread answers in order). */
  private readonly inFlight: Range[] = [];
  /** The staging buffer being filled with copies, and how far. */
  private staging: SharedArrayBuffer | null = null;
  private stagingFill = 0;
  private result: { resolve: (hex: string) => void; reject: (err: Error) => void } | null = null;
  private digested: Promise<string> | null = null;
  private closed = false;
  /** Why the hash cannot finish (the thread died, or drop()). */
  private failure: Error | null = null;

  constructor(
    private readonly thread: HashThread,
    readonly id: number,
  ) {}

  update(chunk: Buffer, hashed?: () => void): boolean {
    if (this.closed) {
      hashed?.();
      return true;
    }
    this.backlog += chunk.length;
    if (chunk.buffer instanceof SharedArrayBuffer) {
      this.add(chunk.buffer, chunk.byteOffset, chunk.length, hashed);
    } else {
      this.copy(chunk);
      hashed?.();
    }
    if (this.backlog < HIGH_WATER_BYTES) return true;
    this.full = true;
    return false;
  }

  /** A piece outside shared memory: copied into staging buffers (its memory is free at once). */
  private copy(chunk: Buffer): void {
    let at = 0;
    while (at < chunk.length) {
      if (this.staging === null || this.stagingFill === STAGING_BYTES) this.newStaging();
      const n = Math.min(chunk.length - at, STAGING_BYTES - this.stagingFill);
      new Uint8Array(this.staging!, this.stagingFill, n).set(chunk.subarray(at, at + n));
      this.add(this.staging!, this.stagingFill, n);
      this.stagingFill += n;
      at += n;
    }
  }

  digest(): Promise<string> {
    if (this.digested !== null) return this.digested;
    if (this.failure !== null) return (this.digested = Promise.reject(this.failure));
    this.digested = new Promise<string>((resolve, reject) => {
      this.result = { resolve, reject };
    });
    // A stream whose thread died was failed with it, so this.failure above caught that.
    this.flush();
    this.retireStaging();
    this.thread.post({ id: this.id, end: true });
    return this.digested;
  }

  drop(): void {
    if (this.closed) return;
    this.closed = true;
    this.failure = new Error("the hash was dropped");
    // Pieces not sent are free now; those sent stay held until the thread has read them.
    this.releaseRange(this.pending);
    this.pending = null;
    this.retireStaging();
    this.thread.post({ id: this.id, drop: true });
    if (this.inFlight.length === 0) this.thread.close(this.id);
    this.result?.reject(this.failure);
    this.result = null;
  }

  reply(reply: Reply): void {
    if ("ack" in reply) {
      const range = this.inFlight.shift() ?? null;
      this.releaseRange(range);
      this.backlog -= range?.len ?? 0;
      if (this.full && this.backlog < HIGH_WATER_BYTES && !this.closed) {
        this.full = false;
        this.onDrain();
      }
      if (this.closed && this.inFlight.length === 0) this.thread.close(this.id);
      return;
    }
    this.closed = true;
    this.thread.close(this.id);
    this.result?.resolve(reply.hex);
    this.result = null;
  }

  /** The thread is gone: nothing it held is read any more. */
  fail(err: Error): void {
    this.closed = true;
    this.failure ??= err;
    this.releaseRange(this.pending);
    this.pending = null;
    for (const r of this.inFlight.splice(0)) this.releaseRange(r);
    this.result?.reject(err);
    this.result = null;
    // A source paused on this hash would wait for an answer that never comes: let it go
    // on (its download then fails at digest() with this reason, not an idle timeout).
    if (this.full) {
      this.full = false;
      this.onDrain();
    }
  }

  private add(sab: SharedArrayBuffer, off: number, len: number, hashed?: () => void): void {
    if (len === 0) {
      hashed?.();
      return;
    }
    const p = this.pending;
    if (p !== null && p.sab === sab && p.off + p.len === off && p.len + len <= RANGE_BYTES) {
      p.len += len;
      if (hashed) p.done.push(hashed);
    } else {
      this.flush();
      this.pending = { sab, off, len, done: hashed ? [hashed] : [] };
    }
    if (this.pending!.len >= RANGE_BYTES) this.flush();
  }

  private flush(): void {
    const p = this.pending;
    if (p === null) return;
    this.pending = null;
    this.inFlight.push(p);
    this.thread.post({ id: this.id, sab: p.sab, off: p.off, len: p.len });
  }

  private newStaging(): void {
    this.retireStaging();
    this.staging = spareStaging.pop() ?? new SharedArrayBuffer(STAGING_BYTES);
    this.stagingFill = 0;
  }

  /** The staging buffer goes back to the spares once its last range is hashed. */
  private retireStaging(): void {
    const sab = this.staging;
    if (sab === null) return;
    this.staging = null;
    const giveBack = (): void => {
      if (spareStaging.length < MAX_SPARE_STAGING) spareStaging.push(sab);
    };
    const last =
      this.pending?.sab === sab ? this.pending : this.inFlight.findLast((r) => r.sab === sab);
    if (last) last.done.push(giveBack);
    else giveBack();
  }

  private releaseRange(r: Range | null): void {
    if (r === null) return;
    for (const f of r.done) f();
  }
}

/** The same interface, on the calling thread. */
class InlineSha1 implements Sha1 {
  onDrain: () => void = () => undefined;
  private readonly hash: Hash = createHash("sha1");
  private digested: Promise<string> | null = null;

  update(chunk: Buffer, hashed?: () => void): boolean {
    if (this.digested === null) this.hash.update(chunk);
    hashed?.();
    return true;
  }

  digest(): Promise<string> {
    return (this.digested ??= Promise.resolve(this.hash.digest("hex")));
  }

  drop(): void {
    this.digested ??= Promise.reject(new Error("the hash was dropped"));
    this.digested.catch(() => undefined);
  }
}

let shared: HashThread | null = null;
/**
 * A thread died before it ever answered (it could not start: no memory, a thread limit):
 * hashes are computed inline from then on, slower but never failing for that reason.
 */
let threadsUnavailable = false;

/** A SHA-1 computed on the daemon's hashing thread (inline if none can be started). */
export function startSha1(): Sha1 {
  if (threadsUnavailable) return new InlineSha1();
  if (shared === null || shared.failure !== null) {
    try {
      shared = new HashThread((gone) => {
        if (!gone.answered) threadsUnavailable = true;
        if (shared === gone) shared = null;
      });
    } catch {
      threadsUnavailable = true;
      return new InlineSha1();
    }
  }
  return shared.open();
}

/** For tests: make the hashing thread fail as a crash would (none running: false). */
export async function crashHashThreadForTests(): Promise<boolean> {
  if (shared === null) return false;
  await shared.crash();
  return true;
}
