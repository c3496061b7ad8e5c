// A download's TCP connection whose reads land in our own large buffers, so that the
// body of a plain HTTP response reaches the hash and the file without node:http's
// per-read machinery. Measured here for 1 GiB from nginx: node:http delivers the body in
// 64 KiB pieces, each freshly allocated and then copied again by its parser, for 2.0
// CPU-s; reads into reused 2 MiB buffers take 0.33 CPU-s (docs/performance.md).
//
// node:http still does everything else: it writes the request, and parses the status
// line and headers, which we hand it exactly (the bytes up to the blank line that ends
// the head). Its 'response' event comes synchronously while it parses them; if that
// response is one we save (claim()), the body that follows is ours from the next byte
// on and node:http never sees it. Anything else (a redirect, an error status, a chunked
// body, a head we could not delimit ourselves) goes on to node:http byte for byte, as if
// this module were not there. Only for http: — TLS sockets stay with node:https.

import net from "node:net";
import type { IncomingMessage } from "node:http";

/** Reads go into buffers of this size (a read takes what the socket has, up to the end). */
const BATCH_BYTES = 2 * 1024 * 1024;
/** Start a new buffer when less than this is left in the current one. */
const MIN_READ = 64 * 1024;
/**
 * At most this much per read. When the hash ran on the main thread, SHA-1 of a 2 MiB
 * read took ~4 ms there, which status() calls arriving meanwhile waited for
 * (bench/rpc-under-download.ts); 256 KiB kept that under a millisecond. The hash is now
 * on its own thread, and 256 KiB still bounds what one turn of the loop does.
 */
const MAX_READ = 256 * 1024;
/** Buffers kept for the next download. */
const MAX_SPARE = 4;
const spare: Buffer[] = [];

/** Where the captured body goes. */
export interface BodySink {
  /**
   * A piece of the body, valid until `release()` (the buffer is then reused). Returns
   * false to pause reading until resume().
   */
  data(chunk: Buffer, release: () => void): boolean;
  /** The connection ended (FIN): for a body without Content-Length, its end. */
  end(): void;
  /** The connection is gone (after end(), or after a reset without one). */
  close(): void;
}

/** One buffer being filled by reads; back to the pool once no piece of it is in use. */
class Batch {
  // Shared memory: the hashing thread reads the pieces where they are (sha1-thread.ts).
  readonly buf: Buffer = spare.pop() ?? Buffer.from(new SharedArrayBuffer(BATCH_BYTES));
  fill = 0;
  /** Pieces handed out and not released, plus one while it is the current buffer. */
  refs = 1;
  unref(): void {
    if (--this.refs === 0 && spare.length < MAX_SPARE) spare.push(this.buf);
  }
}

const CRLFCRLF = Buffer.from("\r\n\r\n");

export class BodyCapture {
  readonly socket: net.Socket;
  private mode: "head" | "parser" | "raw" = "head";
  private batch = new Batch();
  /** Last bytes of the head seen so far (the blank line may straddle two reads). */
  private tail = Buffer.alloc(0);
  /** Set while node:http parses exactly one delimited head (see claim()). */
  private inHead = false;
  private sink: BodySink | null = null;
  /** Body read before a sink was attached (between 'response' and save()). */
  private pending: { chunk: Buffer; release: () => void }[] = [];
  private ended = false;
  private closed = false;
  /** The sink asked to pause (data() returned false) and has not resumed yet. */
  private held = false;
  /** A resume is scheduled for the next turn of the event loop. */
  private yielding = false;

  constructor(options: net.NetConnectOpts) {
    this.socket = net.connect({
      ...options,
      onread: {
        buffer: () => this.nextBuffer(),
        // `buf` is the Buffer nextBuffer() returned.
        callback: (n, buf) => this.onRead((buf as Buffer).subarray(0, n)),
      },
    } as net.NetConnectOpts);
    // Registered before node:http's own listeners, so these run first.
    this.socket.once("end", () => {
      this.ended = true;
      if (this.mode === "raw") this.sink?.end();
    });
    this.socket.once("close", () => {
      this.closed = true;
      // Pieces not yet handed to a sink keep their buffer until they are.
      this.batch.unref();
      if (this.mode === "raw") this.sink?.close();
    });
  }

