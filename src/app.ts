// The composition root: config in, a listening builder out. The CLI and the test harness
// both start the builder through here, so tests exercise exactly what `buildd serve` runs.

import fs from "node:fs";
import type { AddressInfo } from "node:net";
import os from "node:os";
import type { Config } from "./config/config.js";
import type { Logger } from "./logger.js";
import { createDispatcher } from "./rpc/dispatcher.js";
import { createMethods } from "./rpc/methods.js";
import { createServer } from "./server.js";
import { createListener } from "./listener.js";
import { basicAuth } from "./auth.js";
import { Builder, type BackendFactory } from "./builder/builder.js";
import { Journal } from "./builder/journal.js";
import { defaultRegistry } from "./buildtypes/registry.js";
import { HostBackend } from "./backends/host.js";
import { ChrootBackend } from "./backends/chroot.js";
import { VERSION } from "./version.js";
import { openDatabase } from "./state/db.js";
import { lockDirectory, type DirectoryLock } from "./state/lock.js";
import { isLoopback } from "./config/network.js";
import { FileCache, freeBytes } from "./filecache/store.js";
import { EnsurePresent } from "./filecache/ensurepresent.js";
import { filecacheHandler } from "./filecache/http.js";
import { CapabilityRegistry } from "./capabilities/registry.js";
import {
  ensureBuildUser,
  ensureDirectories,
  hostArchitecture,
  type BuildUser,
} from "./host-setup.js";
import type { HostSandbox } from "./backends/sandbox.js";
import { Drain } from "./builder/drain.js";
import { BuildStats } from "./builder/stats.js";
import { RpcStats } from "./rpc/stats.js";
import { createWebApp, type WebHandler } from "./web/app.js";
import type { Downloads } from "./filecache/downloads.js";
import { publicProperties } from "./capabilities/env.js";
import { readLogRange } from "./log/range.js";
import type { StatusSnapshot } from "./protocol/status.js";
import type { WebDeps } from "./web/deps.js";
import { processRunner, startSpawnHelper } from "./process/runner.js";
import { MachineSlots } from "./builder/slots.js";
import { startBuildbotWorker } from "./buildbot/worker.js";
import { createScrubber } from "./log/scrub.js";
import type { BuildbotConfig } from "./config/config.js";
import type { Slots } from "./protocol/slots.js";
import type { BuildbotStatus } from "./protocol/buildbot.js";

export interface RunningBuilder {
  /** Base URL, e.g. http://127.0.0.1:8221 */
  readonly url: string;
  readonly port: number;
  /**
   * Shut down: refuse new builds, give a running build `[build] shutdown_grace` to finish
   * (then stop it as BUILDERFAIL), stop downloads, let in-flight calls finish, close the
   * journal, release the directories. Calling it again returns the same promise.
   */
  close(): Promise<void>;
  /**
   * Load the web surface (page, /api/v1, /metrics, health) now, and resolve once it
   * answers. Otherwise it loads WEB_LOAD_DELAY_MS after the builder listens; its paths
   * answer 503 until then.
   */
  loadWeb(): Promise<void>;
  /** During close(): end the grace period now (a second SIGINT/SIGTERM). */
  hurry(): void;
  /** SIGHUP: serve a renewed [tls] certificate to new connections; false if none or bad. */
  reloadTls(): boolean;
}

/** How long after listening the web surface loads, unless loadWeb() asks sooner. */
export const WEB_LOAD_DELAY_MS = 1000;

/** A wait that ends early when end() is called (a second SIGTERM during shutdown). */
class Grace {
  private ended = false;
  private readonly waiters = new Set<() => void>();

  /** True if `work` settled within `ms`; false when the time (or end()) came first. */
  async wait(work: Promise<unknown>, ms: number): Promise<boolean> {
    if (this.ended) return false;
    let timer: NodeJS.Timeout | undefined;
    let stop!: () => void;
    const over = new Promise<false>((resolve) => {
      stop = () => resolve(false);
      timer = setTimeout(stop, ms);
    });
    this.waiters.add(stop);
    try {
      return await Promise.race([work.then(() => true as const), over]);
    } finally {
      clearTimeout(timer);
      this.waiters.delete(stop);
    }
  }

  /** Whether end() was called (rather than the time running out). */
  get endedEarly(): boolean {
    return this.ended;
  }

