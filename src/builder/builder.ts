// The builder: the one owner of the state machine IDLE → BUILDING → (ABORTING) → WAITING
// → IDLE. Every transition is in TRANSITIONS; an illegal one is a typed error with the
// table's message, which the dispatcher turns into fault 8002.
//
// Every check of build() runs before anything changes: a refused build() leaves the
// running build's id, log and state untouched (the reference overwrote the id and
// truncated the log). State changes are journaled in the same step as they happen in
// memory, so a restart finds what the manager was last told.

import fs from "node:fs";
import path from "node:path";
import type { Logger } from "pino";
import type { Backend } from "../backends/backend.js";
import type { BuildOutcome, BuildType } from "../buildtypes/buildtype.js";
import type { BuildTypeRegistry } from "../buildtypes/registry.js";
import { parseBuildArgs } from "../buildtypes/arguments.js";
import { isSafeComponent } from "../buildtypes/names.js";
import { describeError, illegalState, invalidArgument } from "../errors.js";
import type { FileCache } from "../filecache/store.js";
import { signalNamespace } from "../process/pidns.js";
import { createScrubber, scrubText } from "../process/scrub.js";
import type { XmlRpcStruct, XmlRpcValue } from "../rpc/codec.js";
import { BuildLog, readLogTail } from "./buildlog.js";
import type { BuildRecord, Journal } from "./journal.js";
import { RunningBuild } from "./running-build.js";
import { BuildStatus, BuilderStatus, type BuildResult, type BuilderState } from "./states.js";

const TRANSITIONS = {
  start: {
    from: [BuilderStatus.IDLE],
    to: BuilderStatus.BUILDING,
    refusal: "Builder is not IDLE when asked to start building",
  },
  abort: {
    from: [BuilderStatus.BUILDING],
    to: BuilderStatus.ABORTING,
    refusal: "Builder is not BUILDING when asked to abort",
  },
  finish: {
    from: [BuilderStatus.BUILDING, BuilderStatus.ABORTING],
    to: BuilderStatus.WAITING,
    refusal: "Builder is not BUILDING or ABORTING when a build finished",
  },
  clean: {
    from: [BuilderStatus.WAITING],
    to: BuilderStatus.IDLE,
    refusal: "Builder is not WAITING when asked to clean",
  },
} as const satisfies Record<
  string,
  { from: readonly BuilderState[]; to: BuilderState; refusal: string }
>;
type Transition = keyof typeof TRANSITIONS;

/** Results whose filemap and dependencies the manager collects (protocol: WAITING). */
const WITH_FILES: readonly BuildResult[] = [
  BuildStatus.OK,
  BuildStatus.PACKAGEFAIL,
  BuildStatus.DEPFAIL,
];

/** Credentials in any string of the arguments (e.g. archives lines) never reach the journal. */
function scrubValues(value: XmlRpcStruct): XmlRpcStruct {
  const walk = (v: XmlRpcValue): XmlRpcValue => {
    if (typeof v === "string") return scrubText(v);
    if (Array.isArray(v)) return v.map(walk);
    if (v !== null && typeof v === "object" && !Buffer.isBuffer(v) && !(v instanceof Date)) {
      return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, walk(x)]));
    }
    return v;
  };
  return walk(value) as XmlRpcStruct;
}

export type BackendFactory = (kind: "host" | "chroot", workspace: string) => Backend;

/** A check a build must pass before it starts (capabilities plug in here). */
export type BuildGate = (args: XmlRpcStruct) => {
  env: Record<string, string>;
  logLines: string[];
  extraStatus: XmlRpcStruct;
  /** Values to scrub from the build log (e.g. a capability's password). */
  secrets: string[];
};

export interface BuilderDeps {
  readonly statedir: string;
  readonly arch: string;
  readonly version: string;
  readonly journal: Journal;
  readonly cache: FileCache;
  readonly registry: BuildTypeRegistry;
  readonly backends: BackendFactory;
  readonly logger: Logger;
  readonly limits: { killGraceMs: number; abortTimeoutMs: number; logMaxBytes: number };
  readonly gate?: BuildGate;
}

interface Current {
  /** The journal's record: as started, then as finished (status() reads it, not the DB). */
  record: BuildRecord;
  log: BuildLog | null;
  run: RunningBuild | null;
  extraStatus: XmlRpcStruct;
  finished: Promise<void> | null;
}

