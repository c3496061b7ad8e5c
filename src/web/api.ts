// /api/v1: the builder's facts as JSON (docs/api.md, whose examples the tests run).
// Every parameter is checked here, once, and a bad one is answered 400 with what was
// wrong and what would be right.

import type { Request, Response, Router } from "express";
import type { BuildInfo, WebDeps } from "./deps.js";
import {
  buildbotJson,
  buildDetailJson,
  buildJson,
  downloadJson,
  shortName,
  slotsJson,
  statusJson,
} from "./json.js";

export class HttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

const MAX_LOG_CHUNK = 64 * 1024;

/** A whole-number query parameter within [min, max], or `fallback` when absent. */
function intParam(
  req: Request,
  name: string,
  what: string,
  min: number,
  max: number,
  fallback: number,
): number {
  const raw: unknown = req.query[name];
  if (raw === undefined) return fallback;
  if (typeof raw !== "string") throw new HttpError(400, `${name} must be given once`);
  const n = /^\d{1,16}$/.test(raw) ? Number(raw) : NaN;
  if (!(n >= min && n <= max)) {
    throw new HttpError(400, `${name} must be ${what}, not ${JSON.stringify(raw.slice(0, 40))}`);
  }
  return n;
}

function buildOf(deps: WebDeps, raw: string | undefined): BuildInfo {
  if (raw === "current") {
    const cur = deps.currentBuild();
    if (!cur) {
      const state = shortName(deps.status().state);
      throw new HttpError(404, `there is no current build: the builder is ${state}`);
    }
    return cur;
  }
  if (raw === undefined || !/^\d{1,15}$/.test(raw)) {
    throw new HttpError(
      400,
      `a build is named by its seq (a whole number, as GET /api/v1/builds lists them) or "current", not ${JSON.stringify((raw ?? "").slice(0, 40))}`,
    );
  }
  const b = deps.build(Number(raw));
  if (!b) throw new HttpError(404, `no build ${raw} in the journal; GET /api/v1/builds lists them`);
  return b;
}

/** POSTs that change the builder must not come from another site's page in a browser. */
function refuseCrossSite(req: Request): void {
  const origin = req.headers.origin;
  if (origin === undefined) return;
  let host: string | null = null;
  try {
    host = new URL(origin).host;
  } catch {
    // "null" and other opaque origins: not this page.
  }
  if (host !== req.headers.host) {
    throw new HttpError(403, `refused a request from another origin (${origin.slice(0, 80)})`);
  }
}

export function apiRouter(express: typeof import("express"), deps: WebDeps): Router {
  const api = express.Router();
  const now = deps.now ?? Date.now;

  api.get("/status", (_req, res) => void res.json(statusJson(deps)));

  api.get("/builds", (req, res) => {
    const limit = intParam(req, "limit", "a whole number from 1 to 1000", 1, 1000, 20);
    res.json({ builds: deps.builds(limit).map(buildJson) });
  });

  api.get("/builds/:seq", (req, res) => {
    res.json(buildDetailJson(buildOf(deps, req.params["seq"])));
  });

  api.get("/builds/:seq/log", (req, res) => {
    const b = buildOf(deps, req.params["seq"]);
    const offset = intParam(
      req,
      "offset",
      "a whole number of bytes, 0 or more",
      0,
      Number.MAX_SAFE_INTEGER,
      0,
    );
    const max = intParam(
      req,
      "max",
      `a whole number of bytes from 1 to ${MAX_LOG_CHUNK}`,
      1,
      MAX_LOG_CHUNK,
      MAX_LOG_CHUNK,
    );
    const current = deps.currentBuild();
    const chunk = current?.seq === b.seq ? deps.readLog(offset, max) : null;
    if (!current || !chunk) {
      throw new HttpError(
        404,
        `the log of build ${b.seq} is gone: clean() removes it with the build's files`,
      );
    }
    res.json({
      seq: b.seq,
      build_id: b.buildId,
      offset: chunk.offset,
      next_offset: chunk.nextOffset,
      size: chunk.size,
      // Ended: the log is closed before the journal records the end.
      complete: current.endedAt !== null,
      text: chunk.text,
    });
  });

  api.get("/downloads", (_req, res) => {
    const t = now();
    res.json({ downloads: deps.downloads().map((d) => downloadJson(d, t)) });
  });

  api.get("/cache", (_req, res) => {
    const c = deps.cache();
    res.json({
      used_bytes: c.usedBytes,
      budget_bytes: c.budgetBytes,
      free_bytes: c.freeBytes,
      reserve_bytes: c.reserveBytes,
      entries: c.entries,
      evictions: c.evictions,
    });
  });

  api.get("/capabilities", (_req, res) => {
    res.json({
      capabilities: deps.capabilities().map((c) => ({
        name: c.name,
        version: c.version,
        properties: { ...c.properties },
        available: c.available,
        reason: c.reason,
      })),
    });
  });

  api.get("/buildbot", (_req, res) => {
    const b = deps.buildbot();
    res.json({ buildbot: b === null ? null : buildbotJson(b) });
  });

  api.get("/slots", (_req, res) => void res.json(slotsJson(deps.slots())));

  api.post("/drain", (req, res) => {
    refuseCrossSite(req);
    deps.drain();
    deps.log.warn("draining: no new builds until undrained");
    res.json(statusJson(deps));
  });

  api.post("/undrain", (req, res) => {
    refuseCrossSite(req);
    deps.undrain();
    deps.log.info("undrained: taking builds again");
    res.json(statusJson(deps));
  });

  api.use((req: Request, _res: Response) => {
    throw new HttpError(
      404,
      `no such endpoint: ${req.method} /api/v1${req.path}; docs/api.md lists them`,
    );
  });

  return api;
}
