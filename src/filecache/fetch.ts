// Download one file from the librarian into a temporary file, hashing it on the way.
//
// Why node:http/node:https and not undici: undici 7.30 (the last line that runs on Node 20)
// has an assertion, `assert(!this.paused)` (nodejs/undici#5360), that fires outside any
// promise chain while reading a fast HTTP/1.0 response whose body ends at connection
// close; it takes the whole builder down with it and cannot be caught. The fix exists
// only in undici 8, which needs Node 22. node:http handles such responses as a normal
// end of body, reports every failure as an 'error' event we listen for, and streams with
// backpressure just as well; the hash and the page-cache copy (not the client) are what
// a download's time goes to on this hardware.
//
// Over 500 lines on purpose: it is one Download, the one owner of a download's request,
// redirect hops, three timers, temporary file, writer and hash, whose failure paths must
// all meet in one cleanup. What stands apart already has a module of its own: URLs
// (fetch-url.ts), errors (fetch-errors.ts), the raw body reader (body-capture.ts), the
// durable writer (durable-writer.ts) and the hashing thread (sha1-thread.ts).

import { open, unlink } from "node:fs/promises";
import type { FileHandle } from "node:fs/promises";
import http from "node:http";
import type { ClientRequest, IncomingMessage } from "node:http";
import https from "node:https";
import dns, { type LookupAddress } from "node:dns";
import net, { type Socket } from "node:net";
import { describeError } from "../errors.js";
import { FetchError, localError, networkError, shortBody } from "./fetch-errors.js";
import { authority, basicAuth, parseUrl } from "./fetch-url.js";
import { DurableWriter } from "./durable-writer.js";
import { BodyCapture } from "./body-capture.js";
import { startSha1, type Sha1 } from "./sha1-thread.js";
import { refusal, type AllowEntry } from "../protocol/allow.js";

export { FetchError } from "./fetch-errors.js";
export type { FetchErrorCode } from "./fetch-errors.js";

export interface FetchLimits {
  /** DNS + TCP (+ TLS) connect, per request (every redirect hop connects anew). */
  connectTimeoutMs: number;
  /** No bytes received for this long, from connect to the end of the body. */
  idleTimeoutMs: number;
  /** The whole download, redirects included. */
  totalTimeoutMs: number;
  /** Largest body accepted; checked against Content-Length and while streaming. */
  maxBytes: number;
  maxRedirects: number;
  /** [download] allow: where downloads may come from (null: anywhere but metadata addresses). */
  allow?: readonly AllowEntry[] | null;
}

export interface FetchRequest {
  url: string;
  username?: string | null;
  password?: string | null;
  /** Temporary file to create (exclusively); the caller renames it after verification. */
  destPath: string;
  limits: FetchLimits;
  signal?: AbortSignal;
  /**
   * Called once, synchronously, with the final response's Content-Length (undefined when
   * it has none) before any body byte is written, e.g. to reserve disk space. If it
   * throws, the download fails with a FetchError (code BUILDD_ERR_FETCH_LOCAL) whose cause is that error.
   */
  onResponse?: (contentLength: number | undefined) => void;
  /** Called with the size of each body chunk as it arrives (progress for the page). */
  onProgress?: (bytes: number) => void;
}

export interface FetchResult {
  sha1: string;
  bytes: number;
}

const REDIRECT_STATUSES = new Set([301, 302, 303, 307, 308]);

/** Download `req.url` to `req.destPath`; on failure nothing is left at `destPath`. */
export function fetchToFile(req: FetchRequest): Promise<FetchResult> {
  return new Download(req).run();
}

function contentLength(res: IncomingMessage): number | undefined {
  const value = res.headers["content-length"];
  return value !== undefined && /^\d+$/.test(value) ? Number(value) : undefined;
}

/** One HTTP request of the download (the first, or one redirect hop). */
interface Attempt {
  readonly req: ClientRequest;
  readonly host: string;
  /** Set when the saved response's body is read by body-capture.ts, not node:http. */
  capture: BodyCapture | null;
  socket?: Socket;
  /** First 'error' on the request; after the response it may explain a body failure. */
  error?: unknown;
}

