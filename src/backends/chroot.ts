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

import fs from "node:fs";
import path from "node:path";
import type { BuildLog } from "../builder/buildlog.js";
import { invalidArgument } from "../errors.js";
import { DEFAULT_PATH, startProcess, type RunningProcess } from "../process/runner.js";
import type { Backend, RunOptions, StepIO } from "./backend.js";
import { unpack } from "./unpack.js";
import { removeTree, runToCompletion } from "./util.js";

/** Runs in the step's fresh mount namespace: mount, then become the command in the chroot. */
const PROLOGUE = `set -e
root="$1"; shift
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

  constructor(readonly workspace: string) {}

  /** The unpacked tree: mmdebstrap tarballs have "./" paths, Launchpad's a chroot-autobuild/ folder. */
  get root(): string {
    const unpacked = path.join(this.workspace, "chroot");
    const lp = path.join(unpacked, "chroot-autobuild");
    try {
      if (fs.readdirSync(unpacked).length === 1 && fs.statSync(lp).isDirectory()) return lp;
    } catch {
      // not unpacked yet
    }
    return unpacked;
  }

  async create(tarball: string, io: StepIO): Promise<void> {
    if (process.getuid?.() !== 0) {
      throw new Error(
        "the chroot backend needs root (it unpacks device nodes, mounts and chroots)",
      );
    }
    const dest = path.join(this.workspace, "chroot");
    fs.mkdirSync(dest, { recursive: true, mode: 0o755 });
    await unpack(tarball, dest, io);
    const root = this.root;
    for (const dir of ["proc", "sys", "dev", "build", "etc"]) {
      fs.mkdirSync(path.join(root, dir), { recursive: true });
    }
  }

  async start(io: StepIO): Promise<void> {
    const root = this.root;
    // The build resolves names like the host does (the reference copies resolv.conf too).
    const resolv = path.join(root, "etc/resolv.conf");
    fs.rmSync(resolv, { force: true });
    if (fs.existsSync("/etc/resolv.conf")) fs.copyFileSync("/etc/resolv.conf", resolv);
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
    return startProcess({
      argv: ["sh", "-c", PROLOGUE, "buildd-chroot", root, ...inner],
      logArgv: ["chroot", root, ...argv],
      log,
      unshareFlags: ["--mount", ...(opts.noNetwork ? ["--net"] : [])],
    });
  }

  async copyIn(hostPath: string, relPath: string): Promise<void> {
    const dest = this.resolve(relPath);
    fs.mkdirSync(path.dirname(dest), { recursive: true });
    fs.copyFileSync(hostPath, dest);
  }

  /**
   * Host path of a path inside the chroot. Symlinks inside a chroot resolve against its
   * root, not the host's, so this resolves every component by hand and refuses anything
   * that would land outside.
   */
  resolve(relPath: string): string {
    const root = this.root;
    let current = root;
    const parts = relPath.split("/").filter((p) => p !== "" && p !== ".");
    let hops = 0;
    while (parts.length > 0) {
      const part = parts.shift()!;
      if (part === "..") {
        current = current === root ? root : path.dirname(current);
        continue;
      }
      const next = path.join(current, part);
      let st: fs.Stats | null = null;
      try {
        st = fs.lstatSync(next);
      } catch {
        // does not exist (yet): fine, it is inside
      }
      if (st?.isSymbolicLink()) {
        if (++hops > 40) throw invalidArgument(`too many symlinks resolving ${relPath}`);
        const target = fs.readlinkSync(next);
        parts.unshift(...target.split("/").filter((p) => p !== "" && p !== "."));
        current = target.startsWith("/") ? root : current;
        continue;
      }
      current = next;
    }
    return current;
  }

  async stop(): Promise<void> {
    // Nothing is mounted outside a step's own namespace (see the top), so the results
    // having been copied out, the whole chroot can go now rather than at clean().
    await removeTree(this.workspace);
  }

  async remove(): Promise<void> {
    await removeTree(this.workspace);
  }
}
