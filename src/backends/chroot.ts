// The chroot backend: the tarball named by chroot_sha1 is unpacked into the build's
// directory and every step runs inside it, as root, in its own PID and mount namespace.
//
// Mounts live inside each step's private mount namespace: /proc (of the step's own PID
// namespace), /sys read-only, a minimal /dev on tmpfs with bind-mounted device nodes,
// /dev/pts and /dev/shm are set up by a small sh prologue right before `chroot` is
// exec'd. When the step's last process dies the kernel drops the namespace and every
// mount with it, so no path — success, failure, abort, or the builder itself being
// killed — can leave a mount behind on the host, and removing the build directory can
// never reach into /proc or /dev. (The reference mounts on the host and unmounts in a
// separate step, which leaks mounts whenever that step does not run.)
//
// The unpacked tree is the tarball's to shape, links included: every file we touch in it
// goes through a Tree with chroot semantics (inroot.ts), so /etc/resolv.conf, the copied
// sources and the results are the chroot's even when its /etc is a link to the host's.
// The prologue's mount points are host paths the shell resolves, so they must be real
// directories: a chroot whose /proc, /sys or /dev is a link is refused, at unpacking and
// again before every step (an earlier step may have made one).

import fs from "node:fs";
import path from "node:path";
import type { BuildLog } from "../log/buildlog.js";
import { DEFAULT_PATH } from "../process/environment.js";
import type { ProcessRunner, RunningProcess } from "../process/runner.js";
import type { Backend, RunOptions, StepIO } from "./backend.js";
import { Tree } from "./inroot.js";
import { unpack } from "./unpack.js";
import { removeTree, runToCompletion, StepFailed } from "./util.js";

/** Runs in the step's fresh mount namespace: mount, then become the command in the chroot. */
const PROLOGUE = `set -e
root="$1"; shift
# An earlier step may have replaced a mount point with a link; mount would follow it.
for d in proc sys dev; do
  if [ -L "$root/$d" ] || [ ! -d "$root/$d" ]; then
    echo "buildd: the chroot's /$d is no longer a directory; refusing to mount there" >&2; exit 1
  fi
done
mount -t proc -o nosuid,nodev,noexec proc "$root/proc"
mount -t sysfs -o ro,nosuid,nodev,noexec sysfs "$root/sys"
mount -t tmpfs -o nosuid,mode=0755,size=64k dev "$root/dev"
for d in null zero full random urandom tty; do
  touch "$root/dev/$d"; mount --bind "/dev/$d" "$root/dev/$d"
done
mkdir -p "$root/dev/pts" "$root/dev/shm"
mount -t devpts -o newinstance,ptmxmode=0666,mode=0620,nosuid,noexec devpts "$root/dev/pts"
ln -s pts/ptmx "$root/dev/ptmx"
ln -s /proc/self/fd "$root/dev/fd"
ln -s /proc/self/fd/0 "$root/dev/stdin"; ln -s /proc/self/fd/1 "$root/dev/stdout"; ln -s /proc/self/fd/2 "$root/dev/stderr"
mount -t tmpfs -o nosuid,nodev tmpfs "$root/dev/shm"
exec chroot "$root" "$@"
`;

export const CHROOT_ENV: Readonly<Record<string, string>> = {
  PATH: DEFAULT_PATH,
  HOME: "/build",
  LANG: "C.UTF-8",
  DEBIAN_FRONTEND: "noninteractive",
  SHELL: "/bin/sh",
};

export class ChrootBackend implements Backend {
  readonly name = "chroot";
  readonly defaultCwd = "/build";

  constructor(
    readonly workspace: string,
    private readonly runner: ProcessRunner,
  ) {}

  /** The unpacked tree: mmdebstrap tarballs have "./" paths, Launchpad's a chroot-autobuild/ folder. */
  get root(): string {
    const unpacked = path.join(this.workspace, "chroot");
    const lp = path.join(unpacked, "chroot-autobuild");
    try {
      // lstat: a chroot-autobuild that is a link (to "/", say) is not a root to trust.
      if (fs.readdirSync(unpacked).length === 1 && fs.lstatSync(lp).isDirectory()) return lp;
    } catch {
      // not unpacked yet
    }
    return unpacked;
  }

  /** The unpacked tree, where absolute links resolve against its root, as inside the chroot. */
  get tree(): Tree {
    return new Tree(this.root, "chroot");
  }

  async create(tarball: string, io: StepIO): Promise<void> {
    if (process.getuid?.() !== 0) {
      throw new Error(
        "the chroot backend needs root (it unpacks device nodes, mounts and chroots)",
      );
    }
    const dest = path.join(this.workspace, "chroot");
    fs.mkdirSync(dest, { recursive: true, mode: 0o755 });
    await unpack(this.runner, tarball, dest, io);
    const tree = this.tree;
    for (const dir of ["proc", "sys", "dev"]) {
      const mountPoint = tree.resolve(dir, { final: "nofollow", mkdir: true });
      if (!mountPoint.stat?.isDirectory()) {
        throw new StepFailed(
          `the chroot's /${dir} is ${mountPoint.stat?.isSymbolicLink() ? "a symbolic link" : "not a directory"}; ` +
            `it must be a directory, where each step mounts its own /${dir}`,
        );
      }
    }
    tree.mkdirp("/build");
    tree.mkdirp("/etc");
  }

  async start(io: StepIO): Promise<void> {
    const tree = this.tree;
    // The build resolves names like the host does (the reference copies resolv.conf too).
    // The chroot's own resolv.conf, or a link in its place, is replaced, never followed.
    if (fs.existsSync("/etc/resolv.conf")) {
      await tree.copyIn("/etc/resolv.conf", "/etc/resolv.conf");
    } else {
      tree.remove("/etc/resolv.conf");
    }
    // Prove the mounts work before the build relies on them.
    await runToCompletion(
      io.track(this.run(["true"], io.log)),
      "mounting /proc, /sys and /dev in the chroot",
    );
  }

  run(argv: readonly string[], log: BuildLog, opts: RunOptions = {}): RunningProcess {
    const root = this.root;
    const env = Object.entries({ ...CHROOT_ENV, ...opts.env }).map(([k, v]) => `${k}=${v}`);
    const cwd = opts.cwd ?? this.defaultCwd;
    const inner = ["env", "-i", ...env, "sh", "-c", 'cd "$0" && exec "$@"', cwd, ...argv];
    return this.runner.start({
      argv: ["sh", "-c", PROLOGUE, "buildd-chroot", root, ...inner],
      logArgv: ["chroot", root, ...argv],
      log,
      isolation: { mount: true, network: opts.noNetwork === true },
    });
  }

  async copyIn(hostPath: string, relPath: string): Promise<void> {
    await this.tree.copyIn(hostPath, relPath);
  }

  /** Host path of a path inside the chroot, its links resolved against the chroot's root. */
  resolve(relPath: string): string {
    return this.tree.resolve(relPath).path;
  }

  async stop(): Promise<void> {
    // Nothing is mounted outside a step's own namespace (see the top), so the results
    // having been copied out, the whole chroot can go now rather than at clean().
    await removeTree(this.runner, this.workspace);
  }

  async remove(): Promise<void> {
    await removeTree(this.runner, this.workspace);
  }
}