class Download {
  private readonly ctl = new AbortController();
  private readonly limits: FetchLimits;
  private totalTimer: NodeJS.Timeout | undefined;
  private connectTimer: NodeJS.Timeout | undefined;
  private idleTimer: NodeJS.Timeout | undefined;
  private attempt: Attempt | undefined;
  private file: FileHandle | undefined;
  /** Writes the body to `file` once the response arrived. */
  private writer: DurableWriter | undefined;
  /** performance.now() of the last bytes received (see touch()). */
  private lastData = 0;
  private created = false;

  constructor(private readonly req: FetchRequest) {
    this.limits = req.limits;
  }

  async run(): Promise<FetchResult> {
    const external = this.req.signal;
    const onExternalAbort = (): void =>
      this.fail(new FetchError("BUILDD_ERR_FETCH_ABORTED", "download aborted"));
    try {
      const first = parseUrl(this.req.url);
      if (external?.aborted === true)
        throw new FetchError("BUILDD_ERR_FETCH_ABORTED", "download aborted");
      external?.addEventListener("abort", onExternalAbort, { once: true });
      const total = this.limits.totalTimeoutMs;
      this.totalTimer = setTimeout(
        () =>
          this.fail(
            new FetchError(
              "BUILDD_ERR_FETCH_TIMEOUT",
              `download exceeded the total timeout of ${total} ms`,
            ),
          ),
        total,
      );
      // Created before the first request, not after the response: no await may sit between
      // the response head and reading its body, or a body cut short meanwhile is discarded
      // unread (and an existing destPath is reported before any network traffic).
      try {
        this.file = await open(this.req.destPath, "wx");
      } catch (err) {
        throw localError(err, this.req.destPath);
      }
      this.created = true;
      return await this.follow(first);
    } catch (err) {
      const failure = this.classify(err);
      await this.cleanup();
      throw failure;
    } finally {
      external?.removeEventListener("abort", onExternalAbort);
      clearTimeout(this.totalTimer);
      clearTimeout(this.connectTimer);
      clearTimeout(this.idleTimer);
    }
  }

  private async follow(first: URL): Promise<FetchResult> {
    const authorization = basicAuth(this.req.username, this.req.password);
    let url = first;
    for (let redirects = 0; ; redirects++) {
      // Credentials go only to the host:port they were given for: a librarian may redirect
      // to a CDN or another service, which must not learn the archive's token.
      const sameAuthority = authority(url) === authority(first);
      const res = await this.send(
        url,
        sameAuthority ? authorization : undefined,
        redirects > 0 ? `redirected to ${url.protocol}//${url.host}: ` : "",
      );
      const status = res.statusCode ?? 0;
      if (REDIRECT_STATUSES.has(status)) {
        this.discard(res);
        if (redirects >= this.limits.maxRedirects) {
          throw new FetchError(
            "BUILDD_ERR_FETCH_REDIRECT",
            `too many redirects (${this.limits.maxRedirects})`,
          );
        }
        const location = res.headers.location;
        if (location === undefined || location === "") {
          throw new FetchError("BUILDD_ERR_FETCH_REDIRECT", "redirect without Location");
        }
        url = parseUrl(location, url);
        continue;
      }
      if (status < 200 || status > 299) {
        this.discard(res);
        const phrase = res.statusMessage || http.STATUS_CODES[status] || "";
        throw new FetchError("BUILDD_ERR_FETCH_HTTP_STATUS", `HTTP Error ${status}: ${phrase}`);
      }
      return await this.save(res);
    }
  }

