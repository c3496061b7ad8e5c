// A real librarian for tests: an HTTP server on 127.0.0.1 that serves files and, per path,
// misbehaves the ways real servers do (errors, auth, redirects, truncation, lying
// Content-Length, stalls, HTTP/1.0, slow drips, late answers).
//
// It is a raw net.Server with a minimal request parser rather than node:http, because
// several behaviours are things node:http refuses to do on purpose: send a body that
// disagrees with its Content-Length, cut a response mid-body, or answer as a genuine
// HTTP/1.0 server whose body ends only when the connection closes. Every response closes
// its connection, which keeps the parser to "read one request head".

import { STATUS_CODES } from "node:http";
import net from "node:net";
import type { AddressInfo, Socket } from "node:net";

export type Behaviour =
  | { kind: "ok" }
  | { kind: "status"; code: number }
  /** 401 unless the request carries exactly this Basic authorization. */
  | { kind: "auth"; username: string; password: string }
  | { kind: "redirect"; to: string; code?: number }
  /** Content-Length says the full size; afterBytes are sent, then the socket is destroyed. */
  | { kind: "truncate"; afterBytes: number }
  /** Content-Length is `declared`, the whole body is sent regardless. */
  | { kind: "length-lies"; declared: number }
  /** Content-Length says the full size; afterBytes are sent, then nothing, socket kept open. */
  | { kind: "stall"; afterBytes: number }
  /** "HTTP/1.0 200 OK", no Content-Length, the body ends when the connection closes. */
  | { kind: "http10" }
  | { kind: "slow"; bytesPerChunk: number; intervalMs: number }
  /** Wait this long before answering normally. */
  | { kind: "delay"; ms: number };

export interface LibrarianRequest {
  path: string;
  method: string;
  authorization: string | undefined;
}

export interface Librarian {
  /** "http://127.0.0.1:PORT", no trailing slash. */
  url: string;
  /** Serve `body` at `path` (starting with "/"); returns the full URL. */
  add(path: string, body: Buffer, behaviour?: Behaviour): string;
  /** Every request seen, in order. */
  requests: LibrarianRequest[];
  requestCount(path: string): number;
  /** Stop listening and destroy every open connection, stalled ones included. */
  close(): Promise<void>;
}

interface Route {
  body: Buffer;
  behaviour: Behaviour;
}

const MAX_HEAD_BYTES = 16 * 1024;
const CHUNK_BYTES = 64 * 1024;