  end(): void {
    this.ended = true;
    for (const stop of this.waiters) stop();
  }
}

/** Collaborators a test may replace (the design's createServer(deps)); production passes none. */
export interface BuilderOverrides {
  readonly backends?: BackendFactory;
}

/**
 * How host steps are sandboxed, Launchpad's and Buildbot's alike: as the build user, when
 * there is one (root), with what the builder keeps for itself out of their sight.
 */
function hostSandbox(config: Config, buildUser: BuildUser | null): HostSandbox | null {
  if (buildUser === null) return null;
  return {
    user: buildUser.user,
    gid: buildUser.gid,
    statedir: config.builder.statedir,
    hidden: [
      config.builder.filecache,
      ...[config.file, config.secretsFile, config.tls?.key, config.tls?.cert].filter(
        (f): f is string => typeof f === "string",
      ),
    ],
  };
}

/** The real backends. */
function realBackends(sandbox: HostSandbox | null): BackendFactory {
  return (kind, workspace) =>
    kind === "chroot"
      ? new ChrootBackend(workspace, processRunner)
      : new HostBackend(workspace, processRunner, sandbox);
}

export async function startBuilder(
  config: Config,
  log: Logger,
  overrides: BuilderOverrides = {},
): Promise<RunningBuilder> {
  // The config's side effects happen here, not when it is read: missing directories are
  // created before anything opens or locks them.
  ensureDirectories(config);
  // Before anything is read or changed: this process owns both directories, or stops.
  const locks: DirectoryLock[] = [];
  const releaseLocks = (): void => locks.splice(0).forEach((l) => l.release());
  try {
    locks.push(lockDirectory(config.builder.statedir, "[builder] statedir"));
    locks.push(lockDirectory(config.builder.filecache, "[builder] filecache"));
    return await startLocked(config, log, overrides, releaseLocks);
  } catch (err) {
    releaseLocks();
    throw err;
  }
}

async function startLocked(
  config: Config,
  log: Logger,
  overrides: BuilderOverrides,
  releaseLocks: () => void,
): Promise<RunningBuilder> {
  // The process that spawns every command starts now, beside the rest of start-up, so that
  // neither the first probe nor the first build waits for it.
  startSpawnHelper();
  const db = openDatabase(config.builder.statedir);
  try {
    return await serveOn(db, config, log, overrides, releaseLocks);
  } catch (err) {
    db.close();
    throw err;
  }
}