  /**
   * Send a GET and resolve with the response head; the body is left unread. The address
   * connected to is checked against [download] allow first (`hop` prefixes the reason).
   */
  private send(url: URL, authorization: string | undefined, hop: string): Promise<IncomingMessage> {
    clearTimeout(this.idleTimer);
    clearTimeout(this.connectTimer);
    const headers: Record<string, string> = {
      Host: url.host,
      "User-Agent": "buildd",
      // We hash what the librarian stores; a transfer-decoded body would hash differently.
      "Accept-Encoding": "identity",
    };
    if (authorization !== undefined) headers["Authorization"] = authorization;
    const client = url.protocol === "https:" ? https : http;
    const hostname = url.hostname.replace(/^\[(.*)\]$/, "$1");
    const port = url.port !== "" ? Number(url.port) : url.protocol === "https:" ? 443 : 80;
    const allow = this.limits.allow ?? null;
    const check = (address: string): FetchError | null => {
      const why = refusal(allow, { host: hostname.toLowerCase(), port, address });
      return why === null ? null : new FetchError("BUILDD_ERR_FETCH_NOT_ALLOWED", `${hop}${why}`);
    };
    // An IP literal is connected to without a lookup: check it here.
    const literal = net.isIP(hostname) !== 0 ? check(hostname) : null;
    if (literal) return Promise.reject(literal);
    // A name is checked on what it resolves to, on the very lookup the connection uses, so
    // that a name pointing at a forbidden address (or re-pointed to one) is refused too.
    const lookup = (
      name: string,
      options: dns.LookupOptions,
      callback: (
        err: NodeJS.ErrnoException | null,
        address: string | LookupAddress[],
        family?: number,
      ) => void,
    ): void => {
      dns.lookup(name, { ...options, all: true }, (err, addresses) => {
        if (err) return callback(err, []);
        const refused = addresses.map((a) => check(a.address)).find((e) => e !== null);
        if (refused) return callback(refused, []);
        if (options.all) return callback(null, addresses);
        const first = addresses[0]!;
        callback(null, first.address, first.family);
      });
    };
    return new Promise<IncomingMessage>((resolve, reject) => {
      // Plain HTTP: the body of the response we save is read into our own buffers
      // (body-capture.ts); node:http still sends the request and parses the head.
      const capture =
        url.protocol === "http:" ? new BodyCapture({ host: hostname, port, lookup }) : null;
      const req = client.request({
        protocol: url.protocol,
        hostname,
        lookup,
        port: url.port === "" ? undefined : Number(url.port),
        path: `${url.pathname}${url.search}`,
        method: "GET",
        headers,
        // A private connection per request: a stalled librarian cannot hold sockets in a
        // pool shared with other downloads, and nothing lingers once we are done. With
        // createConnection and no agent, node:http uses exactly that socket (an agent,
        // even `false`, would open one of its own).
        ...(capture ? { createConnection: () => capture.socket } : { agent: false }),
        signal: this.ctl.signal,
      });
      const attempt: Attempt = { req, host: url.hostname, capture: null };
      if (capture) {
        // An 'error' before the request has its socket must not go unheard either.
        capture.socket.on("error", (err) => (attempt.error ??= err));
      }
      this.attempt = attempt;
      const connectMs = this.limits.connectTimeoutMs;
      this.connectTimer = setTimeout(
        () =>
          this.fail(
            new FetchError("BUILDD_ERR_FETCH_TIMEOUT", `connect timeout after ${connectMs} ms`),
          ),
        connectMs,
      );
      req.on("socket", (socket: Socket) => {
        attempt.socket = socket;
        socket.once(url.protocol === "https:" ? "secureConnect" : "connect", () => {
          clearTimeout(this.connectTimer);
          this.touch();
        });
      });
      // Always listening: an unheard 'error' event would crash the process.
      req.on("error", (err) => {
        attempt.error ??= err;
        reject(err);
      });
      req.on("response", (res) => {
        res.on("error", () => {
          // Reported through the body's own handling or the request's 'error'; never unheard.
        });
        // Synchronous, while node:http parses the head: the body is ours from here on.
        const status = res.statusCode ?? 0;
        if (capture?.claim(res, status >= 200 && status <= 299)) attempt.capture = capture;
        this.touch();
        resolve(res);
      });
      req.end();
    });
  }

  /**
   * Stream the body to the file while hashing. Chunks go straight from the response to
   * the hash (on its own thread: sha1-thread.ts) and a batching writer (no stream layers
   * in between: a 1 GiB body is 16,000 socket reads, and per-chunk machinery cost more
   * CPU than the hash); the writer makes the data durable as it goes, so the final fsync
   * has little left to do. A chunk's buffer is given back once both have done with it.
   */
  private async save(res: IncomingMessage): Promise<FetchResult> {
    const hash = startSha1();
    try {
      const bytes = await this.saveBody(res, hash);
      const sha1 = await hash.digest().catch((err: unknown) => {
        throw new FetchError(
          "BUILDD_ERR_FETCH_LOCAL",
          `cannot hash the download: ${describeError(err)}`,
          {
            cause: err,
          },
        );
      });
      return { sha1, bytes };
    } finally {
      hash.drop();
    }
  }

