// A real Buildbot master for tests and benchmarks: Debian's `buildbot` package, started
// as a child process in a fresh temporary directory with a generated master.cfg, and
// driven through its own REST API (/api/v2) and JSON-RPC control endpoints.
//
// This is not a mock. Everything a worker talks to is the master's own code; two pieces
// of test scaffolding (harness/buildbot/) make it run here: a stand-in for the
// JavaScript UI plugin Debian lacks (without a `base` web plugin the master will not
// start the web service that also serves the REST API), and a fix for an upstream
// master bug that empties every FileDownload sent over msgpack (update_read_file).
//
// Both listening ports are chosen by the kernel (port 0) and read back from /proc, so no
// other process can take them between choosing and binding; restart() reuses them.

import fs from "node:fs";
import path from "node:path";
import { listeningAddresses } from "./listening.js";
import {
  DIE_WITH_PARENT,
  removeDir,
  runTool,
  sleep,
  spawnGroup,
  tempDir,
  type GroupChild,
} from "./buildbot-processes.js";

// Re-exported: the tests and the Python worker's module take them from here.
export {
  buildbotMissing,
  buildbotPython,
  DIE_WITH_PARENT,
  pythonEnv,
  removeDir,
  runTool,
  sleep,
  spawnGroup,
  tempDir,
  type GroupChild,
} from "./buildbot-processes.js";

/** Build and step results as the master reports them. */
export const RESULTS = {
  SUCCESS: 0,
  WARNINGS: 1,
  FAILURE: 2,
  SKIPPED: 3,
  EXCEPTION: 4,
  RETRY: 5,
  CANCELLED: 6,
} as const;

// ---------------------------------------------------------------------------------------
// The master.

export interface MasterWorker {
  readonly name: string;
  readonly password: string;
  /** The worker's max_builds; default: no limit. */
  readonly maxBuilds?: number;
}

export interface MasterOptions {
  readonly workers: readonly MasterWorker[];
  /**
   * Python that appends `util.BuilderConfig(...)` entries to `c['builders']`. In scope:
   * `c`, `steps`, `util`, `WORKERS` (the worker names) and, from contrib/buildbot,
   * `buildd_capabilities`. Dedented, so it may be indented like the code around it.
   * A ForceScheduler named `force` over every builder is added after it.
   */
  readonly builders: string;
  /** Files written into the master's directory before it starts (e.g. for FileDownload). */
  readonly files?: Readonly<Record<string, string | Buffer>>;
  /** How long a start may take; default 60 s. */
  readonly timeoutMs?: number;
}

export interface ForcedBuild {
  readonly buildsetId: number;
  readonly buildrequestId: number;
}

/** A build as /api/v2/builds returns it (the fields tests use, and the rest). */
export interface BuildJson {
  readonly buildid: number;
  readonly number: number;
  readonly builderid: number;
  readonly buildrequestid: number;
  readonly workerid: number;
  readonly complete: boolean;
  readonly results: number | null;
  readonly state_string: string;
  readonly [key: string]: unknown;
}

export interface FinishedBuild {
  /** The build request's result: RESULTS.SUCCESS, FAILURE, EXCEPTION, CANCELLED, … */
  readonly results: number;
  /** Its last build; null if it was cancelled before any build started. */
  readonly build: BuildJson | null;
}

export interface StepJson {
  readonly stepid: number;
  readonly number: number;
  readonly name: string;
  readonly complete: boolean;
  readonly results: number | null;
  readonly state_string: string;
  readonly [key: string]: unknown;
}

export interface WorkerJson {
  readonly workerid: number;
  readonly name: string;
  readonly connected_to: readonly { masterid: number }[];
  /** Only admin, host, access_uri and version: the master stores no other info key. */
  readonly workerinfo: Readonly<Record<string, unknown>>;
  readonly [key: string]: unknown;
}