  /**
   * Called from the request's 'response' event, which node:http emits synchronously
   * while it parses the head we hand it. `wanted`: this response's body is to be saved.
   * Returns whether the body is ours from here on (attach() then takes it); false for a
   * body node:http must read (chunked, unwanted, or a head we did not delimit ourselves).
   */
  claim(res: IncomingMessage, wanted: boolean): boolean {
    const exact = this.inHead;
    this.inHead = false;
    if (this.mode !== "head") return false;
    if (!exact || !wanted || res.headers["transfer-encoding"] !== undefined) {
      this.mode = "parser";
      return false;
    }
    this.mode = "raw";
    return true;
  }

  /** The body's consumer, once it is ready; what arrived meanwhile is handed over first. */
  attach(sink: BodySink): void {
    this.sink = sink;
    for (const p of this.pending.splice(0)) {
      if (!sink.data(p.chunk, p.release)) this.held = true;
    }
    // Reading stopped after the last piece (see onRead); go on unless the sink is full.
    if (!this.held && !this.ended) this.socket.resume();
    if (this.ended) sink.end();
    if (this.closed) sink.close();
  }

  /** The sink can take more (after data() returned false). */
  resume(): void {
    this.held = false;
    if (!this.closed) this.socket.resume();
  }

  private nextBuffer(): Buffer {
    if (this.batch.buf.length - this.batch.fill < MIN_READ) {
      this.batch.unref();
      this.batch = new Batch();
    }
    return this.batch.buf.subarray(this.batch.fill, this.batch.fill + MAX_READ);
  }

  private onRead(chunk: Buffer): boolean {
    if (this.mode === "raw") {
      this.held = !this.deliver(chunk);
      // One read per turn of the event loop: libuv would otherwise go on reading (up to
      // 32 reads per event), and status() calls would wait for all of them to be hashed.
      if (!this.held && !this.yielding) {
        this.yielding = true;
        setImmediate(() => {
          this.yielding = false;
          if (!this.held) this.resume();
        });
      }
      return false;
    }
    if (this.mode === "parser") {
      this.forward(chunk, false);
      return true;
    }
    // The head: find the blank line that ends it, across reads.
    const joined = this.tail.length > 0 ? Buffer.concat([this.tail, chunk]) : chunk;
    const at = joined.indexOf(CRLFCRLF);
    if (at < 0) {
      this.tail = Buffer.from(joined.subarray(Math.max(0, joined.length - 3)));
      // If node:http finds an end of head in here that we did not (bare LFs), claim()
      // refuses: the rest is node:http's.
      this.forward(chunk, false);
      return true;
    }
    const headEnd = at + 4 - this.tail.length; // in `chunk`
    this.tail = Buffer.alloc(0);
    this.forward(chunk.subarray(0, headEnd), true);
    const rest = chunk.subarray(headEnd);
    if (rest.length === 0) return true;
    // raw: the body's first bytes; parser: node:http's; head: a 1xx head, another follows.
    return this.onRead(rest);
  }

  /** Hand bytes to node:http's parser, which may emit 'response' (and so call claim()). */
  private forward(bytes: Buffer, exactHead: boolean): void {
    if (bytes.length === 0) return;
    this.inHead = exactHead;
    try {
      // A copy: our buffer is reused by the next read.
      this.socket.emit("data", Buffer.from(bytes));
    } finally {
      this.inHead = false;
    }
  }

  private deliver(chunk: Buffer): boolean {
    if (chunk.length === 0) return true;
    const batch = this.batch;
    // Past this piece (it may follow a head in the same read): the next read goes after it.
    batch.fill = chunk.byteOffset + chunk.length - batch.buf.byteOffset;
    batch.refs++;
    let released = false;
    const release = (): void => {
      if (released) return;
      released = true;
      batch.unref();
    };
    if (this.sink === null) {
      this.pending.push({ chunk, release });
      return true;
    }
    return this.sink.data(chunk, release);
  }
}
