// One build while it runs: unpack and start the backend, run the build type's steps,
// and stop it all on abort, timeout or a runaway log.
//
// The first failure wins: whatever stops the build first (an abort, the timeout, the log
// limit) decides the result, and what happens afterwards cannot overwrite it, except
// that an abort which cannot kill every process is reported as BUILDERFAIL (the builder
// can no longer vouch for the machine).

import type { Logger } from "pino";
import type { Backend, RunOptions, StepIO } from "../backends/backend.js";
import type { BuildContext, BuildOutcome, BuildType, StepResult } from "../buildtypes/buildtype.js";
import { describeError } from "../errors.js";
import type { RunningProcess } from "../process/runner.js";
import type { Struct, Value } from "../protocol/values.js";
import type { BuildLog } from "../log/buildlog.js";
import { BuildStatus, type BuildResult } from "../protocol/states.js";

export interface RunningBuildParams {
  readonly buildId: string;
  readonly arch: string;
  readonly type: BuildType;
  readonly args: unknown;
  readonly backend: Backend;
  readonly log: BuildLog;
  readonly files: Readonly<Record<string, string>>;
  readonly chrootTarball: string;
  readonly env: Readonly<Record<string, string>>;
  readonly killGraceMs: number;
  readonly abortTimeoutMs: number;
  readonly logger: Logger;
  /** Called whenever the extra status changes (the builder journals it). */
  readonly onExtraStatus: (extra: Struct) => void;
  /** Called with each process as it starts (the builder journals its PID namespace). */
  readonly onProcess?: (proc: RunningProcess) => void;
}

export class RunningBuild {
  readonly extraStatus: Struct = {};
  private proc: RunningProcess | null = null;
  private stopped: { status: BuildResult; reason: string; at: number } | null = null;
  private killFailed = false;
  private readonly io: StepIO;
  /** Resolves when an abort gave up on processes that would not die: stop waiting for them. */
  private abandon: () => void = () => undefined;
  private readonly abandoned = new Promise<void>((resolve) => (this.abandon = resolve));

  constructor(private readonly p: RunningBuildParams) {
    this.io = { log: p.log, track: (proc) => this.track(proc) };
  }

  get stopping(): boolean {
    return this.stopped !== null;
  }

  /** Runs the build to its end; never throws. */
  async execute(): Promise<BuildOutcome> {
    const { p } = this;
    const timeoutMs = p.type.timeoutMs?.(p.args) ?? null;
    const timer =
      timeoutMs === null
        ? null
        : setTimeout(
            () =>
              void this.stop(
                BuildStatus.PACKAGEFAIL,
                `the build timed out after ${timeoutMs / 1000} seconds`,
              ),
            timeoutMs,
          );
    p.log.onExceeded(
      () => void this.stop(BuildStatus.PACKAGEFAIL, "the build log exceeded its maximum size"),
    );
    let outcome: BuildOutcome;
    try {
      const phases = this.runPhases();
      // Abandoned (processes that would not die): the phases may still settle, or fail,
      // long after; nobody waits for them then, and that must not crash the builder.
      phases.catch(() => undefined);
      outcome = await Promise.race([
        phases,
        this.abandoned.then((): BuildOutcome => ({ status: BuildStatus.BUILDERFAIL, results: [] })),
      ]);
    } catch (err) {
      p.logger.error({ err }, "build machinery failed");
      p.log.write(`[buildd] builder error: ${describeError(err)}\n`);
      outcome = { status: BuildStatus.BUILDERFAIL, results: [] };
    } finally {
      if (timer) clearTimeout(timer);
    }
    if (this.killFailed) return { status: BuildStatus.BUILDERFAIL, results: [] };
    if (this.stopped) {
      const keep = this.stopped.status !== BuildStatus.ABORTED;
      return { status: this.stopped.status, results: keep ? outcome.results : [] };
    }
    return outcome;
  }