async function serveOn(
  db: ReturnType<typeof openDatabase>,
  config: Config,
  log: Logger,
  overrides: BuilderOverrides,
  releaseLocks: () => void,
): Promise<RunningBuilder> {
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
    runner: processRunner,
  });
  // Before the first call can arrive (build() never judges capabilities on no
  // information), and side by side: each waits on processes of its own.
  const [, arch, buildUser] = await Promise.all([
    capabilities.probeAll(),
    hostArchitecture(config, processRunner),
    overrides.backends ? null : ensureBuildUser(config, processRunner, log),
  ]);
  const sandbox = hostSandbox(config, buildUser);
  // Buildbot steps write in the shared cache as the build user (docs/buildbot.md).
  if (buildUser && config.buildbot)
    fs.chownSync(config.buildbot.sharedCache, buildUser.uid, buildUser.gid);
  const journal = new Journal(db);
  // Counted from the journal's record of each end, recovered builds included.
  const buildStats = new BuildStats();
  journal.onFinish(buildStats.record);
  const drain = new Drain(journal);
  // One owner for the machine's build slots, handed to both coordinators' sides.
  const slots = new MachineSlots(config.buildbot?.maxBuilds ?? 1);
  const builder = new Builder({
    statedir: config.builder.statedir,
    arch,
    version: VERSION,
    journal,
    cache,
    registry,
    backends: overrides.backends ?? realBackends(sandbox),
    logger: log,
    limits: config.build,
    gate: capabilities.gate,
    drain,
    slots,
  });
  await builder.recover();

  const methods = createMethods({
    architecture: arch,
    buildTypes: () => registry.names(),
    status: () => statusWithDownloads(builder, ensurePresent.downloads),
    ensurePresent: (sha1, url, username, password) =>
      ensurePresent.ensure(sha1, url, username, password),
    build: (...a) => builder.build(...a),
    abort: () => builder.abort(),
    clean: () => builder.clean(),
    capabilities: () => capabilities.toWire(),
  });
  const rpcStats = new RpcStats();
  const authorize = basicAuth(config.auth);
  // Loaded after the builder listens (see loadWeb below); until then its paths answer 503.
  let web: WebHandler | null = null;
  const app = createServer({
    dispatcher: createDispatcher(methods, log, config.rpc.maxDepth, rpcStats.observe),
    log,
    maxBody: config.rpc.maxBody,
    authorize,
    filecache: filecacheHandler({ cache, buildLogPath: () => builder.buildLogPath() }),
    web: () => web,
  });

  const listener = createListener(config, app, log);
  const { server } = listener;
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
  const url = `${listener.scheme}://${host}:${port}`;
  capabilities.start();
  // After the listener: a master that is down or refuses us never holds up /rpc.
  const buildbot =
    config.buildbot === null
      ? null
      : startBuildbotWorker({
          master: config.buildbot.master,
          name: config.buildbot.name,
          password: config.buildbot.password,
          basedir: config.buildbot.basedir,
          info: workerInfo(config.buildbot, capabilities),
          runner: processRunner,
          sandbox,
          buildUser: buildUser && { uid: buildUser.uid, gid: buildUser.gid },
          scrubber: createScrubber([config.buildbot.password, config.auth.password]),
          slots,
          gate: capabilities.gate,
          sharedCache: config.buildbot.sharedCache,
          logger: log.child({ buildbot: config.buildbot.masterText }),
          reconnect: { minMs: 1000, maxMs: config.buildbot.reconnectMaxMs },
          version: VERSION,
        });
  // Loading Express and prom-client holds the main thread for ~150 ms (measured here; more
  // under load): done at once it would hold up the first calls a manager makes after a
  // restart, so it happens a moment later, or when asked (loadWeb()). Never awaited
  // here: the caller installs its signal handlers as soon as the builder listens.
  const deps = webDeps({
    config,
    log,
    architecture: arch,
    authorize,
    builder,
    journal,
    drain,
    cache,
    downloads: ensurePresent.downloads,
    capabilities,
    rpcStats,
    buildStats,
    slots,
    buildbot: () => buildbot?.status() ?? null,
  });
  let webLoading: Promise<void> | null = null;
  const loadWeb = (): Promise<void> =>
    (webLoading ??= createWebApp(deps).then(
      (handler) => void (web = handler),
      (err: unknown) => log.error({ err }, "the web surface failed to load; its paths answer 503"),
    ));
  const webTimer = setTimeout(() => void loadWeb(), WEB_LOAD_DELAY_MS);
  webTimer.unref();
  log.info({ url, config: config.file, version: VERSION }, "builder listening");
  if (config.auth.trustedNetwork && !isLoopback(config.builder.bindhost)) {
    // Said at every start, so that an open builder is never forgotten.
    log.warn(
      {
        bindhost: config.builder.bindhost,
        password: config.auth.password !== "",
        tls: config.tls !== null,
      },
      "[auth] trusted_network = yes: this builder is reachable from the network and relies on the network being trusted",
    );
  }

  const grace = new Grace();
  let closing: Promise<void> | null = null;
  return {
    url,
    port,
    loadWeb,
    hurry: () => grace.end(),
    reloadTls: () => listener.reloadTls(),
    close() {
      closing ??= (async () => {
        // The listener stays up during the grace: managers keep polling status() and
        // may still collect a finished build's files or a download; only new builds and
        // new downloads are refused.
        builder.stopAccepting("the builder is shutting down; send the build to another builder");
        ensurePresent.stopAccepting();
        // As the Python worker does on SIGTERM: the connection closes and its running
        // commands are stopped; the master retries those builds (RETRY) on another worker.
        await buildbot?.close();
        const graceMs = config.build.shutdownGraceMs;
        const inTime = await grace.wait(
          Promise.all([builder.settled(), ensurePresent.idle()]),
          graceMs,
        );
        if (!inTime) {
          await builder.stopForShutdown(
            grace.endedEarly
              ? "the builder was told to stop again (a second SIGTERM or SIGINT) before the build finished; stopping it as BUILDERFAIL"
              : `the builder is shutting down and the build did not finish within its grace of ${graceMs / 1000} s ([build] shutdown_grace); stopping it as BUILDERFAIL`,
          );
          await ensurePresent.close();
        }
        await new Promise<void>((resolve) => {
          server.close(() => resolve());
          server.closeIdleConnections();
        });
        await capabilities.close();
        clearTimeout(webTimer);
        await webLoading;
        // Nothing writes to the journal any more: the build has ended, downloads have
        // stopped and the last call has been answered.
        db.close();
        releaseLocks();
      })();
      return closing;
    },
  };
}

