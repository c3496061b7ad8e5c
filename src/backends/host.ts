// The host backend: a build runs on this machine, in a fresh working directory under the
// state directory, each command in its own PID namespace (see src/process/runner.ts).
// The tarball named by chroot_sha1 is unpacked into the directory as the initial
// workspace; for host builds that tarball is the source tree.

import fs from "node:fs";
import type { BuildLog } from "../log/buildlog.js";
import { DEFAULT_PATH } from "../process/environment.js";
import type { ProcessRunner, RunningProcess } from "../process/runner.js";
import type { Backend, RunOptions, StepIO } from "./backend.js";
import { Tree } from "./inroot.js";
import { keptDirectories, sandboxWrap, type HostSandbox } from "./sandbox.js";
import { runToCompletion, removeTree, StepFailed } from "./util.js";

export class HostBackend implements Backend {
  readonly name = "host";
  readonly defaultCwd = ".";

  /**
   * On the host an absolute link names the host's own file, so links are followed only
   * while they stay beneath the workspace (see inroot.ts).
   */
  readonly tree: Tree;

  /**
   * `sandbox`: steps run as an unprivileged user, seeing only their workspace (see
   * sandbox.ts); null: as the builder's own user (a builder that is not root cannot
   * switch users, and is unprivileged itself).
   */
  constructor(
    readonly workspace: string,
    private readonly runner: ProcessRunner,
    private readonly sandbox: HostSandbox | null = null,
  ) {
    this.tree = new Tree(workspace, "beneath");
  }

  async create(tarball: string, io: StepIO): Promise<void> {
    fs.mkdirSync(this.workspace, { recursive: true, mode: 0o755 });
    // GNU tar detects the compression itself, refuses members with "..", and strips a
    // leading "/", so nothing is written outside the workspace.
    await runToCompletion(
      io.track(
        this.runner.start({ argv: ["tar", "-xf", tarball, "-C", this.workspace], log: io.log }),
      ),
      "unpacking the workspace tarball",
    );
    if (this.sandbox) {
      // The build user's to write in; tar ran as root. -h: a link's own owner, never
      // its target's.
      const r = await this.runner.capture({
        argv: ["chown", "-R", "-h", `${this.sandbox.user}:`, "--", this.workspace],
        // chown starts nothing: no PID namespace needed (it would cost a few ms a build).
        isolation: { pid: false },
      });
      if (r.exitCode !== 0) {
        throw new StepFailed(
          `giving the workspace to the build user ${this.sandbox.user} failed: ${r.stderr.trim() || r.error || `exit status ${r.exitCode}`}`,
        );
      }
    }
  }

  async start(): Promise<void> {}

  run(argv: readonly string[], log: BuildLog, opts: RunOptions = {}): RunningProcess {
    const sandbox = this.sandbox;
    const env = {
      PATH: DEFAULT_PATH,
      HOME: this.workspace,
      LANG: "C.UTF-8",
      TMPDIR: "/tmp",
      ...opts.env,
    };
    const keep = sandbox ? keptDirectories(env, this.workspace) : [];
    return this.runner.start({
      argv,
      log,
      ...(sandbox
        ? {
            wrap: sandboxWrap(sandbox, this.workspace, keep),
            isolation: { mount: true },
            logArgv: argv,
          }
        : {}),
      cwd: this.resolve(opts.cwd ?? this.defaultCwd),
      env,
    });
  }

  async copyIn(hostPath: string, relPath: string): Promise<void> {
    await this.tree.copyIn(hostPath, relPath);
  }

  resolve(relPath: string): string {
    return this.tree.resolve(relPath).path;
  }

  async stop(): Promise<void> {}

  async remove(): Promise<void> {
    await removeTree(this.runner, this.workspace);
  }
}
