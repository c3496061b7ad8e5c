// The files `buildd build` hands to the builder, served by the command itself over HTTP
// on loopback (the builder's ensurepresent downloads them as from a librarian). Each
// path carries a random token, so another local user cannot read the files by guessing,
// and the bytes sent per file are counted: that count is the download's progress.

import { randomBytes } from "node:crypto";
import fs from "node:fs";
import http from "node:http";
import type { AddressInfo } from "node:net";

export interface LocalFile {
  /** The name the build knows it by (a filemap key, or "chroot"). */
  readonly name: string;
  readonly path: string;
  readonly size: number;
  readonly sha1: string;
}

export interface FileServer {
  urlOf(file: LocalFile): string;
  /** Bytes of this file sent so far (over every request for it). */
  sent(file: LocalFile): number;
  close(): Promise<void>;
}

export async function serveFiles(files: readonly LocalFile[], host: string): Promise<FileServer> {
  const token = randomBytes(16).toString("hex");
  const bySha = new Map(files.map((f) => [f.sha1, f]));
  const sent = new Map<string, number>();
  const server = http.createServer((req, res) => {
    const m = /^\/([0-9a-f]{32})\/([0-9a-f]{40})$/.exec(req.url ?? "");
    const file = m && m[1] === token ? bySha.get(m[2]!) : undefined;
    if (!file || (req.method !== "GET" && req.method !== "HEAD")) {
      res.writeHead(404, { "content-type": "text/plain" }).end("not found\n");
      return;
    }
    res.writeHead(200, {
      "content-type": "application/octet-stream",
      "content-length": String(file.size),
    });
    if (req.method === "HEAD") {
      res.end();
      return;
    }
    const stream = fs.createReadStream(file.path, { highWaterMark: 1 << 20 });
    stream.on("data", (chunk) => sent.set(file.sha1, (sent.get(file.sha1) ?? 0) + chunk.length));
    stream.on("error", () => res.destroy());
    stream.pipe(res);
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, host, () => resolve());
  });
  const { port } = server.address() as AddressInfo;
  const base = `http://${host.includes(":") ? `[${host}]` : host}:${port}/${token}`;
  return {
    urlOf: (f) => `${base}/${f.sha1}`,
    sent: (f) => Math.min(sent.get(f.sha1) ?? 0, f.size),
    close: () =>
      new Promise((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
