// createServer(deps) builds the HTTP application; it does not listen and nothing runs on
// import. Routes: POST /rpc[/...] (XML-RPC), GET|HEAD /filecache/<name>, 404 elsewhere.
//
// `guard` is the slot for an authentication layer: it runs in front of /rpc and
// /filecache and may answer (401/403) instead of passing the request on.

import express, {
  type NextFunction,
  type Request,
  type RequestHandler,
  type Response,
} from "express";
import type { Logger } from "pino";
import type { Dispatcher } from "./rpc/dispatcher.js";

export interface ServerDeps {
  readonly dispatcher: Dispatcher;
  readonly log: Logger;
  readonly maxBody: number;
  /** Serves /filecache/<name>; absent: everything under /filecache is 404. */
  readonly filecache?: RequestHandler;
  /** Authentication in front of /rpc and /filecache. */
  readonly guard?: RequestHandler;
}

const passThrough: RequestHandler = (_req, _res, next) => next();

function isBodyTooLarge(err: unknown): boolean {
  return (
    typeof err === "object" && err !== null && "type" in err && err.type === "entity.too.large"
  );
}

export function createServer(deps: ServerDeps): express.Express {
  const app = express();
  app.disable("x-powered-by");
  app.set("etag", false);
  const guard = deps.guard ?? passThrough;

  const rpcBody = express.raw({ type: () => true, limit: deps.maxBody });
  const rpc: RequestHandler = (req, res, next) => {
    if (req.method !== "POST") {
      res.status(405).set("Allow", "POST").type("text/plain").send("Method Not Allowed\n");
      return;
    }
    const body: unknown = req.body;
    const bytes = Buffer.isBuffer(body) ? body : Buffer.alloc(0);
    deps.dispatcher.dispatch(bytes).then((xml) => {
      res.status(200).type("text/xml; charset=utf-8").send(xml);
    }, next);
  };
  app.all(["/rpc", "/rpc/", "/rpc/*rest"], guard, (req, res, next) => {
    if (req.method !== "POST") return rpc(req, res, next);
    rpcBody(req, res, (err?: unknown) => (err ? next(err) : rpc(req, res, next)));
  });

  app.use("/filecache", guard, deps.filecache ?? passThrough);
  app.use((_req, res) => {
    res.status(404).type("text/plain").send("Not Found\n");
  });

  app.use((err: unknown, req: Request, res: Response, _next: NextFunction) => {
    if (isBodyTooLarge(err)) {
      res.status(413).type("text/plain").send(`Request body larger than ${deps.maxBody} bytes\n`);
      return;
    }
    const status =
      typeof err === "object" && err !== null && "status" in err && typeof err.status === "number"
        ? err.status
        : 500;
    if (status >= 500) deps.log.error({ err, url: req.originalUrl }, "request failed");
    if (!res.headersSent) res.status(status).type("text/plain").send(`${status}\n`);
    else res.destroy();
  });
  return app;
}
