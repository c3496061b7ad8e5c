// GET|HEAD /filecache/<name>: a cached file by its SHA-1, or the current build log.
//
// Only two kinds of name exist: 40 lowercase hex digits, and `buildlog`. The raw path
// segment is compared as is (never URL-decoded), so encoded slashes, dot segments, NUL
// bytes or long names can never reach the file system, and there is no listing.
//
// Served on plain node:http rather than Express's sendFile: `send` reads in 64 KiB
// pieces it does not let us change (0.25× nginx in bench/filecache.ts) and Express
// costs ~125 ms of start-up. What we need of HTTP here is small: a strong ETag (the
// SHA-1 itself), Last-Modified, conditional GET (304), single byte ranges (206/416, with
// range-parser for the header's many forms), HEAD.

import fs from "node:fs";
import type { IncomingMessage, ServerResponse } from "node:http";
import rangeParser from "range-parser";
import { isSha1 } from "./names.js";
import type { FileCache } from "./store.js";

export interface FilecacheRoutesDeps {
  readonly cache: FileCache;
  /** Path of the current build log, or null when there is none (IDLE). */
  buildLogPath(): string | null;
}

const PREFIX = "/filecache/";
/**
 * Read size. Two buffers of it per response are in flight, and they should stay in the
 * CPU's shared cache between the read that fills one and the socket write that empties
 * it: 1 MiB (8 MiB for 4 clients) beat 4 MiB (32 MiB, the whole L3 here) by 1.3-1.4x
 * at 4 clients in the same runs, with a fifth less CPU (docs/performance.md).
 */
const READ_CHUNK = 1024 * 1024;

export function isFilecachePath(url: string | undefined): boolean {
  return (url ?? "").startsWith(PREFIX);
}

function notFound(res: ServerResponse): void {
  res.writeHead(404, { "content-type": "text/plain; charset=utf-8" });
  res.end("Not Found\n");
}