  private async saveBody(res: IncomingMessage, hash: Sha1): Promise<number> {
    const attempt = this.attempt!;
    const { maxBytes } = this.limits;
    const declared = contentLength(res);
    const tooLarge = (): FetchError =>
      new FetchError(
        "BUILDD_ERR_FETCH_TOO_LARGE",
        `response larger than the maximum size of ${maxBytes} bytes`,
      );
    if (declared !== undefined && declared > maxBytes) throw tooLarge();
    if (this.req.onResponse !== undefined) {
      try {
        this.req.onResponse(declared);
      } catch (err) {
        throw new FetchError("BUILDD_ERR_FETCH_LOCAL", describeError(err), { cause: err });
      }
    }

    const path = this.req.destPath;
    let bytes = 0;
    const writer = new DurableWriter(this.file!);
    this.writer = writer;
    const onProgress = this.req.onProgress;
    const signal = this.ctl.signal;

    const capture = attempt.capture;
    /** Bytes past the Content-Length on a captured body (node:http reports its own). */
    let overrun = false;
    try {
      await new Promise<void>((resolve, reject) => {
        let settled = false;
        let complete = false;
        const settle = (err?: unknown): void => {
          if (settled) return;
          settled = true;
          signal.removeEventListener("abort", onAbort);
          if (err === undefined) resolve();
          else {
            res.destroy();
            capture?.socket.destroy();
            reject(err);
          }
        };
        const onAbort = (): void => settle(signal.reason);
        if (signal.aborted) return onAbort();
        signal.addEventListener("abort", onAbort, { once: true });
        writer.onError = (err) => settle(localError(err, path));
        const ended = (): void => {
          if (complete) return;
          complete = true;
          // The body is complete: the last writes and the fsync are ours, not the server's
          // silence (the total timeout still bounds them).
          clearTimeout(this.idleTimer);
          this.idleTimer = undefined;
          writer.finish().then(
            () => settle(),
            (err: unknown) => settle(localError(err, path)),
          );
        };
        // The source pauses while the writer or the hash has too much queued, and goes
        // on once neither has.
        let writerFull = false;
        let hashFull = false;
        let resumeSource = (): void => undefined;
        const drained = (): void => {
          if (!writerFull && !hashFull) resumeSource();
        };
        writer.onDrain = () => {
          writerFull = false;
          drained();
        };
        hash.onDrain = () => {
          hashFull = false;
          drained();
        };
        /** One piece of the body; false: pause the source until both drain. */
        const onChunk = (chunk: Buffer, release?: () => void): boolean => {
          if (settled || complete) {
            if (complete && capture) overrun = true;
            release?.();
            return true;
          }
          bytes += chunk.length;
          onProgress?.(chunk.length);
          this.lastData = performance.now();
          if (bytes > maxBytes) {
            release?.();
            settle(tooLarge());
            return true;
          }
          if (capture && declared !== undefined && bytes > declared) {
            overrun = true;
            release?.();
            settle(
              new FetchError(
                "BUILDD_ERR_FETCH_BAD_RESPONSE",
                "body longer than its Content-Length",
              ),
            );
            return true;
          }
          // The buffer is free once it is both hashed and written.
          let users = 2;
          const done =
            release === undefined
              ? undefined
              : (): void => {
                  if (--users === 0) release();
                };
          hashFull = !hash.update(chunk, done);
          writerFull = !writer.write(chunk, done);
          const more = !hashFull && !writerFull;
          if (capture && declared !== undefined && bytes === declared) {
            ended();
            // node:http would close the connection now; it does not know the body ended.
            // What else the server sent in this turn of the loop is still seen (overrun).
            setImmediate(() => capture.socket.destroy());
          }
          return more;
        };
        if (capture) {
          resumeSource = () => capture.resume();
          capture.attach({
            data: onChunk,
            end: () => {
              if (declared === undefined) ended();
            },
            close: () => {
              if (!complete) settle(new Error("the connection closed before the body ended"));
            },
          });
          if (declared === 0) {
            ended();
            setImmediate(() => capture.socket.destroy());
          }
          return;
        }
        resumeSource = () => res.resume();
        res.on("data", (chunk: Buffer) => {
          if (!onChunk(chunk)) res.pause();
        });
        res.on("end", ended);
        res.on("error", (err) => settle(err));
        res.on("close", () => {
          if (!res.complete) settle(new Error("the connection closed before the body ended"));
        });
      });
    } catch (err) {
      if (signal.aborted || err instanceof FetchError) throw err;
      // The connection ended (FIN or RST) before the declared length arrived.
      if (declared !== undefined && bytes < declared) throw shortBody(bytes, declared);
      if (attempt.error !== undefined) throw networkError(attempt.error, attempt.host);
      throw new FetchError(
        "BUILDD_ERR_FETCH_BAD_RESPONSE",
        `connection closed after ${bytes} bytes of the body`,
        {
          cause: err,
        },
      );
    }

    // Bytes after the declared length arrive as a parse error on the request ("data after
    // Connection: close" / "expected HTTP/"), usually in the same read as the body's end;
    // wait until Node has closed the socket so a slightly later packet is seen too.
    await this.socketClosed(attempt);
    if (overrun) {
      throw new FetchError("BUILDD_ERR_FETCH_BAD_RESPONSE", "body longer than its Content-Length");
    }
    if (attempt.error !== undefined) {
      if (declared !== undefined) {
        throw new FetchError(
          "BUILDD_ERR_FETCH_BAD_RESPONSE",
          "body longer than its Content-Length",
          {
            cause: attempt.error,
          },
        );
      }
      throw networkError(attempt.error, attempt.host);
    }
    if (declared !== undefined && bytes !== declared) throw shortBody(bytes, declared);

    this.file = undefined; // closed by the writer
    this.writer = undefined;
    return bytes;
  }