export type BuildReply = [string, string];

export class Builder {
  private state: BuilderState;
  private current: Current | null = null;

  constructor(private readonly deps: BuilderDeps) {
    this.state = BuilderStatus.IDLE;
  }

  get logPath(): string {
    return path.join(this.deps.statedir, "buildlog");
  }

  /** Path of the build log while one exists (BUILDING through WAITING). */
  buildLogPath(): string | null {
    return this.state === BuilderStatus.IDLE || !fs.existsSync(this.logPath) ? null : this.logPath;
  }

  private workspaceOf(seq: number): string {
    return path.join(this.deps.statedir, "builds", String(seq));
  }

  /** Throws the transition's refusal unless it is allowed from the current state. */
  private check(t: Transition): void {
    const spec = TRANSITIONS[t];
    if (!(spec.from as readonly BuilderState[]).includes(this.state)) {
      throw illegalState(spec.refusal);
    }
  }

  private transition(t: Transition): void {
    this.check(t);
    this.state = TRANSITIONS[t].to;
  }

  status(): XmlRpcStruct {
    const s: XmlRpcStruct = { builder_status: this.state, builder_version: this.deps.version };
    const cur = this.current;
    if (this.state === BuilderStatus.IDLE || !cur) return s;
    // Build-type keys first, so they can never replace the protocol's own keys.
    const out: XmlRpcStruct = { ...cur.extraStatus, ...s, build_id: cur.record.buildId };
    if (this.state === BuilderStatus.BUILDING) {
      out["logtail"] = readLogTail(this.logPath, 2048);
    } else if (this.state === BuilderStatus.WAITING) {
      const rec = cur.record;
      out["build_status"] = rec.buildStatus;
      if (rec.buildStatus !== null && WITH_FILES.includes(rec.buildStatus)) {
        out["filemap"] = { ...rec.results };
        out["dependencies"] = rec.dependencies;
      }
    }
    return out;
  }

  build(
    buildId: string,
    typeName: string,
    chrootSha1: string,
    filemap: XmlRpcStruct,
    args: XmlRpcStruct,
  ): BuildReply {
    const { cache, registry, journal } = this.deps;
    const type = registry.get(typeName);
    if (!type) {
      const names = registry
        .names()
        .map((n) => `'${n}'`)
        .join(", ");
      return [BuilderStatus.UNKNOWNBUILDER, `${typeName} not in [${names}]`];
    }
    if (!cache.has(chrootSha1)) return [BuilderStatus.UNKNOWNSUM, `CHROOTSUM -> ${chrootSha1}`];
    const files: Record<string, string> = {};
    for (const [name, sha1] of Object.entries(filemap)) {
      if (typeof sha1 !== "string")
        throw invalidArgument(`filemap value for ${JSON.stringify(name)} must be a SHA-1 string`);
      if (!cache.has(sha1)) return [BuilderStatus.UNKNOWNSUM, `FILESUM -> ${sha1}`];
      files[name] = sha1;
    }
    if (buildId === "") throw invalidArgument("build_id must not be empty");
    this.check("start");
    if (!isSafeComponent(buildId)) {
      throw invalidArgument(
        `build_id ${JSON.stringify(buildId.slice(0, 80))} is not a safe name (no "/", no control characters, at most 255 bytes)`,
      );
    }
    for (const name of Object.keys(files)) {
      if (!isSafeComponent(name))
        throw invalidArgument(
          `filemap name ${JSON.stringify(name.slice(0, 80))} is not a safe file name`,
        );
    }
    // Unknown keys are refused; the type may read its cached inputs (a .dsc's file list).
    const inputs = Object.fromEntries(
      Object.entries(files).map(([name, sha1]) => [name, { sha1, path: cache.pathOf(sha1) }]),
    );
    const parsed = parseBuildArgs(type, args, inputs);
    const gate = this.deps.gate?.(args) ?? { env: {}, logLines: [], extraStatus: {}, secrets: [] };

    // Every check passed: from here on the build exists. The journal first: if recording
    // it fails, nothing has changed and the call fails; once it is recorded, any failure
    // ends the build as BUILDERFAIL (WAITING), never a builder stuck in BUILDING.
    const backendKind = type.backendFor(parsed);
    const seq = journal.begin({
      buildId,
      buildType: typeName,
      backend: backendKind,
      chrootSha1,
      filemap: files,
      args: scrubValues(type.journalArgs(args)),
    });
    this.transition("start");
    const cur: Current = {
      record: journal.get(seq)!,
      log: null,
      run: null,
      extraStatus: { ...gate.extraStatus },
      finished: null,
    };
    this.current = cur;
    try {
      cur.log = BuildLog.create(this.logPath, {
        maxBytes: this.deps.limits.logMaxBytes,
        scrubber: createScrubber([...type.secrets(parsed), ...gate.secrets]),
      });
      if (typeof args["build_url"] === "string") cur.log.write(`${args["build_url"]}\n`);
      for (const line of gate.logLines) cur.log.write(`${line}\n`);
      cache.hold(`build:${seq}`, [chrootSha1, ...Object.values(files)]);
      journal.setExtraStatus(seq, cur.extraStatus);
      cur.finished = this.runBuild(
        cur,
        type,
        parsed,
        backendKind,
        files,
        gate.env,
        chrootSha1,
      ).catch((err: unknown) => this.machineryFailed(cur, err));
    } catch (err) {
      this.machineryFailed(cur, err);
    }
    this.deps.logger.info({ buildId, type: typeName, seq }, "build started");
    return [BuilderStatus.BUILDING, buildId];
  }

