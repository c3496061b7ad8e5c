// The builder: the one owner of the state machine IDLE → BUILDING → (ABORTING) → WAITING
// → CLEANING → IDLE. Every transition is in TRANSITIONS (transitions.ts); an illegal one
// is a typed error with the table's message (the reference's wording, which managers may
// match on) and where the builder is and what to do, which the dispatcher turns into
// fault 8002. At ~600 lines it is the largest module on purpose: every phase of the one
// state machine — start, finish, clean, shutdown, recovery — changes the builder's state
// here and nowhere else.
//
// A transition is one synchronous step: the check, the journal write and the change in
// memory happen with no await in between, so no other call can observe or act on a
// half-done transition. Work that must wait (removing files in clean(), fsyncing the
// journal) happens in a phase of its own that the table names: clean() goes WAITING →
// CLEANING (journaled first) → IDLE, and a crash at any instant restarts into a state
// whose promises hold — WAITING still serves every file it lists, because files are only
// deleted after CLEANING is on disk, and a restart in CLEANING finishes the clean.
//
// Every check of build() runs before anything changes: a refused build() leaves the
// running build's id, log and state untouched (the reference overwrote the id and
// truncated the log).

import fs from "node:fs";
import path from "node:path";
import type { Logger } from "pino";
import type { Backend } from "../backends/backend.js";
import type { BuildType } from "../buildtypes/buildtype.js";
import type { BuildTypeRegistry } from "../buildtypes/registry.js";
import { parseBuildArgs } from "../buildtypes/arguments.js";
import { isSafeComponent } from "../protocol/names.js";
import { describeError, illegalState, invalidArgument } from "../errors.js";
import type { FileCache } from "../filecache/store.js";
import { signalRecordedNamespace } from "../process/pidns.js";
import { createScrubber, type Scrubber } from "../log/scrub.js";
import { isStruct, type Struct, type Value } from "../protocol/values.js";
import { BuildLog, LOG_TAIL_BYTES, readLogTail } from "../log/buildlog.js";
import type { BuildRecord, Journal } from "./journal.js";
import { RunningBuild } from "./running-build.js";
import { TRANSITIONS, situation, type Transition } from "./transitions.js";
import type { Drain } from "./drain.js";
import type { SlotLease, Slots } from "../protocol/slots.js";
import type { BuildGate } from "../protocol/gate.js";
import type { StatusSnapshot } from "../protocol/status.js";
import {
  BuildStatus,
  BuilderStatus,
  type BuildResult,
  type BuilderPhase,
  type BuilderState,
} from "../protocol/states.js";

/** Results whose filemap and dependencies the manager collects (protocol: WAITING). */
const WITH_FILES: readonly BuildResult[] = [
  BuildStatus.OK,
  BuildStatus.PACKAGEFAIL,
  BuildStatus.DEPFAIL,
];

/**
 * Every string in a value through the build's scrubber: the journal keeps what the build
 * log may show, never more (a declared secret inside a step's command line included).
 */
function scrubValues<T extends Value>(value: T, scrubber: Scrubber): T {
  const walk = (v: Value): Value => {
    if (typeof v === "string") return scrubber.scrub(v);
    if (Array.isArray(v)) return v.map(walk);
    if (isStruct(v)) {
      return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, walk(x)]));
    }
    return v;
  };
  return walk(value) as T;
}

export type BackendFactory = (kind: "host" | "chroot", workspace: string) => Backend;

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
  /** The operator's drain flag (journaled): build() is refused while it is set. */
  readonly drain?: Drain;
  /**
   * The machine's build slots, shared with the Buildbot worker: a build holds one from
   * build() until its processes have ended, and build() is refused when none is free.
   */
  readonly slots?: Slots;
}

interface Current {
  /** The journal's record: as started, then as finished (status() reads it, not the DB). */
  record: BuildRecord;
  log: BuildLog | null;
  run: RunningBuild | null;
  extraStatus: Struct;
  scrubber: Scrubber;
  finished: Promise<void> | null;
  /** Its build slot, given back when the build ends (finish()). */
  slot: SlotLease | null;
}

export type BuildReply = [string, string];

export class Builder {
  private phase: BuilderPhase = BuilderStatus.IDLE;
  private current: Current | null = null;
  /** The clean() in progress (CLEANING), which a second clean() joins. */
  private cleaning: Promise<string> | null = null;
  /** Why the last attempt to finish a clean failed (CLEANING, nothing in progress). */
  private cleanFailure: string | null = null;
  /** Set when the builder stops taking builds (shutdown): the reason build() gives. */
  private refusing: string | null = null;

  constructor(private readonly deps: BuilderDeps) {}

  get logPath(): string {
    return path.join(this.deps.statedir, "buildlog");
  }

