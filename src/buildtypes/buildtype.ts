// A build type turns a build's arguments into steps and the steps' exit codes into a
// result. It never talks XML-RPC and never touches the cache: it gets a context with
// the backend to run in, the build log and the input files, and returns an outcome.

import type { Backend, RunOptions } from "../backends/backend.js";
import type { BuildLog } from "../log/buildlog.js";
import type { BuildResult } from "../protocol/states.js";
import type { Struct, Value } from "../protocol/values.js";

export interface StepResult {
  readonly exitCode: number | null;
  readonly signal: NodeJS.Signals | null;
  /** The step was stopped by the builder (abort, timeout, log size); not a real exit. */
  readonly stopped: boolean;
}

export interface BuildContext {
  readonly buildId: string;
  readonly arch: string;
  readonly log: BuildLog;
  readonly backend: Backend;
  /** Input files from the filemap: name → host path in the cache. */
  readonly files: Readonly<Record<string, string>>;
  /** Host path of the tarball named by chroot_sha1. */
  readonly chrootTarball: string;
  /** Environment every step gets on top of the backend's base (capabilities, …). */
  readonly env: Readonly<Record<string, string>>;
  /** Run one step: logged, killable by abort, its name reported in status(). */
  runStep(name: string, argv: readonly string[], opts?: RunOptions): Promise<StepResult>;
  /** Keys added to status() while the build runs and once it waits. */
  setExtraStatus(key: string, value: Value): void;
  /** True once abort() was called or a limit stopped the build. */
  readonly stopping: boolean;
}

export interface ResultFile {
  /** Name in the filemap (a safe relative path). */
  readonly name: string;
  /** Host path to copy into the cache. */
  readonly path: string;
}

export interface BuildOutcome {
  readonly status: BuildResult;
  readonly dependencies?: string;
  readonly results: readonly ResultFile[];
}

/**
 * One key a build type's `args` may carry. Every key a manager may send is declared,
 * so that a typo (`artifact`, `timout`) is refused instead of silently doing nothing.
 */
export interface ArgSpec {
  readonly name: string;
  /**
   * "used": the build acts on it. "ignored": accepted because a manager sends it (an
   * unchanged Launchpad manager must keep working), but it changes nothing here; `doc`
   * says why.
   */
  readonly use: "used" | "ignored";
  /** One line for docs/buildtypes.md: what it does, or why it is ignored. */
  readonly doc: string;
}

/** One file of the build's filemap, as parseArgs sees it: already in the cache. */
export interface InputFile {
  readonly sha1: string;
  /** Host path of the cached file (read-only: it is the cache's entry itself). */
  readonly path: string;
}

export interface BuildType<Args = unknown> {
  readonly name: string;
  /** The keys of `args` this type takes, besides those every build takes (arguments.ts). */
  readonly arguments: readonly ArgSpec[];
  /** Which backend runs it, given its (validated) arguments. */
  backendFor(args: Args): "host" | "chroot";
  /**
   * Validate and narrow the arguments before anything changes; throw an
   * invalidArgument error saying what is wrong. Unknown keys were refused already
   * (parseBuildArgs in arguments.ts); the filemap's files may be read to check them.
   */
  parseArgs(args: Struct, filemap: Readonly<Record<string, InputFile>>): Args;
  /** Time limit for the whole build, if the arguments set one. */
  timeoutMs?(args: Args): number | null;
  /** Strings in the arguments that must never appear in logs or the journal. */
  secrets(args: Args): string[];
  /** The arguments as the journal stores them (secrets removed). */
  journalArgs(args: Struct): Struct;
  /** Run the build. Throwing means our machinery failed (BUILDERFAIL). */
  run(ctx: BuildContext, args: Args): Promise<BuildOutcome>;
}