export async function startLibrarian(): Promise<Librarian> {
  const routes = new Map<string, Route>();
  const requests: LibrarianRequest[] = [];
  const sockets = new Set<Socket>();
  const timers = new Set<NodeJS.Timeout>();

  // Resolves after ms, unless close() clears the timer first: then it never resolves and
  // the pending response is simply dropped with its (destroyed) socket.
  const sleep = (ms: number): Promise<void> =>
    new Promise((resolve) => {
      const timer = setTimeout(() => {
        timers.delete(timer);
        resolve();
      }, ms);
      timers.add(timer);
    });

  const respond = async (socket: Socket, req: LibrarianRequest): Promise<void> => {
    const route = routes.get(req.path);
    if (route === undefined) return sendStatus(socket, 404);
    const { body, behaviour } = route;
    switch (behaviour.kind) {
      case "ok":
        return sendBody(socket, body);
      case "status":
        return sendStatus(socket, behaviour.code);
      case "auth": {
        const expected = basic(behaviour.username, behaviour.password);
        if (req.authorization !== expected) {
          return sendStatus(socket, 401, { "WWW-Authenticate": 'Basic realm="librarian"' });
        }
        return sendBody(socket, body);
      }
      case "redirect":
        return sendStatus(socket, behaviour.code ?? 302, { Location: behaviour.to });
      case "truncate": {
        // One write, so the client gets the head and the partial body, then the cut.
        const data = Buffer.concat([
          head11(200, body.length),
          body.subarray(0, behaviour.afterBytes),
        ]);
        socket.write(data, () => socket.destroy());
        return;
      }
      case "length-lies":
        // One write: the surplus (if any) arrives together with the declared bytes.
        socket.end(Buffer.concat([head11(200, behaviour.declared), body]));
        return;
      case "stall":
        socket.write(
          Buffer.concat([head11(200, body.length), body.subarray(0, behaviour.afterBytes)]),
        );
        return; // and never another byte; close() destroys the socket
      case "http10": {
        const head =
          "HTTP/1.0 200 OK\r\n" +
          "Server: SimpleHTTP/0.6 Python/2.7.18\r\n" +
          `Date: ${new Date().toUTCString()}\r\n` +
          "Content-Type: application/octet-stream\r\n\r\n";
        socket.write(head, "latin1");
        await writeChunks(socket, body, CHUNK_BYTES);
        socket.end();
        return;
      }
      case "slow": {
        socket.write(head11(200, body.length));
        const step = Math.max(1, behaviour.bytesPerChunk);
        for (let off = 0; off < body.length && !socket.destroyed; off += step) {
          if (off > 0) await sleep(behaviour.intervalMs);
          if (!socket.destroyed) socket.write(body.subarray(off, off + step));
        }
        socket.end();
        return;
      }
      case "delay":
        await sleep(behaviour.ms);
        if (!socket.destroyed) await sendBody(socket, body);
        return;
    }
  };

  const server = net.createServer((socket) => {
    sockets.add(socket);
    socket.on("close", () => sockets.delete(socket));
    // Clients hang up mid-response on purpose in these tests.
    socket.on("error", () => undefined);
    let buffered = Buffer.alloc(0);
    const onData = (chunk: Buffer): void => {
      buffered = Buffer.concat([buffered, chunk]);
      const end = buffered.indexOf("\r\n\r\n");
      if (end === -1) {
        if (buffered.length > MAX_HEAD_BYTES) {
          socket.off("data", onData);
          sendStatus(socket, 431);
        }
        return;
      }
      socket.off("data", onData); // one request per connection; the rest is ignored
      const req = parseHead(buffered.subarray(0, end).toString("latin1"));
      if (req === undefined) return sendStatus(socket, 400);
      requests.push(req);
      respond(socket, req).catch(() => socket.destroy());
    };
    socket.on("data", onData);
  });

  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      server.off("error", reject);
      resolve();
    });
  });
  const { port } = server.address() as AddressInfo;
  const url = `http://127.0.0.1:${port}`;

  return {
    url,
    requests,
    add(path, body, behaviour = { kind: "ok" }) {
      if (!path.startsWith("/")) throw new Error(`librarian path must start with "/": ${path}`);
      routes.set(path, { body, behaviour });
      return `${url}${path}`;
    },
    requestCount(path) {
      return requests.filter((r) => r.path === path).length;
    },
    close() {
      for (const timer of timers) clearTimeout(timer);
      timers.clear();
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      for (const socket of sockets) socket.destroy();
      return closed;
    },
  };
}

function basic(username: string, password: string): string {
  return `Basic ${Buffer.from(`${username}:${password}`, "utf8").toString("base64")}`;
}

function parseHead(text: string): LibrarianRequest | undefined {
  const [requestLine, ...headerLines] = text.split("\r\n");
  const match = /^([A-Z]+) (\S+) HTTP\/1\.[01]$/.exec(requestLine ?? "");
  if (match === null) return undefined;
  let authorization: string | undefined;
  for (const line of headerLines) {
    const colon = line.indexOf(":");
    if (colon > 0 && line.slice(0, colon).trim().toLowerCase() === "authorization") {
      authorization = line.slice(colon + 1).trim();
    }
  }
  return { method: match[1]!, path: match[2]!, authorization };
}

/** An HTTP/1.1 response head announcing `length` body bytes, closing afterwards. */
function head11(status: number, length: number, extra: Record<string, string> = {}): Buffer {
  const lines = [
    `HTTP/1.1 ${status} ${STATUS_CODES[status] ?? "Unknown"}`,
    `Date: ${new Date().toUTCString()}`,
    "Connection: close",
    "Content-Type: application/octet-stream",
    `Content-Length: ${length}`,
    ...Object.entries(extra).map(([name, value]) => `${name}: ${value}`),
  ];
  return Buffer.from(`${lines.join("\r\n")}\r\n\r\n`, "latin1");
}

function sendStatus(socket: Socket, status: number, extra: Record<string, string> = {}): void {
  const body = Buffer.from(`${status} ${STATUS_CODES[status] ?? "Unknown"}\n`, "utf8");
  socket.end(Buffer.concat([head11(status, body.length, extra), body]));
}

async function sendBody(socket: Socket, body: Buffer): Promise<void> {
  socket.write(head11(200, body.length));
  await writeChunks(socket, body, CHUNK_BYTES);
  socket.end();
}

/** Write with backpressure, so a 20 MiB body is not queued in memory all at once. */
async function writeChunks(socket: Socket, data: Buffer, size: number): Promise<void> {
  for (let off = 0; off < data.length; off += size) {
    if (socket.destroyed) return;
    if (!socket.write(data.subarray(off, off + size))) {
      await new Promise<void>((resolve) => {
        const done = (): void => {
          socket.off("drain", done);
          socket.off("close", done);
          resolve();
        };
        socket.on("drain", done);
        socket.on("close", done);
      });
    }
  }
}