  /** The state as the protocol names it (CLEANING is still WAITING on the wire). */
  get state(): BuilderState {
    return this.phase === "CLEANING" ? BuilderStatus.WAITING : this.phase;
  }

  /** Path of the build log while one exists (BUILDING through WAITING). */
  buildLogPath(): string | null {
    if (this.phase === BuilderStatus.IDLE || this.phase === "CLEANING") return null;
    return fs.existsSync(this.logPath) ? this.logPath : null;
  }

  private workspaceOf(seq: number): string {
    return path.join(this.deps.statedir, "builds", String(seq));
  }

  /** Throws the transition's refusal unless it is allowed from the current phase. */
  private check(t: Transition): void {
    const spec = TRANSITIONS[t];
    if (!(spec.from as readonly BuilderPhase[]).includes(this.phase)) {
      const cur = this.current;
      throw illegalState(
        `${spec.refusal}: ${situation(t, this.phase, cur?.record ?? null, this.cleanFailure)}`,
      );
    }
  }

  private transition(t: Transition): void {
    this.check(t);
    this.phase = TRANSITIONS[t].to;
  }

  status(): StatusSnapshot {
    const cur = this.current;
    // A plain literal: status() is polled constantly, and a spread here went through the
    // runtime on every call (bench/rpc.ts).
    if (this.phase === BuilderStatus.IDLE || !cur) {
      return { state: this.state, version: this.deps.version, build: null };
    }
    const base = { state: this.state, version: this.deps.version };
    const rec = cur.record;
    const extra = cur.extraStatus;
    switch (this.phase) {
      case BuilderStatus.BUILDING:
        return {
          ...base,
          build: {
            id: rec.buildId,
            extra,
            logtail: cur.log?.tail() ?? readLogTail(this.logPath, LOG_TAIL_BYTES),
          },
        };
      case BuilderStatus.ABORTING:
        return { ...base, build: { id: rec.buildId, extra } };
      case BuilderStatus.WAITING: {
        const withFiles = rec.buildStatus !== null && WITH_FILES.includes(rec.buildStatus);
        return {
          ...base,
          build: {
            id: rec.buildId,
            extra,
            result: rec.buildStatus,
            ...(withFiles ? { filemap: { ...rec.results }, dependencies: rec.dependencies } : {}),
          },
        };
      }
      case "CLEANING":
        // Its files are being removed: no filemap to fetch any more.
        return {
          ...base,
          build: { id: rec.buildId, extra, result: rec.buildStatus, cleaning: true },
        };
    }
  }

  /**
   * Stop taking builds (shutdown): build() is refused with `reason` from now on. The
   * running build, if any, goes on.
   */
  stopAccepting(reason: string): void {
    this.refusing = reason;
  }

  async build(
    buildId: string,
    typeName: string,
    chrootSha1: string,
    filemap: Readonly<Record<string, string>>,
    args: Struct,
  ): Promise<BuildReply> {
    const reply = this.startBuild(buildId, typeName, chrootSha1, filemap, args);
    if (reply[0] === BuilderStatus.BUILDING) {
      // The manager may forget a job we said we took: make that promise survive a power
      // cut before saying it (off the event loop; the build already runs meanwhile).
      await this.syncJournal();
    }
    return reply;
  }

  /** Every check, then the build's start, in one synchronous step. */
  private startBuild(
    buildId: string,
    typeName: string,
    chrootSha1: string,
    filemap: Readonly<Record<string, string>>,
    args: Struct,
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
      if (!cache.has(sha1)) return [BuilderStatus.UNKNOWNSUM, `FILESUM -> ${sha1}`];
      files[name] = sha1;
    }
    if (buildId === "") throw invalidArgument("build_id must not be empty");
    this.check("start");
    if (this.refusing !== null) {
      throw illegalState(`Builder is not accepting builds: ${this.refusing}`);
    }
    this.deps.drain?.refuseIfDraining();
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
    const scrubber = createScrubber([...type.secrets(parsed), ...gate.secrets]);

