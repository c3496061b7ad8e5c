// The one listening socket: HTTP, or HTTPS when [tls] cert and key are set, with the
// limits a server on a network needs (a slow-loris client that dribbles its headers is
// cut off; one client address cannot take every connection). The request handler is
// src/server.ts's; this module only decides how bytes arrive.

import fs from "node:fs";
import http from "node:http";
import https from "node:https";
import type { RequestListener } from "node:http";
import type { Socket } from "node:net";
import type { Logger } from "pino";
import type { Config } from "./config/config.js";
import { describeError } from "./errors.js";

export interface Listener {
  readonly server: http.Server;
  readonly scheme: "http" | "https";
  /**
   * Read [tls] cert and key again and serve them to new connections (SIGHUP): a renewed
   * certificate without a restart, so a running build goes on. A bad pair is logged and
   * the old one kept.
   */
  reloadTls(): boolean;
}

function readTls(tls: NonNullable<Config["tls"]>): { cert: Buffer; key: Buffer } {
  return { cert: fs.readFileSync(tls.cert), key: fs.readFileSync(tls.key) };
}

export function createListener(config: Config, handler: RequestListener, log: Logger): Listener {
  const limits = config.http;
  const options: http.ServerOptions = {
    headersTimeout: limits.headersTimeoutMs,
    requestTimeout: limits.requestTimeoutMs,
    // How often Node checks the two timeouts above (its default, 30 s, would let a
    // dribbling client hold a connection for that long past the limit).
    connectionsCheckingInterval: Math.min(1000, limits.headersTimeoutMs),
  };
  const tls = config.tls;
  const server = tls
    ? https.createServer({ ...options, ...readTls(tls) }, handler)
    : http.createServer(options, handler);
  server.keepAliveTimeout = 65_000;
  limitPerClient(server, limits.maxConnectionsPerClient, log);
  return {
    server,
    scheme: tls ? "https" : "http",
    reloadTls() {
      if (!tls) {
        log.info("SIGHUP: no [tls] configured, nothing to reload");
        return false;
      }
      try {
        (server as https.Server).setSecureContext(readTls(tls));
        log.info({ cert: tls.cert }, "SIGHUP: reloaded the TLS certificate and key");
        return true;
      } catch (err) {
        log.error(
          { err: describeError(err), cert: tls.cert },
          "SIGHUP: could not reload the TLS certificate and key; still serving the old ones",
        );
        return false;
      }
    },
  };
}

/** At most `max` open connections from one client address; more are closed at once. */
function limitPerClient(server: http.Server, max: number, log: Logger): void {
  const open = new Map<string, number>();
  // https.Server emits "connection" for the raw TCP socket too, before TLS.
  server.on("connection", (socket: Socket) => {
    const who = socket.remoteAddress ?? "?";
    const n = (open.get(who) ?? 0) + 1;
    if (n > max) {
      log.warn({ client: who, max }, "too many connections from one client; closing the newest");
      socket.destroy();
      return;
    }
    open.set(who, n);
    socket.once("close", () => {
      const left = (open.get(who) ?? 1) - 1;
      if (left === 0) open.delete(who);
      else open.set(who, left);
    });
  });
}