export interface BuildbotMaster {
  readonly dir: string;
  /** The msgpack WebSocket port (listening on all interfaces: connect to 127.0.0.1). */
  readonly workerPort: number;
  /** `http://127.0.0.1:N`; the REST API is under `/api/v2`. */
  readonly wwwUrl: string;
  /** Milliseconds the last start took, from spawn to both ports answering. */
  readonly startupMs: number;
  /** GET /api/v2/<path>, parsed. */
  api<T = unknown>(apiPath: string): Promise<T>;
  /** A JSON-RPC call on /api/v2/<path>; its result, or throws with the master's error. */
  control(apiPath: string, method: string, params?: Record<string, unknown>): Promise<unknown>;
  /** Force a build through the `force` scheduler; properties may hold any JSON values. */
  forceBuild(builder: string, properties?: Record<string, unknown>): Promise<ForcedBuild>;
  /** The builds of a build request so far (more than one after a retry). */
  builds(buildrequestId: number): Promise<BuildJson[]>;
  /** Wait until a build of the request has started. */
  waitForBuildStart(buildrequestId: number, timeoutMs?: number): Promise<BuildJson>;
  /**
   * Wait until the request is complete (built, or cancelled). A build that ends in RETRY
   * (its worker was lost) puts the request back in the queue: it is not complete then.
   */
  waitForBuild(buildrequestId: number, timeoutMs?: number): Promise<FinishedBuild>;
  /** Wait until one build is over, whatever its result (RETRY included). */
  waitForBuildEnd(buildId: number, timeoutMs?: number): Promise<BuildJson>;
  stopBuild(buildId: number, reason?: string): Promise<void>;
  cancelBuildRequest(buildrequestId: number, reason?: string): Promise<void>;
  steps(buildId: number): Promise<StepJson[]>;
  /**
   * A step log's text from the `/raw` endpoint: for stdio logs (type `s`) without the
   * one-letter stream marker (o stdout, e stderr, h header) the master stores in front
   * of every line, header lines ("program finished with exit code 0"…) included; lines
   * joined by "\n", without a final newline.
   */
  logText(buildId: number, stepNumber: number, slug?: string): Promise<string>;
  /** logText() of the build's step named `stepName` (which must exist). */
  stepLog(buildId: number, stepName: string, slug?: string): Promise<string>;
  /**
   * The same log from the `/contents` endpoint: the stored lines as they are, i.e. each
   * line of a stdio log starting with its stream marker, each ending in "\n".
   */
  logContent(buildId: number, stepNumber: number, slug?: string): Promise<string>;
  workers(): Promise<WorkerJson[]>;
  waitForWorker(name: string, connected: boolean, timeoutMs?: number): Promise<WorkerJson>;
  /** twistd.log so far, all starts included. */
  masterLog(): string;
  /** A file the master holds, relative to its directory (FileUpload/DirectoryUpload land there). */
  masterFile(relPath: string): Buffer;
  /** Stop the master (same ports, same database) and start it again. */
  restart(): Promise<void>;
  /** Kill the master (its whole process group) and remove its directory. */
  stop(): Promise<void>;
}

/** Remove the indentation common to all non-blank lines. */
function dedent(text: string): string {
  const lines = text.replace(/^\n+/, "").replace(/\s+$/, "").split("\n");
  const indents = lines.filter((l) => l.trim()).map((l) => /^ */.exec(l)![0].length);
  const cut = Math.min(...indents, Infinity);
  return lines.map((l) => l.slice(Number.isFinite(cut) ? cut : 0)).join("\n");
}

const py = (value: unknown): string => JSON.stringify(value); // JSON strings are Python literals

function masterCfg(opts: MasterOptions, ports: { worker: number; www: number }): string {
  const workers = opts.workers
    .map(
      (w) =>
        `    worker.Worker(${py(w.name)}, ${py(w.password)}` +
        `${w.maxBuilds === undefined ? "" : `, max_builds=${w.maxBuilds}`}),`,
    )
    .join("\n");
  return `# Generated by harness/buildbot-master.ts for one test run.
import buildd_capabilities
import buildd_test_master
from buildbot.plugins import steps, util, worker

buildd_test_master.fix_update_read_file()

c = BuildmasterConfig = {}
c['title'] = 'buildd test master'
c['buildbotNetUsageData'] = None
c['db'] = {'db_url': 'sqlite:///state.sqlite'}
c['protocols'] = {'msgpack_experimental_v7': {'port': ${ports.worker}}}
c['www'] = {'port': 'tcp:${ports.www}:interface=127.0.0.1', 'plugins': {}}
c['workers'] = [
${workers}
]
WORKERS = [w.workername for w in c['workers']]
c['builders'] = []

# --- the test's builders ---
${dedent(opts.builders)}
# ---

c['schedulers'] = [
    buildd_test_master.ForceWithProperties(
        name='force', builderNames=[b.name for b in c['builders']]),
]
`;
}