  private async runBuild(
    cur: Current,
    type: BuildType,
    parsed: unknown,
    backendKind: "host" | "chroot",
    files: Record<string, string>,
    env: Record<string, string>,
    chrootSha1: string,
  ): Promise<void> {
    const { cache, journal, logger } = this.deps;
    const seq = cur.record.seq;
    const log = cur.log!;
    const backend = this.deps.backends(backendKind, this.workspaceOf(seq));
    const run = new RunningBuild({
      buildId: cur.record.buildId,
      arch: this.deps.arch,
      type,
      args: parsed,
      backend,
      log,
      files: Object.fromEntries(Object.entries(files).map(([n, s]) => [n, cache.pathOf(s)])),
      chrootTarball: cache.pathOf(chrootSha1),
      env,
      killGraceMs: this.deps.limits.killGraceMs,
      abortTimeoutMs: this.deps.limits.abortTimeoutMs,
      logger,
      onExtraStatus: (extra) => {
        cur.extraStatus = { ...cur.extraStatus, ...extra };
        journal.setExtraStatus(seq, cur.extraStatus);
      },
      onProcess: (proc) => {
        void proc.namespace.then((ns) => journal.setPidNamespace(seq, ns));
      },
    });
    cur.run = run;
    let outcome: BuildOutcome = await run.execute();
    let status = outcome.status;

    const results: Record<string, string> = {};
    const created: string[] = [];
    if (WITH_FILES.includes(status) && outcome.results.length > 0) {
      try {
        for (const file of outcome.results) {
          const stored = await cache.storeFile(file.path);
          results[file.name] = stored.sha1;
          if (stored.added) created.push(stored.sha1);
        }
      } catch (err) {
        log.write(`[buildd] Failed to gather results: ${describeError(err)}\n`);
        if (status === BuildStatus.OK) status = BuildStatus.PACKAGEFAIL;
      }
    }
    if (!(await this.stopBackend(backend, log)) && status === BuildStatus.OK) {
      status = BuildStatus.BUILDERFAIL;
    }
    outcome = { ...outcome, status };
    this.finish(cur, status, outcome.dependencies ?? "", results, created);
  }

  private backendOf(rec: BuildRecord): Backend {
    return this.deps.backends(
      rec.backend === "chroot" ? "chroot" : "host",
      this.workspaceOf(rec.seq),
    );
  }

  /** End-of-build cleanup of the backend; false (and a log line) when it failed. */
  private async stopBackend(backend: Backend, log: BuildLog): Promise<boolean> {
    try {
      await backend.stop({ log, track: (p) => p });
      return true;
    } catch (err) {
      log.write(`[buildd] cleaning up the build environment failed: ${describeError(err)}\n`);
      return false;
    }
  }

