// The web surface: an Express 5 application for everything a person or a monitoring
// system uses — the status page, /api/v1, /metrics, /healthz, /readyz. src/server.ts
// answers /rpc and /filecache in front of it and hands it every other request.
//
// Express and prom-client are imported here, dynamically, and src/app.ts loads this
// module only once the builder listens: together they take ~200 ms to load, which would
// otherwise come before the first status() a manager can get (docs/dependencies.md).
// They are loaded in slices (preload.ts), so the builder goes on answering meanwhile.

import type { IncomingMessage, ServerResponse } from "node:http";
import type { NextFunction, Request, Response } from "express";
import { refuseUnauthenticated } from "../auth.js";
import { apiRouter, HttpError } from "./api.js";
import { PAGE_CSS, PAGE_JS } from "./assets.js";
import type { WebDeps } from "./deps.js";
import { readiness } from "./health.js";
import { createMetrics } from "./metrics.js";
import { renderPage } from "./page.js";
import { preloadInSlices } from "./preload.js";

export type WebHandler = (req: IncomingMessage, res: ServerResponse) => void;

const PAGE_HEADERS = { "cache-control": "no-store" };

/**
 * Security headers on every answer of the web surface (helmet): the page's own script
 * and stylesheet only — no inline code, nothing from elsewhere —, no framing, no
 * referrer, no MIME sniffing. No Strict-Transport-Security: TLS is optional here, and a
 * browser that cached HSTS would lock its user out once an operator turns TLS off.
 */
const HELMET_OPTIONS = {
  contentSecurityPolicy: {
    useDefaults: false,
    directives: {
      defaultSrc: ["'none'"],
      scriptSrc: ["'self'"],
      styleSrc: ["'self'"],
      connectSrc: ["'self'"],
      imgSrc: ["'self'"],
      baseUri: ["'none'"],
      formAction: ["'none'"],
      frameAncestors: ["'none'"],
    },
  },
  frameguard: { action: "deny" as const },
  referrerPolicy: { policy: "no-referrer" as const },
  strictTransportSecurity: false,
};

/** Express's own 4xx errors (a path that does not decode) keep their status; else 500. */
function clientErrorStatus(err: unknown): number {
  const status =
    typeof err === "object" && err !== null && "status" in err
      ? (err as { status: unknown }).status
      : 500;
  return typeof status === "number" && status >= 400 && status < 500 ? status : 500;
}

/**
 * What preload.ts loads a slice at a time first: the CommonJS packages among those below,
 * which are nearly all of the time. Not helmet: it is small, and a package with both
 * builds would be loaded twice (require() takes its CommonJS one, import() the other).
 */
const SLICED_PACKAGES = ["express", "prom-client"] as const;

export async function createWebApp(deps: WebDeps): Promise<WebHandler> {
  await preloadInSlices(SLICED_PACKAGES);
  const { default: express } = await import("express");
  const { default: helmet } = await import("helmet");
  const prom = await import("prom-client");
  const metrics = createMetrics(prom, deps);
  const app = express();
  app.disable("x-powered-by");
  app.set("etag", false);
  app.use(helmet(HELMET_OPTIONS));

  app.get("/healthz", (_req, res) => void res.json({ alive: true }));

  // Everything else needs the credentials when [auth] password is set.
  app.use((req, res, next) => {
    if (deps.authorize && !deps.authorize(req.headers.authorization)) {
      refuseUnauthenticated(res);
      return;
    }
    next();
  });

  app.get("/readyz", (_req, res) => {
    const reasons = readiness(deps);
    res.status(reasons.length === 0 ? 200 : 503).json({ ready: reasons.length === 0, reasons });
  });

  app.get("/metrics", async (_req, res) => {
    const text = await metrics.render();
    res.set("content-type", metrics.contentType).send(text);
  });

  app.get("/", (_req, res) => {
    res.set(PAGE_HEADERS).type("html").send(renderPage(deps));
  });
  app.get("/assets/page.js", (_req, res) => {
    res.set(PAGE_HEADERS).type("application/javascript").send(PAGE_JS);
  });
  app.get("/assets/page.css", (_req, res) => {
    res.set(PAGE_HEADERS).type("css").send(PAGE_CSS);
  });

  app.use("/api/v1", apiRouter(express, deps));

  app.use((req: Request, res: Response) => {
    res
      .status(404)
      .type("text")
      .send(`Not Found: ${req.method} ${req.path} (the status page is at /; docs/api.md)\n`);
  });

  // Express's error handler: four arguments, or it is not one.
  app.use((err: unknown, req: Request, res: Response, _next: NextFunction) => {
    const status = err instanceof HttpError ? err.status : clientErrorStatus(err);
    if (status === 500) deps.log.error({ err, url: req.originalUrl }, "web request failed");
    const message =
      status < 500 && err instanceof Error
        ? err.message
        : "internal error; the builder's log has the details";
    if (res.headersSent) {
      res.destroy();
      return;
    }
    res.status(status).json({ error: { status, message } });
  });

  return (req, res) => void app(req, res);
}