/** GET a URL; the body parsed as JSON if it is (the REST API labels its JSON text/plain). */
async function getJson(url: string): Promise<{ status: number; body: unknown }> {
  const res = await fetch(url);
  const text = await res.text();
  try {
    return { status: res.status, body: JSON.parse(text) as unknown };
  } catch {
    return { status: res.status, body: text };
  }
}

/** The two ports the master listens on: the one that answers /api/v2 is the web one. */
async function findPorts(pid: number): Promise<{ worker: number; www: number } | null> {
  const ports = [...new Set(listeningAddresses(pid).map((a) => a.port))];
  if (ports.length < 2) return null;
  let www: number | undefined;
  for (const port of ports) {
    try {
      const { body } = await getJson(`http://127.0.0.1:${port}/api/v2/masters`);
      const masters = (body as { masters?: { active: boolean }[] }).masters;
      if (masters?.some((m) => m.active)) www = port;
    } catch {
      // not the web port, or not answering yet
    }
  }
  const worker = ports.find((p) => p !== www);
  return www === undefined || worker === undefined ? null : { worker, www };
}

/**
 * Start a master in a new temporary directory. Resolves once its REST API answers and
 * its worker port listens; rejects with its log if it exits or takes too long.
 */
export async function startBuildbotMaster(opts: MasterOptions): Promise<BuildbotMaster> {
  const dir = tempDir("buildbot-master-");
  const timeoutMs = opts.timeoutMs ?? 60_000;
  const logFile = path.join(dir, "twistd.log");
  const masterLog = (): string => (fs.existsSync(logFile) ? fs.readFileSync(logFile, "utf8") : "");
  try {
    runTool("buildbot", ["create-master", "--quiet", "--db", "sqlite:///state.sqlite", dir], dir);
    fs.appendFileSync(path.join(dir, "buildbot.tac"), DIE_WITH_PARENT);
    for (const [rel, content] of Object.entries(opts.files ?? {})) {
      const file = path.join(dir, rel);
      fs.mkdirSync(path.dirname(file), { recursive: true });
      fs.writeFileSync(file, content);
    }
  } catch (e) {
    removeDir(dir);
    throw e;
  }

  let proc: GroupChild;
  let ports = { worker: 0, www: 0 };
  let startupMs = 0;

  async function start(): Promise<void> {
    fs.writeFileSync(path.join(dir, "master.cfg"), masterCfg(opts, ports));
    const began = performance.now();
    proc = spawnGroup("buildbot", ["start", "--nodaemon", dir], dir);
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      if (proc.exited()) {
        throw new Error(`the master exited during start-up:\n${proc.output()}\n${masterLog()}`);
      }
      if (Date.now() > deadline) {
        await proc.stop(0);
        throw new Error(`the master did not start within ${timeoutMs} ms:\n${masterLog()}`);
      }
      const found = await findPorts(proc.pid);
      if (found) {
        ports = found;
        break;
      }
      await sleep(100);
    }
    startupMs = performance.now() - began;
  }

  try {
    await start();
  } catch (e) {
    removeDir(dir);
    throw e;
  }

  const base = (): string => `http://127.0.0.1:${ports.www}/api/v2`;

  async function api<T>(apiPath: string): Promise<T> {
    const { status, body } = await getJson(`${base()}/${apiPath.replace(/^\//, "")}`);
    if (status !== 200) throw new Error(`GET ${apiPath}: HTTP ${status}: ${JSON.stringify(body)}`);
    return body as T;
  }

  async function control(apiPath: string, method: string, params: Record<string, unknown> = {}) {
    const res = await fetch(`${base()}/${apiPath.replace(/^\//, "")}`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ jsonrpc: "2.0", method, params, id: 1 }),
    });
    const text = await res.text();
    let answer: { result?: unknown; error?: { message?: string } };
    try {
      answer = JSON.parse(text) as typeof answer;
    } catch {
      throw new Error(`POST ${apiPath} ${method}: HTTP ${res.status}: ${text}`);
    }
    if (answer.error) {
      throw new Error(`POST ${apiPath} ${method}: ${answer.error.message ?? text}`);
    }
    return answer.result;
  }

  async function until<T>(what: string, timeoutMs: number, probe: () => Promise<T | null>) {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const value = await probe();
      if (value !== null) return value;
      if (Date.now() > deadline) {
        throw new Error(
          `timed out after ${timeoutMs} ms waiting for ${what}; master log:\n${masterLog().slice(-6000)}`,
        );
      }
      await sleep(100);
    }
  }

  const builds = async (brid: number): Promise<BuildJson[]> =>
    (await api<{ builds: BuildJson[] }>(`builds?buildrequestid=${brid}&order=buildid`)).builds;

  const logPath = (buildId: number, step: number, slug: string): string =>
    `builds/${buildId}/steps/${step}/logs/${encodeURIComponent(slug)}`;

  async function rawLog(buildId: number, step: number, slug: string): Promise<string> {
    const res = await fetch(`${base()}/${logPath(buildId, step, slug)}/raw`);
    const text = await res.text();
    if (res.status !== 200)
      throw new Error(`log ${slug} of step ${step}: HTTP ${res.status}: ${text}`);
    return text;
  }

  return {
    dir,
    get workerPort() {
      return ports.worker;
    },
    get wwwUrl() {
      return `http://127.0.0.1:${ports.www}`;
    },
    get startupMs() {
      return startupMs;
    },
    api,
    control,
    async forceBuild(builder, properties = {}) {
      const result = (await control("forceschedulers/force", "force", {
        builderNames: [builder],
        properties,
      })) as [number, Record<string, number>];
      const [buildsetId, brids] = result;
      const buildrequestId = Object.values(brids)[0];
      if (buildrequestId === undefined) throw new Error(`force ${builder}: no build request`);
      return { buildsetId, buildrequestId };
    },
    builds,
    waitForBuildStart(brid, timeoutMs = 30_000) {
      return until(
        `a build of request ${brid}`,
        timeoutMs,
        async () => (await builds(brid))[0] ?? null,
      );
    },
    async waitForBuild(brid, timeoutMs = 60_000) {
      const request = await until(`build request ${brid} to complete`, timeoutMs, async () => {
        const { buildrequests } = await api<{
          buildrequests: { complete: boolean; results: number }[];
        }>(`buildrequests/${brid}`);
        return buildrequests[0]?.complete ? buildrequests[0] : null;
      });
      return { results: request.results, build: (await builds(brid)).at(-1) ?? null };
    },
    waitForBuildEnd(buildId, timeoutMs = 60_000) {
      return until(`build ${buildId} to end`, timeoutMs, async () => {
        const { builds } = await api<{ builds: BuildJson[] }>(`builds/${buildId}`);
        return builds[0]?.complete ? builds[0] : null;
      });
    },
    async stopBuild(buildId, reason = "stopped by the test") {
      await control(`builds/${buildId}`, "stop", { reason });
    },
    async cancelBuildRequest(brid, reason = "cancelled by the test") {
      await control(`buildrequests/${brid}`, "cancel", { reason });
    },
    async steps(buildId) {
      return (await api<{ steps: StepJson[] }>(`builds/${buildId}/steps`)).steps;
    },
    logText: (buildId, step, slug = "stdio") => rawLog(buildId, step, slug),
    async stepLog(buildId, stepName, slug = "stdio") {
      const { steps } = await api<{ steps: StepJson[] }>(`builds/${buildId}/steps`);
      const step = steps.find((s) => s.name === stepName);
      if (step === undefined) {
        throw new Error(`no step ${stepName} in ${JSON.stringify(steps.map((s) => s.name))}`);
      }
      return rawLog(buildId, step.number, slug);
    },
    async logContent(buildId, step, slug = "stdio") {
      const { logchunks } = await api<{ logchunks: { content: string }[] }>(
        `${logPath(buildId, step, slug)}/contents`,
      );
      return logchunks.map((c) => c.content).join("");
    },
    async workers() {
      return (await api<{ workers: WorkerJson[] }>("workers")).workers;
    },
    waitForWorker(name, connected, timeoutMs = 30_000) {
      return until(`worker ${name} ${connected ? "" : "dis"}connected`, timeoutMs, async () => {
        const w = (await api<{ workers: WorkerJson[] }>("workers")).workers.find(
          (x) => x.name === name,
        );
        return w && w.connected_to.length > 0 === connected ? w : null;
      });
    },
    masterLog,
    masterFile(relPath) {
      const file = path.resolve(dir, relPath);
      if (!file.startsWith(dir + path.sep)) throw new Error(`${relPath} is not inside the master`);
      return fs.readFileSync(file);
    },
    async restart() {
      await proc.stop();
      await start();
    },
    async stop() {
      await proc.stop(0); // its state goes with its directory: no graceful shutdown (~2 s)
      removeDir(dir);
    },
  };
}
