// createServer(deps) builds the HTTP request listener; it does not listen and nothing
// runs on import. Routes: POST /rpc[/...] (XML-RPC), GET|HEAD /filecache/<name>, and
// 404 for everything else. `authorize`, when set, runs in front of /rpc and /filecache.
//
// Plain node:http, no framework: the design started on Express, but the hot path (a
// status() poll every few seconds per builder) paid as much for Express's routing as
// for the call itself, sendFile's fixed 64 KiB reads served files at a quarter of
// nginx's speed, and loading Express took ~125 ms of the start-up budget. Three routes
// do not need a router; see docs/dependencies.md.

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
    notFound(res);
  };
}