  /** Our own machinery threw: log it, and end the build as BUILDERFAIL if it still runs. */
  private machineryFailed(cur: Current, err: unknown): void {
    this.deps.logger.error({ err, buildId: cur.record.buildId }, "build machinery failed");
    cur.log?.write(`[buildd] builder error: ${describeError(err)}\n`);
    if (this.current === cur && this.state !== BuilderStatus.WAITING) {
      this.finish(cur, BuildStatus.BUILDERFAIL, "", {}, []);
    }
  }

  private finish(
    cur: Current,
    status: BuildResult,
    dependencies: string,
    results: Record<string, string>,
    created: string[],
  ): void {
    const seq = cur.record.seq;
    // Aborted after its last step (while results were gathered): still ABORTED, as the
    // manager asked, unless the builder itself failed.
    if (this.state === BuilderStatus.ABORTING && status !== BuildStatus.BUILDERFAIL) {
      status = BuildStatus.ABORTED;
      results = {};
      created.forEach((sha1) => this.deps.cache.remove(sha1));
      created = [];
    }
    cur.log?.write(`[buildd] build finished: ${status}\n`);
    cur.log?.close();
    cur.log = null;
    this.transition("finish");
    this.deps.journal.finish(seq, { status, dependencies, results, created });
    cur.record = this.deps.journal.get(seq) ?? cur.record;
    this.deps.cache.hold(`results:${seq}`, Object.values(results));
    this.deps.cache.release(`build:${seq}`);
    cur.run = null;
    this.deps.logger.info({ buildId: cur.record.buildId, status }, "build finished");
  }

  abort(): string {
    if (this.state === BuilderStatus.ABORTING) return BuilderStatus.ABORTING;
    this.transition("abort");
    this.deps.journal.setState(BuilderStatus.ABORTING, this.current?.record.seq ?? null);
    void this.current?.run?.abort();
    return BuilderStatus.ABORTING;
  }

  async clean(): Promise<string> {
    this.transition("clean");
    const cur = this.current!;
    const seq = cur.record.seq;
    const rec = this.deps.journal.get(seq)!;
    const { cache } = this.deps;
    cache.release(`results:${seq}`);
    for (const sha1 of rec.created) {
      if (!cache.isHeld(sha1)) cache.remove(sha1);
    }
    fs.rmSync(this.logPath, { force: true });
    await this.backendOf(rec).remove(null);
    this.deps.journal.cleaned(seq);
    this.current = null;
    this.deps.logger.info({ buildId: rec.buildId }, "cleaned");
    return BuilderStatus.IDLE;
  }

  /** Wait for the running build to reach WAITING (tests and shutdown). */
  async settled(): Promise<void> {
    await this.current?.finished;
  }

  /**
   * At start-up: take the state back from the journal. A WAITING build is served again
   * as it was; a build that was running when the builder died is BUILDERFAIL, its
   * leftover processes killed and its environment cleaned.
   */
  async recover(): Promise<void> {
    const { journal, logger } = this.deps;
    const { state, current } = journal.state();
    if (state === BuilderStatus.IDLE || !current) {
      this.state = BuilderStatus.IDLE;
      return;
    }
    this.current = {
      record: current,
      log: null,
      run: null,
      extraStatus: current.extraStatus,
      finished: null,
    };
    this.state = state;
    if (state === BuilderStatus.WAITING) {
      logger.info(
        { buildId: current.buildId, status: current.buildStatus },
        "recovered a waiting build",
      );
      return;
    }
    if (current.pidNamespace) {
      const killed = signalNamespace(current.pidNamespace, "SIGKILL");
      if (killed.length > 0)
        logger.warn({ pids: killed }, "killed leftover processes of the interrupted build");
    }
    const log = BuildLog.reopen(this.logPath, {
      maxBytes: Number.MAX_SAFE_INTEGER,
      scrubber: createScrubber([]),
    });
    log.write(
      `\n[buildd] the builder restarted while this build was ${state === BuilderStatus.ABORTING ? "aborting" : "running"}; its processes were killed and the build is marked BUILDERFAIL\n`,
    );
    await this.stopBackend(this.backendOf(current), log);
    const cur = this.current;
    cur.log = log;
    this.finish(cur, BuildStatus.BUILDERFAIL, "", {}, []);
    logger.warn({ buildId: current.buildId }, "recovered an interrupted build as BUILDERFAIL");
  }
}
