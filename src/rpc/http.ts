// POST /rpc on plain node:http. This is the path a manager hits every few seconds per
// builder; a framework's routing and body parsing cost about as much as the call itself
// (measured with Express: bench/rpc.ts), so the body is read here with its size limit
// and handed straight to the dispatcher.

import type { IncomingMessage, ServerResponse } from "node:http";
import type { Logger } from "pino";
import { refuseUnauthenticated } from "../auth.js";
import type { Dispatcher } from "./dispatcher.js";

export interface RpcHttpDeps {
  readonly dispatcher: Dispatcher;
  readonly log: Logger;
  readonly maxBody: number;
  /** Authentication check on the Authorization header; null: none. */
  readonly authorize: ((header: string | undefined) => boolean) | null;
}

/** /rpc, /rpc/ and /rpc/<anything> (the reference's resource is a leaf). */
export function isRpcPath(url: string | undefined): boolean {
  if (url === undefined || !url.startsWith("/rpc")) return false;
  // Checked in place: no substring per request.
  const next = url.length === 4 ? -1 : url.charCodeAt(4);
  return next === -1 || next === 0x2f /* / */ || next === 0x3f; /* ? */
}

function plain(
  res: ServerResponse,
  status: number,
  text: string,
  headers: Record<string, string> = {},
): void {
  res.writeHead(status, { "content-type": "text/plain; charset=utf-8", ...headers });
  res.end(text);
}

function reply(res: ServerResponse, body: Buffer): void {
  res.writeHead(200, { "content-type": "text/xml; charset=utf-8", "content-length": body.length });
  res.end(body);
}

export function rpcHandler(deps: RpcHttpDeps): (req: IncomingMessage, res: ServerResponse) => void {
  const tooLarge = `Request body larger than ${deps.maxBody} bytes\n`;
  return (req, res) => {
    if (deps.authorize && !deps.authorize(req.headers.authorization)) {
      refuseUnauthenticated(res);
      req.resume();
      return;
    }
    if (req.method !== "POST") {
      plain(res, 405, "Method Not Allowed\n", { allow: "POST" });
      req.resume();
      return;
    }
    const declared = Number(req.headers["content-length"] ?? 0);
    if (declared > deps.maxBody) {
      // Answer at once and close: reading a body we will refuse only costs bandwidth.
      plain(res, 413, tooLarge, { connection: "close" });
      req.destroy();
      return;
    }
    const chunks: Buffer[] = [];
    let size = 0;
    let refused = false;
    req.on("data", (chunk: Buffer) => {
      if (refused) return;
      size += chunk.length;
      if (size > deps.maxBody) {
        refused = true;
        plain(res, 413, tooLarge, { connection: "close" });
        req.destroy();
        return;
      }
      chunks.push(chunk);
    });
    req.on("error", () => undefined);
    req.on("end", () => {
      if (refused) return;
      let answer: Buffer | Promise<Buffer>;
      try {
        // A call's body mostly comes in one chunk: no copy of it then.
        const body = chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks, size);
        answer = deps.dispatcher.dispatch(body);
      } catch (err) {
        answer = Promise.reject(err);
      }
      if (Buffer.isBuffer(answer)) return reply(res, answer);
      answer.then(
        (body) => reply(res, body),
        (err: unknown) => {
          // The dispatcher answers every failure itself; this is a bug, not input.
          deps.log.error({ err }, "dispatcher failed");
          if (!res.headersSent) plain(res, 500, "Internal Server Error\n");
          else res.destroy();
        },
      );
    });
  };
}