  private socketClosed(attempt: Attempt): Promise<void> {
    const socket = attempt.socket;
    if (socket === undefined || socket.destroyed) return Promise.resolve();
    // With agent: false Node ends and destroys the socket right after the body; an abort
    // (timeout, caller) destroys it too, so 'close' always comes.
    return new Promise((resolve) => socket.once("close", () => resolve()));
  }

  private discard(res: IncomingMessage): void {
    res.destroy();
    this.attempt?.req.destroy();
  }

  /**
   * Bytes arrived (or a connection was just made): restart the idle clock. The body's
   * chunks only note the time (lastData); the one timer re-arms itself for what is left
   * when it fires, instead of a timer made and cleared per chunk. While the disk applies
   * backpressure we read nothing either, so a disk stalled for the whole idle timeout
   * also counts as idle; with timeouts in seconds that is a broken disk anyway.
   */
  private touch(): void {
    this.lastData = performance.now();
    clearTimeout(this.idleTimer);
    const idleMs = this.limits.idleTimeoutMs;
    const check = (): void => {
      const quiet = performance.now() - this.lastData;
      if (quiet < idleMs) this.idleTimer = setTimeout(check, idleMs - quiet);
      else this.fail(new FetchError("BUILDD_ERR_FETCH_TIMEOUT", `no data for ${idleMs} ms`));
    };
    this.idleTimer = setTimeout(check, idleMs);
  }

  /** Stop everything in flight; the first cause wins and is what run() rejects with. */
  private fail(reason: FetchError): void {
    if (!this.ctl.signal.aborted) this.ctl.abort(reason);
  }

  private classify(err: unknown): FetchError {
    const reason: unknown = this.ctl.signal.reason;
    if (this.ctl.signal.aborted && reason instanceof FetchError) return reason;
    if (err instanceof FetchError) return err;
    return networkError(err, this.attempt?.host ?? "");
  }

  private async cleanup(): Promise<void> {
    this.fail(new FetchError("BUILDD_ERR_FETCH_ABORTED", "download failed")); // destroys request + streams
    this.attempt?.req.destroy();
    const file = this.file;
    this.file = undefined;
    // The writer stops taking work; close() waits for what it has in flight on the handle.
    this.writer?.stop();
    if (file !== undefined) await file.close().catch(() => undefined);
    if (this.created) await unlink(this.req.destPath).catch(() => undefined);
  }
}