/** Whether the client's copy is current (RFC 9110 §13.1.2 and §13.1.3). */
function notModified(req: IncomingMessage, etag: string, mtime: Date): boolean {
  const inm = req.headers["if-none-match"];
  if (inm !== undefined) {
    if (inm.trim() === "*") return true;
    return inm.split(",").some((t) => t.trim().replace(/^W\//, "") === etag.replace(/^W\//, ""));
  }
  const ims = req.headers["if-modified-since"];
  if (ims === undefined) return false;
  const since = Date.parse(ims);
  return !Number.isNaN(since) && Math.floor(mtime.getTime() / 1000) * 1000 <= since;
}

/** A Range header applies unless If-Range names another version. */
function rangeApplies(req: IncomingMessage, etag: string, lastModified: string): boolean {
  const ifRange = req.headers["if-range"];
  if (typeof ifRange !== "string") return true;
  return ifRange.startsWith('"') ? ifRange === etag : ifRange === lastModified;
}

export function filecacheHandler(deps: FilecacheRoutesDeps) {
  return (req: IncomingMessage, res: ServerResponse): void => {
    const name = (req.url ?? "").split("?", 1)[0]!.slice(PREFIX.length);
    if (req.method !== "GET" && req.method !== "HEAD") {
      res.writeHead(405, { allow: "GET, HEAD", "content-type": "text/plain; charset=utf-8" });
      res.end("Method Not Allowed\n");
      return;
    }
    const file =
      isSha1(name) && deps.cache.has(name)
        ? deps.cache.pathOf(name)
        : name === "buildlog"
          ? deps.buildLogPath()
          : null;
    if (file === null) return notFound(res);

    // Open first and stat the descriptor: what we describe is what we send, even if
    // the entry is evicted or cleaned a moment later.
    fs.open(file, "r", (err, fd) => {
      if (err) return notFound(res);
      fs.fstat(fd, (statErr, st) => {
        if (statErr || !st.isFile()) {
          fs.close(fd, () => undefined);
          return notFound(res);
        }
        send(req, res, fd, st, name === "buildlog" ? `W/"${st.size}-${st.mtimeMs}"` : `"${name}"`);
      });
    });
  };
}

function send(
  req: IncomingMessage,
  res: ServerResponse,
  fd: number,
  st: fs.Stats,
  etag: string,
): void {
  const lastModified = st.mtime.toUTCString();
  const headers: Record<string, string | number> = {
    "accept-ranges": "bytes",
    etag,
    "last-modified": lastModified,
    "content-type": "application/octet-stream",
  };
  if (notModified(req, etag, st.mtime)) {
    fs.close(fd, () => undefined);
    res.writeHead(304, headers);
    res.end();
    return;
  }
  let status = 200;
  let start = 0;
  let end = st.size - 1;
  const range = req.headers.range;
  if (range !== undefined && rangeApplies(req, etag, lastModified)) {
    const ranges = rangeParser(st.size, range, { combine: true });
    if (ranges === -1) {
      fs.close(fd, () => undefined);
      res.writeHead(416, { ...headers, "content-range": `bytes */${st.size}` });
      res.end();
      return;
    }
    // One range: 206. Malformed (-2) or several ranges: the whole file, as send does.
    if (ranges !== -2 && ranges.length === 1 && ranges.type === "bytes") {
      status = 206;
      start = ranges[0]!.start;
      end = ranges[0]!.end;
      headers["content-range"] = `bytes ${start}-${end}/${st.size}`;
    }
  }
  headers["content-length"] = Math.max(0, end - start + 1);
  res.writeHead(status, headers);
  if (req.method === "HEAD" || st.size === 0) {
    fs.close(fd, () => undefined);
    res.end();
    return;
  }
  pump(fd, start, end + 1, res);
}

// Buffers for reading files into, reused: a fresh Buffer per read (what
// fs.createReadStream does) is a fresh mapping the kernel must fault in and zero, which
// with several clients cost more CPU than the copies themselves.
const spare: Buffer[] = [];
const MAX_SPARE = 16;
const takeBuffer = (): Buffer => spare.pop() ?? Buffer.allocUnsafeSlow(READ_CHUNK);
const giveBack = (buf: Buffer): void => {
  if (spare.length < MAX_SPARE) spare.push(buf);
};

/**
 * Send bytes [from, to) of `fd` on `res` and close `fd`: two buffers per response, one
 * being read while the other is written, each reused once the socket has taken it.
 * The socket's own pace sets ours; a client that goes away stops it.
 */
function pump(fd: number, from: number, to: number, res: ServerResponse): void {
  const free = [takeBuffer(), takeBuffer()];
  let pos = from;
  let reading = false;
  let stopped = false;
  let fdClosed = false;
  // The fd is only read from: it closes once no read is in flight. A buffer goes back to
  // the pool when nothing uses it any more (its read done, its write taken by the socket).
  const closeFd = (): void => {
    if (fdClosed || reading) return;
    fdClosed = true;
    fs.close(fd, () => undefined);
  };
  const stop = (): void => {
    if (stopped) return;
    stopped = true;
    for (const b of free.splice(0)) giveBack(b);
    closeFd();
  };
  const release = (buf: Buffer): void => {
    if (stopped) giveBack(buf);
    else free.push(buf);
  };
  const next = (): void => {
    if (stopped || reading || pos >= to || free.length === 0) return;
    const buf = free.pop()!;
    reading = true;
    fs.read(fd, buf, 0, Math.min(buf.length, to - pos), pos, (err, n) => {
      reading = false;
      if (stopped || err || n === 0) {
        release(buf);
        if (!stopped) res.destroy(err ?? new Error("the file is shorter than it was"));
        stop();
        closeFd();
        return;
      }
      pos += n;
      const chunk = buf.subarray(0, n);
      if (pos >= to) {
        closeFd();
        res.end(chunk, () => {
          release(buf);
          stop();
        });
        return;
      }
      res.write(chunk, () => {
        release(buf);
        next();
      });
      next();
    });
  };
  res.on("close", stop);
  next();
}