// The web surface's view of the builder, assembled from the modules that own each fact.

export interface WebParts {
  readonly config: Config;
  readonly log: Logger;
  readonly architecture: string;
  readonly authorize: ((header: string | undefined) => boolean) | null;
  readonly builder: Builder;
  readonly journal: Journal;
  readonly drain: Drain;
  readonly cache: FileCache;
  readonly downloads: Downloads;
  readonly capabilities: CapabilityRegistry;
  readonly rpcStats: RpcStats;
  readonly buildStats: BuildStats;
  readonly slots: Slots;
  readonly buildbot: () => BuildbotStatus | null;
}

/** status() as the manager and the page see it: the builder's snapshot and the downloads. */
export function statusWithDownloads(builder: Builder, downloads: Downloads): StatusSnapshot {
  const s = builder.status();
  const list = downloads.snapshot();
  return list.length === 0 ? s : { ...s, downloads: list };
}

export function webDeps(p: WebParts): WebDeps {
  return {
    architecture: p.architecture,
    log: p.log,
    authorize: p.authorize,
    status: () => statusWithDownloads(p.builder, p.downloads),
    currentBuild: () => p.journal.state().current,
    builds: (limit) => p.journal.history(limit),
    build: (seq) => p.journal.get(seq),
    readLog: (offset, max) => {
      const file = p.builder.buildLogPath();
      return file === null ? null : readLogRange(file, offset, max);
    },
    downloads: () => p.downloads.list(),
    downloadTotals: () => p.downloads.totals(),
    cache: () => ({
      usedBytes: p.cache.totalSize(),
      budgetBytes: p.config.cache.maxSize,
      freeBytes: freeBytes(p.cache.dir),
      reserveBytes: p.config.cache.minFree,
      ...p.cache.counts(),
    }),
    capabilities: () =>
      p.capabilities.list().map((s) => ({
        name: s.decl.name,
        version: s.decl.version,
        properties: publicProperties(s.decl),
        available: s.available,
        reason: s.reason,
      })),
    requiredCapabilities: p.config.builder.onlyIfRequires,
    draining: () => p.drain.draining,
    drain: () => p.drain.drain(),
    undrain: () => p.drain.undrain(),
    buildbot: p.buildbot,
    slots: () => ({ max: p.slots.max, held: p.slots.holders(), waiting: p.slots.waiting() }),
    rpcStats: p.rpcStats,
    buildStats: p.buildStats,
  };
}

/**
 * The facts the master's worker page shows, and the capabilities a master.cfg routes
 * builds by (contrib/buildbot/), read at each get_worker_info so that probe results are
 * current. Secret properties never leave the worker.
 */
function workerInfo(
  bb: BuildbotConfig,
  capabilities: CapabilityRegistry,
): () => Record<string, string> {
  const host =
    bb.host || `${os.hostname()} (${os.type()} ${os.release()}, ${os.cpus().length} CPUs)`;
  return () => {
    // One entry per capability name; a name declared in several versions (postgresql 13
    // and 15) carries the list of them, so a master can route by either.
    const byName = new Map<string, CapabilityEntry[]>();
    for (const s of capabilities.list()) {
      const entry: CapabilityEntry = {
        version: s.decl.version,
        properties: publicProperties(s.decl),
        available: s.available,
        reason: s.reason,
      };
      byName.set(s.decl.name, [...(byName.get(s.decl.name) ?? []), entry]);
    }
    const json = Object.fromEntries(
      [...byName].map(([name, entries]) => [name, entries.length === 1 ? entries[0] : entries]),
    );
    return { admin: bb.admin, host, capabilities: JSON.stringify(json) };
  };
}

interface CapabilityEntry {
  readonly version: string | null;
  readonly properties: Readonly<Record<string, string>>;
  readonly available: boolean;
  readonly reason: string;
}
