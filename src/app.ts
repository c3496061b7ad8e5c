// The composition root: config in, a listening builder out. The CLI and the test harness
// both start the builder through here, so tests exercise exactly what `buildd serve` runs.

import http from "node:http";
import type { AddressInfo } from "node:net";
import type { Config } from "./config.js";
import type { Logger } from "./logger.js";
import { createDispatcher } from "./rpc/dispatcher.js";
import { createMethods } from "./rpc/methods.js";
import { createServer } from "./server.js";
import { basicAuth } from "./auth.js";
import { Builder } from "./builder/builder.js";
import { Journal } from "./builder/journal.js";
import { defaultRegistry } from "./buildtypes/registry.js";
import { HostBackend } from "./backends/host.js";
import { ChrootBackend } from "./backends/chroot.js";
import { VERSION } from "./version.js";
import { openDatabase } from "./state/db.js";
import { FileCache } from "./filecache/store.js";
import { EnsurePresent } from "./filecache/ensurepresent.js";
import { filecacheHandler } from "./filecache/http.js";
import { CapabilityRegistry } from "./capabilities/registry.js";
import { ensureDirectories, hostArchitecture } from "./host-setup.js";

export interface RunningBuilder {
  /** Base URL, e.g. http://127.0.0.1:8221 */
  readonly url: string;
  readonly port: number;
  /** Stop accepting, let in-flight calls finish, release everything. */
  close(): Promise<void>;
}

export async function startBuilder(config: Config, log: Logger): Promise<RunningBuilder> {
  // The config's side effects happen here, not when it is read: missing directories are
  // created before anything opens or locks them.
  ensureDirectories(config);
  const db = openDatabase(config.builder.statedir);
  const cache = new FileCache(config.builder.filecache, db, config.cache, log);
  await cache.reconcile();
  const ensurePresent = new EnsurePresent(cache, config.download, log);
  const registry = defaultRegistry();
  const capabilities = new CapabilityRegistry({
    capabilities: config.capabilities,
    env: config.capabilityEnv,
    onlyIfRequires: config.builder.onlyIfRequires,
    probeIntervalMs: config.builder.probeIntervalMs,
    logger: log,
  });
  // Probed before the first call can arrive, so build() never judges on no information.
  await capabilities.probeAll();
  const arch = hostArchitecture(config);
  const builder = new Builder({
    statedir: config.builder.statedir,
    arch,
    version: VERSION,
    journal: new Journal(db),
    cache,
    registry,
    backends: (kind, workspace) =>
      kind === "chroot" ? new ChrootBackend(workspace) : new HostBackend(workspace),
    logger: log,
    limits: config.build,
    gate: capabilities.gate,
  });
  await builder.recover();

  const methods = createMethods({
    architecture: arch,
    buildTypes: () => registry.names(),
    status: () => builder.status(),
    ensurePresent: (sha1, url, username, password) =>
      ensurePresent.ensure(sha1, url, username, password),
    build: (...a) => builder.build(...a),
    abort: () => builder.abort(),
    clean: () => builder.clean(),
    capabilities: () => capabilities.toWire(),
  });
  const app = createServer({
    dispatcher: createDispatcher(methods, log, config.rpc.maxDepth),
    log,
    maxBody: config.rpc.maxBody,
    authorize: basicAuth(config.auth),
    filecache: filecacheHandler({ cache, buildLogPath: () => builder.buildLogPath() }),
  });

  const server = http.createServer(app);
  server.keepAliveTimeout = 65_000;
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(config.builder.bindport, config.builder.bindhost, () => {
      server.off("error", reject);
      resolve();
    });
  });
  const { port } = server.address() as AddressInfo;
  const host = config.builder.bindhost.includes(":")
    ? `[${config.builder.bindhost}]`
    : config.builder.bindhost;
  const url = `http://${host}:${port}`;
  capabilities.start();
  log.info({ url, config: config.file, version: VERSION }, "builder listening");

  let closing: Promise<void> | null = null;
  return {
    url,
    port,
    close() {
      closing ??= new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeIdleConnections();
      }).then(async () => {
        await capabilities.close();
        db.close();
      });
      return closing;
    },
  };
}
