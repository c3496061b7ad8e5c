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

import { randomBytes } from "node:crypto";
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

// The mounts are made by two mount(8) processes, not one per mount: a mount(8) costs
// about 2 ms here, and a step on a real machine needs 6–10 of them (4 private places,
// the workspace, kept directories, each hidden path), most of a no-op step's overhead
// (bench/lifecycle.ts). The first mounts the private /tmp; the prologue writes the table
// of all the others there (root's only, gone with the namespace: mount(8) reads a table
// only from a regular file), and the second mounts them in order (`mount --fstab … -a`).
//
// The workspace is held as the shell's working directory while the state directory and
// /tmp are covered (either may contain the other, or the workspace: test directories
// live under /tmp), then bound back at its own path from /proc/self/cwd, a link the
// kernel resolves to the held directory itself whatever now covers its path
// (--no-canonicalize: mount(8) must not turn it into the now-covered path first).
// Directories a capability hands the build under the covered places (a PostgreSQL
// socket directory in /tmp) are held the same way, as file descriptors 3-9, and bound
// back from /proc/self/fd/N. Hidden directories get an empty tmpfs of mode 000, hidden
// files an unreadable empty file from the private /tmp bound over them.
//
// mount -a skips a line whose source is already mounted at its target, which for a
// tmpfs called "tmpfs" over a /dev/shm that already is one would leave it shared without
// a word. So each step's tmpfs has a source name of its own, and the prologue checks that
// mount(8) reports every line as mounted (-v), refusing to run the step otherwise.
const PROLOGUE = `set -e
user="$1"; group="$2"; ws="$3"; source="$4"; table="$5"; lines="$6"; shift 6
cwd="$PWD"
cd "$ws"
fd=2
while [ "$1" != "--" ]; do
  fd=$((fd + 1)); eval "exec $fd< \\"\\$1\\""
  shift
done
shift
mount -t tmpfs -o nosuid,nodev,mode=1777 "$source" /tmp
(umask 077; printf '%s\\n' "$table" > /tmp/.buildd-fstab)
(umask 777; : > /tmp/.buildd-none)
out=$(mount --no-canonicalize --fstab /tmp/.buildd-fstab -a -v)
made=0
while IFS= read -r line; do
  case "$line" in
    *": successfully mounted") made=$((made + 1)) ;;
    *) echo "buildd sandbox: mount: $line" >&2; exit 1 ;;
  esac
done <<EOF
$out
EOF
if [ "$made" -ne "$lines" ]; then
  echo "buildd sandbox: $made of $lines mounts made; not running the step" >&2
  exit 1
fi
while [ "$fd" -gt 2 ]; do eval "exec $fd<&-"; fd=$((fd - 1)); done
cd "$cwd"
set +e
exec 3<&0
setpriv --reuid="$user" --regid="$group" --init-groups --inh-caps=-all --bounding-set=-all --no-new-privs -- "$@" <&3 3<&- &
exec 3<&-
wait $!
`;

/** The prologue holds kept directories as file descriptors 3-9. */
export const MAX_KEPT = 7;

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
  return [...keep].sort();
}

function isDirectory(p: string): boolean {
  try {
    return fs.statSync(p).isDirectory();
  } catch {
    return false;
  }
}

/** A path as an fstab field: blanks, newlines and backslashes as octal escapes. */
function fstabField(p: string): string {
  return p.replace(/[\\ \t\n]/g, (c) => `\\${c.charCodeAt(0).toString(8).padStart(3, "0")}`);
}

/** `p` is `dir` or lies beneath it (both normalized). */
export function inside(p: string, dir: string): boolean {
  return p === dir || p.startsWith(`${dir}/`);
}

/**
 * argv that runs a command sandboxed for the workspace `ws` (under the runner's mount
 * namespace), keeping `keep` (see keptDirectories) visible.
 */
export function sandboxWrap(sandbox: HostSandbox, ws: string, keep: readonly string[]): string[] {
  // A kept directory that holds the covered state directory (a step's HOME=/tmp/w when
  // the builder's state is /tmp/w/var) would bring it back into sight whole: not kept.
  const state = path.normalize(sandbox.statedir);
  const safe = keep.filter((k) => state !== k && !state.startsWith(`${k}/`)).slice(0, MAX_KEPT);
  // A name no mount on the host has (see the note on mount -a above).
  const source = `buildd-sandbox-${randomBytes(6).toString("hex")}`;
  const tmpfs = (target: string, mode: string): string =>
    // X-mount.mkdir: a state directory under /tmp is not there once /tmp is private.
    `${source} ${fstabField(target)} tmpfs nosuid,nodev,mode=${mode},X-mount.mkdir 0 0`;
  const bind = (from: string, target: string): string =>
    `${from} ${fstabField(target)} none bind,X-mount.mkdir 0 0`;
  const covered = [state, ...PRIVATE_DIRS.filter((d) => d === "/tmp" || isDirectory(d))];
  const lines = [
    tmpfs(state, "0755"),
    ...covered.filter((d) => d !== state && d !== "/tmp").map((d) => tmpfs(d, "1777")),
    bind("/proc/self/cwd", path.normalize(ws)),
    ...safe.map((k, i) => bind(`/proc/self/fd/${i + 3}`, k)),
  ];
  // What the step could still reach: outside the covered places, or back in sight with
  // the workspace or a kept directory.
  const inSight = [path.normalize(ws), ...safe];
  for (const hidden of sandbox.hidden) {
    const p = path.normalize(hidden);
    if (covered.some((c) => inside(p, c)) && !inSight.some((k) => inside(p, k))) continue;
    let st: fs.Stats;
    try {
      st = fs.statSync(p);
    } catch {
      continue; // nothing there to hide
    }
    lines.push(
      st.isDirectory() ? tmpfs(p, "000") : `/tmp/.buildd-none ${fstabField(p)} none bind 0 0`,
    );
  }
  return [
    "sh",
    "-c",
    PROLOGUE,
    "buildd-sandbox",
    sandbox.user,
    String(sandbox.gid),
    ws,
    source,
    lines.join("\n"),
    String(lines.length),
    ...safe,
    "--",
  ];
}