    // Every check passed: from here on the build exists. The journal first: if recording
    // it fails, nothing has changed and the call fails; once it is recorded, any failure
    // ends the build as BUILDERFAIL (WAITING), never a builder stuck in BUILDING.
    const backendKind = type.backendFor(parsed);
    const extraStatus = scrubValues({ ...gate.extraStatus }, scrubber);
    // The last check, because it is the only one that takes something: a slot.
    const slot = this.takeSlot(buildId);
    let seq: number;
    try {
      seq = journal.begin({
        buildId,
        buildType: typeName,
        backend: backendKind,
        chrootSha1,
        filemap: files,
        args: scrubValues(type.journalArgs(args), scrubber),
      });
    } catch (err) {
      slot?.release();
      throw err;
    }
    this.transition("start");
    const cur: Current = {
      record: journal.get(seq)!,
      log: null,
      run: null,
      extraStatus,
      scrubber,
      finished: null,
      slot,
    };
    this.current = cur;
    try {
      cur.log = BuildLog.create(this.logPath, { maxBytes: this.deps.limits.logMaxBytes, scrubber });
      if (typeof args["build_url"] === "string") cur.log.write(`${args["build_url"]}\n`);
      for (const line of gate.logLines) cur.log.write(`${line}\n`);
      cache.hold(`build:${seq}`, [chrootSha1, ...Object.values(files)]);
      journal.setExtraStatus(seq, cur.extraStatus);
      cur.finished = this.runBuild(cur, type, parsed, backendKind, files, gate.env, chrootSha1)
        .catch((err: unknown) => this.machineryFailed(cur, err))
        .finally(() => this.syncJournal());
    } catch (err) {
      this.machineryFailed(cur, err);
    }
    this.deps.logger.info({ buildId, type: typeName, seq }, "build started");
    return [BuilderStatus.BUILDING, buildId];
  }

  /** A slot for the build, or the refusal that says who holds them all. */
  private takeSlot(buildId: string): SlotLease | null {
    const slots = this.deps.slots;
    if (slots === undefined) return null;
    const lease = slots.tryAcquire({ kind: "launchpad", label: buildId });
    if (lease === null) {
      throw illegalState(
        `Builder is full: ${slots.describeFull()}; send the build to another builder or try again when one finishes`,
      );
    }
    return lease;
  }

  /** Journal.sync(), logged rather than thrown: the commit itself already happened. */
  private async syncJournal(): Promise<void> {
    try {
      await this.deps.journal.sync();
    } catch (err) {
      this.deps.logger.error({ err }, "could not flush the journal to disk");
    }
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
        cur.extraStatus = { ...cur.extraStatus, ...scrubValues(extra, cur.scrubber) };
        journal.setExtraStatus(seq, cur.extraStatus);
      },
      onProcess: (proc) => {
        void proc.namespace.then((ns) => journal.setPidNamespace(seq, ns));
      },
    });
    cur.run = run;
    const outcome = await run.execute();
    let status = outcome.status;

    const results: Record<string, string> = {};
    const created: string[] = [];
    if (WITH_FILES.includes(status) && outcome.results.length > 0) {
      try {
        for (const file of outcome.results) {
          // Held from the moment it is stored: a concurrent ensurepresent() that makes
          // room in the cache can never evict a result the manager is about to be given.
          const stored = await cache.storeFile(file.path, `results:${seq}`);
          results[file.name] = stored.sha1;
          if (stored.added) created.push(stored.sha1);
        }
      } catch (err) {
        // Storing into our own cache failed (disk full, budget): the builder's failure.
        log.write(`[buildd] Failed to gather results: ${describeError(err)}\n`);
        status = BuildStatus.BUILDERFAIL;
      }
    }
    if (!(await this.stopBackend(backend, log)) && status === BuildStatus.OK) {
      status = BuildStatus.BUILDERFAIL;
    }
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
    if (
      this.current === cur &&
      (this.phase === BuilderStatus.BUILDING || this.phase === BuilderStatus.ABORTING)
    ) {
      this.finish(cur, BuildStatus.BUILDERFAIL, "", {}, []);
    }
  }

  /** Results a build added to the cache and nobody else holds: removed. */
  private dropCreated(seq: number, created: readonly string[]): void {
    const { cache } = this.deps;
    cache.release(`results:${seq}`);
    for (const sha1 of created) if (!cache.isHeld(sha1)) cache.remove(sha1);
  }

  /** BUILDING/ABORTING → WAITING with the result: one synchronous step. */
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
    if (this.phase === BuilderStatus.ABORTING && status !== BuildStatus.BUILDERFAIL) {
      status = BuildStatus.ABORTED;
    }
    this.check("finish");
    if (!WITH_FILES.includes(status)) {
      this.dropCreated(seq, created);
      results = {};
      created = [];
    }
    cur.log?.write(`[buildd] build finished: ${status}\n`);
    cur.log?.close();
    cur.log = null;
    this.deps.journal.finish(seq, { status, dependencies, results, created });
    this.transition("finish");
    cur.record = this.deps.journal.get(seq) ?? cur.record;
    this.deps.cache.release(`build:${seq}`);
    cur.run = null;
    // Its processes have ended (the steps, then the backend's stop): the machine is free
    // for the next build of either kind, though this one's files wait for clean().
    cur.slot?.release();
    cur.slot = null;
    this.deps.logger.info({ buildId: cur.record.buildId, status }, "build finished");
  }

  abort(): string {
    if (this.phase === BuilderStatus.ABORTING) return BuilderStatus.ABORTING;
    this.transition("abort");
    this.deps.journal.setState(BuilderStatus.ABORTING, this.current?.record.seq ?? null);
    void this.current?.run?.abort();
    return BuilderStatus.ABORTING;
  }

  /**
   * WAITING → CLEANING → IDLE. The CLEANING phase is journaled (and flushed) before any
   * file is removed; a second clean() meanwhile waits for the same one.
   */
  clean(): Promise<string> {
    if (this.cleaning) return this.cleaning;
    if (this.phase !== "CLEANING") {
      this.transition("clean");
      this.deps.journal.beginClean(this.current!.record.seq);
    }
    // A clean that failed before is retried from where it stopped (its steps repeat safely).
    this.cleanFailure = null;
    const rec = this.current!.record;
    this.cleaning = this.finishClean(rec).finally(() => (this.cleaning = null));
    return this.cleaning;
  }

  private async finishClean(rec: BuildRecord): Promise<string> {
    try {
      await this.deps.journal.sync();
      this.dropCreated(rec.seq, rec.created);
      fs.rmSync(this.logPath, { force: true });
      await this.backendOf(rec).remove(null);
    } catch (err) {
      this.cleanFailure = describeError(err);
      this.deps.logger.error({ err, buildId: rec.buildId }, "clean failed");
      throw illegalState(
        `Cleaning up after build ${JSON.stringify(rec.buildId)} failed: ${this.cleanFailure}; call clean() again`,
      );
    }
    this.deps.journal.cleaned(rec.seq);
    this.transition("cleaned");
    this.current = null;
    this.deps.logger.info({ buildId: rec.buildId }, "cleaned");
    return BuilderStatus.IDLE;
  }

  /** Wait for the running build to reach WAITING, and a clean in progress to end. */
  async settled(): Promise<void> {
    await this.current?.finished;
    await this.cleaning?.catch(() => undefined);
  }

  /**
   * Shutdown, once the grace is over: stop a build that still runs as BUILDERFAIL with
   * `why` in its log, and resolve once nothing of it runs any more (bounded by the abort
   * timeout), so that the journal can be closed.
   */
  async stopForShutdown(why: string): Promise<void> {
    const cur = this.current;
    if (
      cur?.run &&
      (this.phase === BuilderStatus.BUILDING || this.phase === BuilderStatus.ABORTING)
    ) {
      this.deps.logger.warn({ buildId: cur.record.buildId }, why);
      await cur.run.abort(BuildStatus.BUILDERFAIL, why);
    }
    await this.settled();
  }

  /**
   * At start-up: take the state back from the journal. A WAITING build is served again
   * as it was; a clean that was interrupted is finished; a build that was running when
   * the builder died is BUILDERFAIL, its leftover processes killed and its environment
   * cleaned.
   */
  async recover(): Promise<void> {
    const { journal, logger, cache } = this.deps;
    const { state, current } = journal.state();
    if (state === BuilderStatus.IDLE || !current) {
      this.phase = BuilderStatus.IDLE;
      return;
    }
    this.current = {
      record: current,
      log: null,
      run: null,
      extraStatus: current.extraStatus,
      scrubber: createScrubber([]),
      finished: null,
      // recover() runs before either coordinator is served: nothing to share with yet.
      slot: null,
    };
    this.phase = state;
    if (state === BuilderStatus.WAITING) {
      const missing = Object.entries(current.results).filter(([, sha1]) => !cache.has(sha1));
      if (missing.length > 0) {
        logger.error(
          { buildId: current.buildId, missing: missing.map(([name]) => name) },
          "a waiting build's result files are missing from the cache",
        );
      }
      logger.info(
        { buildId: current.buildId, status: current.buildStatus },
        "recovered a waiting build",
      );
      return;
    }
    if (state === "CLEANING") {
      logger.info({ buildId: current.buildId }, "finishing a clean that was interrupted");
      // A failure is kept (CLEANING, reported by build() and retried by clean()).
      await this.clean().catch(() => undefined);
      return;
    }
    const recorded = current.pidNamespace;
    if (recorded && "legacy" in recorded) {
      // Only an inode number, which may belong to another namespace by now: not killed.
      logger.warn(
        { namespace: recorded.ns },
        "the interrupted build's processes were recorded by an older buildd and cannot be told from others; not killed",
      );
    } else if (recorded) {
      const killed = signalRecordedNamespace(recorded, "SIGKILL");
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
    // Results it may have stored before dying are not listed anywhere: let them go.
    cache.release(`results:${current.seq}`);
    this.finish(cur, BuildStatus.BUILDERFAIL, "", {}, []);
    await this.syncJournal();
    logger.warn({ buildId: current.buildId }, "recovered an interrupted build as BUILDERFAIL");
  }
}
