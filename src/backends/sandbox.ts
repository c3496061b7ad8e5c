// Unprivileged host steps: a `script` step on the host runs as the build user
// ([build] user), in its own PID and mount namespace, with a private /tmp, and without
// sight of what the builder keeps for itself. A small sh prologue, run as root inside
// the step's fresh mount namespace (so every mount vanishes with the step), does:
//
//   - a private tmpfs on /tmp, /var/tmp and /dev/shm (the host's world-writable places);
//   - the state directory (journal, build log, other builds' workspaces) covered by an
//     empty tmpfs, with only this build's workspace put back at its own path;
//   - every other private path (the file cache, the configuration, the secrets file,
//     the TLS key) covered by an unreadable empty file or directory;
//   - then the step itself, through setpriv: the build user's uid, gid and groups, no
//     capabilities, no new privileges (setuid binaries cannot raise it again).
//
// The step gets the prologue's stdin through fd 3: sh gives a background job /dev/null
// as its stdin unless the job redirects it itself (a Buildbot step's initial_stdin).
//
// The prologue stays PID 1 of the namespace and waits for the step instead of exec'ing
// it, so PID 1 is root's: the step cannot read its environment (/proc/1/environ), and
// the builder itself is not in the namespace at all, so it cannot be signalled.
// Only the workspace is writable by the build user (it owns it; create() chowns it).

import fs from "node:fs";
import path from "node:path";

export interface HostSandbox {
  /** The user steps run as. */
  readonly user: string;
  /** Its primary group's id (resolved once at start-up, not per step). */
  readonly gid: number;
  /** The builder's state directory, which holds the workspaces. */
  readonly statedir: string;
  /** Files and directories the step must not reach (cache, config, secrets, TLS key). */
  readonly hidden: readonly string[];
}

// The workspace is held as the shell's working directory while the state directory and
// /tmp are covered (either may contain the other, or the workspace: test directories
// live under /tmp), then bound back at its own path from ".", which mount(2) resolves
// through the held directory (--no-canonicalize: mount(8) must not turn "." into the
// now-covered path first). Directories a capability hands the build under the covered
// places (a PostgreSQL socket directory in /tmp) are held the same way, as open file
// descriptors 3-9, and bound back from /proc/self/fd/N, a link the kernel resolves to
// the directory itself whatever now covers its path.
const PROLOGUE = `set -e
user="$1"; group="$2"; ws="$3"; state="$4"; shift 4
cwd="$PWD"
cd "$ws"
fd=2
while [ "$1" != "--" ]; do
  fd=$((fd + 1)); eval "exec $fd< \\"\\$1\\""; eval "keep$fd=\\"\\$1\\""
  shift
done
shift
mount -t tmpfs -o nosuid,nodev,mode=0755 tmpfs "$state"
mount -t tmpfs -o nosuid,nodev,mode=1777 tmpfs /tmp
for d in /var/tmp /dev/shm; do
  if [ -d "$d" ]; then mount -t tmpfs -o nosuid,nodev,mode=1777 tmpfs "$d"; fi
done
mkdir -p "$ws"
mount --no-canonicalize --bind . "$ws"
while [ "$fd" -gt 2 ]; do
  eval "keep=\\"\\$keep$fd\\""
  mkdir -p "$keep"
  mount --no-canonicalize --bind "/proc/self/fd/$fd" "$keep"
  eval "exec $fd<&-"
  fd=$((fd - 1))
done
(umask 777; : > /tmp/.buildd-none); mkdir -m 000 /tmp/.buildd-nodir
while [ "$1" != "--" ]; do
  if [ -d "$1" ]; then mount --bind /tmp/.buildd-nodir "$1"
  elif [ -e "$1" ]; then mount --bind /tmp/.buildd-none "$1"; fi
  shift
done
shift
cd "$cwd"
set +e
exec 3<&0
setpriv --reuid="$user" --regid="$group" --init-groups --inh-caps=-all --bounding-set=-all --no-new-privs -- "$@" <&3 3<&- &
exec 3<&-
wait $!
`;

/** The prologue holds kept directories as file descriptors 3-9. */
const MAX_KEPT = 7;

/** Where steps get a private empty directory instead of the host's. */
const PRIVATE_DIRS = ["/tmp", "/var/tmp", "/dev/shm"];

/**
 * Directories named in a step's environment (PGHOST=/tmp/pg, a PATH entry, a file such
 * as GATE=/tmp/dir/flag: its directory) that lie in the places the sandbox makes
 * private, and exist: a capability or the build's own `environment` hands them to the
 * steps on purpose, so they stay visible, with their own permissions (nothing the
 * builder keeps for itself is ever under them).
 */
export function keptDirectories(env: Readonly<Record<string, string>>, ws: string): string[] {
  const keep = new Set<string>();
  for (const value of Object.values(env)) {
    for (const part of value.split(":")) {
      if (!path.isAbsolute(part)) continue;
      let dir = path.normalize(part);
      if (dir === ws || dir.startsWith(`${ws}/`)) continue;
      const under = PRIVATE_DIRS.find((d) => dir.startsWith(`${d}/`));
      if (under === undefined) continue;
      // The path itself if it is a directory, else the nearest directory above it that
      // exists, but never the private place itself (that would undo its privacy).
      while (dir !== under && !isDirectory(dir)) dir = path.dirname(dir);
      if (dir !== under) keep.add(dir);
    }
  }
  return [...keep].sort().slice(0, MAX_KEPT);
}

function isDirectory(p: string): boolean {
  try {
    return fs.statSync(p).isDirectory();
  } catch {
    return false;
  }
}

/**
 * argv that runs a command sandboxed for the workspace `ws` (under the runner's mount
 * namespace), keeping `keep` (see keptDirectories) visible.
 */
export function sandboxWrap(sandbox: HostSandbox, ws: string, keep: readonly string[]): string[] {
  // A kept directory that holds the covered state directory (a step's HOME=/tmp/w when
  // the builder's state is /tmp/w/var) would bring it back into sight whole: not kept.
  const state = path.normalize(sandbox.statedir);
  const safe = keep.filter((k) => state !== k && !state.startsWith(`${k}/`));
  return [
    "sh",
    "-c",
    PROLOGUE,
    "buildd-sandbox",
    sandbox.user,
    String(sandbox.gid),
    ws,
    sandbox.statedir,
    ...safe,
    "--",
    ...sandbox.hidden,
    "--",
  ];
}
