// Where a build's steps run, and how all of it is removed again. A build type says what
// to run; a backend says where: on this machine in a working directory (host), or inside
// an unpacked chroot (chroot). Every command goes through the one process runner.

import type { BuildLog } from "../log/buildlog.js";
import type { RunningProcess } from "../process/runner.js";
import type { Tree } from "./inroot.js";

export interface RunOptions {
  /** Environment of the command (added to the backend's minimal base environment). */
  readonly env?: Readonly<Record<string, string>>;
  /** Working directory, relative to the backend's workspace root. */
  readonly cwd?: string;
  /** Deny network access to this command (chroot backend: a fresh network namespace). */
  readonly noNetwork?: boolean;
}

/**
 * How a backend's own commands (unpack, mount, unmount) reach the build: their output
 * goes to the build log, and `track` hands each process to the build so that abort()
 * can kill it like any step.
 */
export interface StepIO {
  readonly log: BuildLog;
  track(proc: RunningProcess): RunningProcess;
}

export interface Backend {
  readonly name: string;
  /** Host path of the directory the build's files live in. */
  readonly workspace: string;
  /** Where steps run unless told otherwise, as seen by them ("." = the workspace root). */
  readonly defaultCwd: string;
  /** Unpack the build's image (the tarball named by chroot_sha1). */
  create(tarball: string, io: StepIO): Promise<void>;
  /** Make the environment ready to run commands (mounts, for a chroot). */
  start(io: StepIO): Promise<void>;
  /** Start one command inside; the caller awaits `done` and may `terminate` it. */
  run(argv: readonly string[], log: BuildLog, opts?: RunOptions): RunningProcess;
  /**
   * The unpacked tree (the chroot, or the host workspace). Every file the backend or a
   * build type reads or writes inside it goes through this, so that no link in the tree
   * leads outside it (see inroot.ts). Valid once create() has unpacked it.
   */
  readonly tree: Tree;
  /** Copy a host file into the tree (path relative to its root), replacing what was there. */
  copyIn(hostPath: string, relPath: string): Promise<void>;
  /** Host path of a directory or file inside the tree, resolved without leaving it. */
  resolve(relPath: string): string;
  /**
   * The build is over and its results are copied out: release what only the build
   * needed (a chroot is removed here; a host workspace stays until clean()). Safe to
   * call more than once and after a crash.
   */
  stop(io: StepIO | null): Promise<void>;
  /** clean(): remove everything the backend created. Safe to call more than once. */
  remove(io: StepIO | null): Promise<void>;
}
