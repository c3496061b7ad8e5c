// One WebSocket connection to the master: requests both ways, matched by seq_number.
// Each side counts its own requests from 0 on each connection. Every request from the
// master is answered — with its result, or with is_exception and the reason — even one
// whose op we do not know, since the master waits for every answer.

import type WebSocket from "ws";
import type { Logger } from "pino";
import { decodeFrame, encodeFrame, reason, type WireMap } from "./wire.js";

/** What a request from the master is answered with; a throw becomes is_exception. */
export type RequestHandler = (op: string, msg: WireMap) => unknown;

/**
 * How often we ping the master at the WebSocket level. A master whose machine vanished
 * (power, network) sends no close, and its own keepalive comes only hourly: without a
 * pong by the next ping the connection is dropped, so the worker reconnects (and its
 * commands stop) within two intervals instead of when TCP gives up, hours later.
 * Generous, so that a master busy storing a large log is not taken for dead.
 */
export const PING_INTERVAL_MS = 30_000;

/** A request of ours the master answered with is_exception, or that the connection lost. */
export class MasterError extends Error {}

export class MasterConnection {
  private nextSeq = 0;
  private readonly waiting = new Map<
    number,
    { resolve: (v: unknown) => void; reject: (e: Error) => void }
  >();
  private closedWith: string | null = null;
  private readonly closeCallbacks: ((why: string) => void)[] = [];
  private readonly heartbeat: NodeJS.Timeout;

  constructor(
    private readonly ws: WebSocket,
    private readonly handler: RequestHandler,
    private readonly log: Logger,
    pingIntervalMs = PING_INTERVAL_MS,
  ) {
    let answered = true;
    ws.on("pong", () => void (answered = true));
    this.heartbeat = setInterval(() => {
      if (!answered) {
        ws.terminate();
        this.lost(`the master did not answer a ping within ${pingIntervalMs / 1000} s`);
        return;
      }
      answered = false;
      if (ws.readyState === ws.OPEN) ws.ping();
    }, pingIntervalMs);
    this.heartbeat.unref();
    ws.on("message", (data: WebSocket.RawData, isBinary: boolean) => {
      if (!isBinary) {
        this.log.warn("buildbot: ignoring a text frame from the master");
        return;
      }
      this.receive(toBuffer(data));
    });
    ws.on("close", (code: number, why: Buffer) => {
      this.lost(`connection closed (${code}${why.length > 0 ? ` ${why.toString()}` : ""})`);
    });
    ws.on("error", (err: Error) => this.lost(err.message));
  }

  get closed(): boolean {
    return this.closedWith !== null;
  }

  /** `cb` runs once when the connection is gone (at once if it already is). */
  onClose(cb: (why: string) => void): void {
    if (this.closedWith !== null) cb(this.closedWith);
    else this.closeCallbacks.push(cb);
  }

  /** Send a request and wait for its answer; rejects with MasterError. */
  request(op: string, fields: WireMap = {}): Promise<unknown> {
    if (this.closedWith !== null) {
      return Promise.reject(new MasterError(`not connected: ${this.closedWith}`));
    }
    const seq = this.nextSeq++;
    return new Promise((resolve, reject) => {
      this.waiting.set(seq, { resolve, reject });
      this.send({ ...fields, op, seq_number: seq });
    });
  }

  close(code = 1000, why = "worker stopping"): void {
    if (this.ws.readyState === this.ws.OPEN || this.ws.readyState === this.ws.CONNECTING) {
      this.ws.close(code, why);
    }
    // The master may not answer the close; the socket is ended after a moment by ws.
    this.lost(why);
  }

  private send(message: WireMap): void {
    if (this.ws.readyState !== this.ws.OPEN) return;
    this.ws.send(encodeFrame(message), { binary: true });
  }

  private receive(data: Buffer): void {
    let frame;
    try {
      frame = decodeFrame(data);
    } catch (err) {
      this.log.warn({ err: reason(err) }, "buildbot: a malformed message from the master");
      return;
    }
    const { seq, op, msg } = frame;
    if (op === "response") {
      const w = this.waiting.get(seq);
      if (w === undefined) return;
      this.waiting.delete(seq);
      if (msg.is_exception === true) w.reject(new MasterError(String(msg.result)));
      else w.resolve(msg.result);
      return;
    }
    void this.answer(seq, op, msg);
  }

  private async answer(seq: number, op: string, msg: WireMap): Promise<void> {
    try {
      const result = await this.handler(op, msg);
      this.send({ op: "response", seq_number: seq, result: result ?? null });
    } catch (err) {
      this.send({ op: "response", seq_number: seq, result: reason(err), is_exception: true });
    }
  }

  private lost(why: string): void {
    if (this.closedWith !== null) return;
    this.closedWith = why;
    clearInterval(this.heartbeat);
    for (const w of this.waiting.values()) w.reject(new MasterError(`connection lost: ${why}`));
    this.waiting.clear();
    for (const cb of this.closeCallbacks.splice(0)) cb(why);
  }
}

function toBuffer(data: WebSocket.RawData): Buffer {
  if (Buffer.isBuffer(data)) return data;
  if (Array.isArray(data)) return Buffer.concat(data);
  return Buffer.from(data);
}

/**
 * Open a connection: HTTP Basic credentials on the upgrade, no subprotocol (the master
 * never echoes one, and ws aborts when an offered one is not). Resolves once open;
 * rejects with the reason as the master gave it ("401 Unauthorized") or the socket's
 * error ("connect ECONNREFUSED 127.0.0.1:9989").
 *
 * ws is loaded here, at the first connection, not with the daemon: loading it took about
 * 30 ms of a 0.3 s start-up (bench/startup.ts), and a builder without [buildbot] never
 * needs it. The connection is made after the builder listens, so no call waits for it.
 */
export async function openSocket<T>(
  url: string,
  name: string,
  password: string,
  timeoutMs: number,
  /** Called as the socket opens, before any frame can arrive: attach the listeners here. */
  attach: (ws: WebSocket) => T,
  /** Gives the attempt up (the worker stops) without waiting for the handshake's timeout. */
  signal?: AbortSignal,
): Promise<T> {
  const { default: WebSocket } = await import("ws");
  return new Promise((resolve, reject) => {
    const auth = Buffer.from(`${name}:${password}`, "utf8").toString("base64");
    const ws = new WebSocket(url, {
      headers: { Authorization: `Basic ${auth}` },
      handshakeTimeout: timeoutMs,
      perMessageDeflate: false,
    });
    let settled = false;
    const onAbort = (): void => fail("the worker is stopping");
    const fail = (why: string): void => {
      if (settled) return;
      settled = true;
      signal?.removeEventListener("abort", onAbort);
      ws.removeAllListeners();
      ws.on("error", () => {});
      ws.terminate();
      reject(new Error(why));
    };
    ws.once("unexpected-response", (_req, res) => {
      fail(`${res.statusCode ?? "?"} ${res.statusMessage ?? ""}`.trim());
      res.resume();
    });
    ws.once("error", (err: Error) => fail(err.message));
    signal?.addEventListener("abort", onAbort, { once: true });
    ws.once("close", (code: number) => fail(`connection closed during the handshake (${code})`));
    ws.once("open", () => {
      if (settled) return;
      settled = true;
      signal?.removeEventListener("abort", onAbort);
      ws.removeAllListeners();
      resolve(attach(ws));
    });
  });
}
