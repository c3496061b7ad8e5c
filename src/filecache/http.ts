// GET|HEAD /filecache/<name>: a cached file by its SHA-1, or the current build log.
//
// Only two kinds of name exist: 40 lowercase hex digits, and `buildlog`. Everything else
// is 404 before any path is built, so encoded slashes, dot segments, NUL bytes or long
// names can never reach the file system, and there is no directory listing.
// Ranges, Last-Modified and conditional requests come from express's sendFile; the
// strong ETag is the SHA-1 itself (the reference sends none).

import express, { type RequestHandler } from "express";
import { isSha1 } from "./names.js";
import type { FileCache } from "./store.js";

export interface FilecacheRoutesDeps {
  readonly cache: FileCache;
  /** Path of the current build log, or null when there is none (IDLE). */
  buildLogPath(): string | null;
}

export function filecacheRoutes(deps: FilecacheRoutesDeps): RequestHandler {
  const router = express.Router({ caseSensitive: true, strict: true });
  router.get("/:name", (req, res, next) => {
    const name = req.params["name"] ?? "";
    let file: string | null = null;
    if (isSha1(name) && deps.cache.has(name)) {
      file = deps.cache.pathOf(name);
      res.setHeader("ETag", `"${name}"`);
    } else if (name === "buildlog") {
      file = deps.buildLogPath();
    }
    if (file === null) {
      next();
      return;
    }
    res.type("application/octet-stream");
    res.sendFile(
      file,
      {
        etag: name === "buildlog",
        lastModified: true,
        acceptRanges: true,
        cacheControl: false,
        dotfiles: "deny",
      },
      (err?: Error) => {
        if (!err) return;
        const code = (err as NodeJS.ErrnoException).code;
        // Gone between the check and the read (evicted, or clean()): a plain 404.
        if (code === "ENOENT" && !res.headersSent) next();
        else if (!res.headersSent) next(err);
      },
    );
  });
  return router;
}