  private async runPhases(): Promise<BuildOutcome> {
    const { p } = this;
    try {
      this.setStep("unpack");
      await p.backend.create(p.chrootTarball, this.io);
      if (this.stopping) return { status: BuildStatus.ABORTED, results: [] };
      this.setStep("mount");
      await p.backend.start(this.io);
    } catch (err) {
      p.log.write(`[buildd] setting up the build environment failed: ${describeError(err)}\n`);
      return { status: BuildStatus.CHROOTFAIL, results: [] };
    }
    if (this.stopping) return { status: BuildStatus.ABORTED, results: [] };
    return p.type.run(this.context(), p.args);
  }

  private context(): BuildContext {
    const { p } = this;
    // eslint-disable-next-line @typescript-eslint/no-this-alias
    const self = this;
    return {
      buildId: p.buildId,
      arch: p.arch,
      log: p.log,
      backend: p.backend,
      files: p.files,
      chrootTarball: p.chrootTarball,
      env: p.env,
      runStep: (name, argv, opts) => this.runStep(name, argv, opts),
      setExtraStatus: (key, value) => this.setExtra(key, value),
      get stopping() {
        return self.stopping;
      },
    };
  }

  private setStep(name: string): void {
    this.setExtra("build_step", name);
  }

  private setExtra(key: string, value: Value): void {
    this.extraStatus[key] = value;
    this.p.onExtraStatus({ ...this.extraStatus });
  }

  private track(proc: RunningProcess): RunningProcess {
    this.proc = proc;
    this.p.onProcess?.(proc);
    void proc.done.then(() => {
      if (this.proc === proc) this.proc = null;
    });
    // Started after a stop was requested (e.g. between two steps): kill it at once.
    if (this.stopping) void proc.terminate(this.p.killGraceMs);
    return proc;
  }

  private async runStep(
    name: string,
    argv: readonly string[],
    opts?: RunOptions,
  ): Promise<StepResult> {
    if (this.stopping) return { exitCode: null, signal: null, stopped: true };
    this.setStep(name);
    const proc = this.track(this.p.backend.run(argv, this.p.log, opts));
    const r = await proc.done;
    const stopped = this.stopped;
    if (stopped) {
      // How a stopped step ended, and how soon: tells our kill ladder (TERM, the grace,
      // then KILL) from a process that ended by itself or was killed from outside.
      const how = r.signal ? `was killed by ${r.signal}` : `exited with status ${r.exitCode}`;
      const ms = Math.round(performance.now() - stopped.at);
      this.p.log.write(`[buildd] step "${name}" ${how}, ${ms} ms after the stop\n`);
      this.p.logger.info(
        { buildId: this.p.buildId, step: name, exitCode: r.exitCode, signal: r.signal, ms },
        "stopped step ended",
      );
    }
    return { ...r, stopped: stopped !== null };
  }

  /** Stop the build with a result; the first call wins. Kills the running process. */
  async stop(status: BuildResult, reason: string): Promise<void> {
    if (this.stopped) return;
    this.stopped = { status, reason, at: performance.now() };
    this.p.log.write(`\n[buildd] ${reason}\n`);
    this.p.logger.info({ buildId: this.p.buildId, reason }, "stopping build");
    const proc = this.proc;
    if (proc) await proc.terminate(this.p.killGraceMs);
  }

  /**
   * abort(): stop with ABORTED (or, at shutdown, BUILDERFAIL with its reason) and make
   * sure every process died. If anything is still alive at the abort timeout, the result
   * is BUILDERFAIL and the log names the PIDs.
   */
  async abort(
    status: BuildResult = BuildStatus.ABORTED,
    reason = "ABORTING: killing every process of the build",
  ): Promise<void> {
    const proc = this.proc;
    await this.stop(status, reason);
    if (!proc) return;
    const deadline = Date.now() + this.p.abortTimeoutMs;
    let survivors = (await proc.terminate(this.p.killGraceMs)).survivors;
    while (survivors.length > 0 && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 500));
      survivors = proc.killRemaining(survivors);
    }
    if (survivors.length > 0) {
      this.killFailed = true;
      this.p.log.write(
        `[buildd] ABORTING: failed to kill all processes; still alive: ${survivors.join(", ")}\n`,
      );
      this.p.logger.error(
        { buildId: this.p.buildId, survivors },
        "abort could not kill every process",
      );
      this.abandon();
    }
  }
}
