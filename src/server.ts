// createServer(deps) builds the HTTP request listener; it does not listen and nothing
// runs on import. The one place that decides where a request goes: POST /rpc[/...]
// (XML-RPC) and GET|HEAD /filecache/<name> on the fast path, everything else to the web
// surface (src/web/, an Express app: the page, /api/v1, /metrics, health). `authorize`,
// when set, runs in front of /rpc and /filecache; the web app applies it itself.
//
// The two machine paths stay in front of Express: a manager polls status() every few
// seconds per builder, and through Express that call ran at about a third of its speed
// here (bench/rpc.ts keeps the comparison); sendFile's fixed 64 KiB reads served files at
// a quarter of nginx's speed. See docs/dependencies.md.

import type { IncomingMessage, RequestListener, ServerResponse } from "node:http";
import type { Logger } from "pino";
import { refuseUnauthenticated } from "./auth.js";
import type { Dispatcher } from "./rpc/dispatcher.js";
import { isRpcPath, rpcHandler } from "./rpc/http.js";
import { isFilecachePath } from "./filecache/http.js";

type Handler = (req: IncomingMessage, res: ServerResponse) => void;

export interface ServerDeps {
  readonly dispatcher: Dispatcher;
  readonly log: Logger;
  readonly maxBody: number;
  /** Serves /filecache/<name>; absent: everything under /filecache is 404. */
  readonly filecache?: Handler;
  /** Authentication check on the Authorization header; absent or null: none. */
  readonly authorize?: ((header: string | undefined) => boolean) | null;
  /**
   * The web surface for every other path, once loaded (it loads after the builder
   * listens); absent: 404; not loaded yet: 503.
   */
  readonly web?: () => Handler | null;
}

function starting(res: ServerResponse): void {
  res.writeHead(503, { "content-type": "text/plain; charset=utf-8", "retry-after": "1" });
  res.end("The builder is starting; try again in a moment\n");
}

function notFound(res: ServerResponse): void {
  res.writeHead(404, { "content-type": "text/plain; charset=utf-8" });
  res.end("Not Found\n");
}

export function createServer(deps: ServerDeps): RequestListener {
  const authorize = deps.authorize ?? null;
  const rpc = rpcHandler({ ...deps, authorize });
  const filecache = deps.filecache;
  return (req, res) => {
    if (isRpcPath(req.url)) return rpc(req, res);
    if (filecache && isFilecachePath(req.url)) {
      if (authorize && !authorize(req.headers.authorization)) {
        refuseUnauthenticated(res);
        return;
      }
      try {
        filecache(req, res);
      } catch (err) {
        deps.log.error({ err, url: req.url }, "serving a file failed");
        if (!res.headersSent) notFound(res);
        else res.destroy();
      }
      return;
    }
    if (!deps.web) return notFound(res);
    const web = deps.web();
    if (web) web(req, res);
    else starting(res);
  };
}
