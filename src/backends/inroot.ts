// Paths inside an unpacked tree (a chroot, a host workspace), resolved without ever
// following a link out of it. This is the one way the backends and build types touch a
// file inside a tree; nothing else joins a tree's root with a path the tree controls.
//
// The rule. A tree's contents come from a tarball and from the build's own steps, so any
// component of a path inside it may be a symbolic link, pointing anywhere on the host.
// We resolve like openat2(2) does with RESOLVE_IN_ROOT (Node has no openat2): one
// component at a time with lstat, never asking the kernel to follow a link,
//   - ".." stops at the tree's root;
//   - a link's target is resolved in its place, at most 40 links per path (the kernel's
//     own limit, so a loop fails instead of spinning);
//   - an absolute link target starts again at the tree's root ("chroot" trees: inside a
//     chroot, /etc means the chroot's /etc), or is refused ("beneath" trees, the host
//     workspace, like RESOLVE_BENEATH: there an absolute link names the host's file), as
//     is a ".." that would climb above the root;
//   - the last component is followed too, unless an operation replaces it: then the
//     link itself is unlinked, never its target, and the new file is created with
//     O_CREAT | O_EXCL, which the kernel never lets follow a link;
//   - a file read or handed back as a result must be a regular file.
// The host path we return is made of real directories only (every link already
// replaced by where it leads, inside the tree), so opening it later cannot leave the
// tree either. That holds because nothing changes the tree while we look: between two
// steps no process of the build is alive (each step is PID 1 of its own PID namespace
// and dies with it), and results are collected after the last one.

import fs from "node:fs";
import path from "node:path";

/** How absolute link targets are read: relative to the tree ("chroot") or refused ("beneath"). */
export type AbsoluteLinks = "chroot" | "beneath";

export type TreePathProblem = "escapes" | "loop" | "missing" | "not-a-directory" | "wrong-type";

/** A path that cannot be used inside the tree; the message says which part and why. */
export class TreePathError extends Error {
  constructor(
    message: string,
    readonly problem: TreePathProblem,
  ) {
    super(message);
  }
}

/** Linux's MAXSYMLINKS: how many links one path may pass through. */
const MAX_LINKS = 40;

export interface Resolved {
  /** Host path: the tree's root joined with real directories only. */
  readonly path: string;
  /** lstat of that path; null when the last component does not exist. */
  readonly stat: fs.Stats | null;
}

export interface ResolveOptions {
  /** Follow a link in the last component (default), or stop at the link itself. */
  readonly final?: "follow" | "nofollow";
  /** Create missing directories on the way (mode 0755), the last component included. */
  readonly mkdir?: boolean;
}

export class Tree {
  /**
   * `root` is trusted: a real directory that we made or checked (the backend owns the
   * path up to it). Everything below it is not.
   */
  constructor(
    readonly root: string,
    readonly links: AbsoluteLinks,
  ) {}

  /** How a path inside the tree is shown in messages: "/etc/x" in a chroot, "out/x" on the host. */
  show(parts: readonly string[]): string {
    if (this.links === "chroot") return `/${parts.join("/")}`;
    return parts.length === 0 ? "." : parts.join("/");
  }

  private where(): string {
    return this.links === "chroot" ? "the chroot" : "the workspace";
  }

  /** Resolve `rel` (relative to the root; in a chroot a leading "/" means the same). */
  resolve(rel: string, opts: ResolveOptions = {}): Resolved {
    const what = JSON.stringify(rel);
    if (this.links === "beneath" && rel.startsWith("/")) {
      throw new TreePathError(
        `${what} is an absolute path; paths in ${this.where()} are relative to it`,
        "escapes",
      );
    }
    const done: string[] = [];
    const todo = split(rel);
    let links = 0;
    let stat: fs.Stats | null = null;
    while (todo.length > 0) {
      const part = todo.shift()!;
      const last = todo.length === 0;
      if (part === "..") {
        if (done.length === 0 && this.links === "beneath") {
          throw new TreePathError(`${what}: ".." leads out of ${this.where()}`, "escapes");
        }
        done.pop();
        stat = null; // a directory we came through; re-read below if it is the end
        if (last) stat = fs.lstatSync(path.join(this.root, ...done));
        continue;
      }
      const here = path.join(this.root, ...done, part);
      stat = lstatOrNull(here);
      if (stat === null) {
        if (opts.mkdir) {
          fs.mkdirSync(here, { mode: 0o755 });
          stat = fs.lstatSync(here);
        } else if (!last) {
          throw new TreePathError(
            `${what}: ${this.show([...done, part])} does not exist`,
            "missing",
          );
        }
        done.push(part);
        continue;
      }
      if (stat.isSymbolicLink() && !(last && opts.final === "nofollow")) {
        if (++links > MAX_LINKS) {
          throw new TreePathError(
            `${what}: more than ${MAX_LINKS} symbolic links on the way (a loop?)`,
            "loop",
          );
        }
        const target = fs.readlinkSync(here);
        if (target.startsWith("/")) {
          if (this.links === "beneath") {
            throw new TreePathError(
              `${what}: ${this.show([...done, part])} is a symbolic link to ${JSON.stringify(target)}, outside ${this.where()}`,
              "escapes",
            );
          }
          done.length = 0;
        }
        todo.unshift(...split(target));
        if (todo.length === 0) stat = fs.lstatSync(path.join(this.root, ...done));
        continue;
      }
      if (!last && !stat.isDirectory()) {
        throw new TreePathError(
          `${what}: ${this.show([...done, part])} is not a directory`,
          "not-a-directory",
        );
      }
      done.push(part);
    }
    if (done.length === 0) stat = fs.lstatSync(this.root);
    return { path: path.join(this.root, ...done), stat };
  }

  /** Make a directory and any missing parents inside the tree; returns its host path. */
  mkdirp(rel: string): string {
    const r = this.resolve(rel, { mkdir: true });
    if (!r.stat?.isDirectory()) {
      throw new TreePathError(`${JSON.stringify(rel)} exists and is not a directory`, "wrong-type");
    }
    return r.path;
  }

  /**
   * Clear the way for a new file at `rel`: its folder resolved (and created, with
   * `mkdir`), whatever was at its name removed — a link is unlinked itself, never its
   * target. Returns the host path, or null when there is no folder (and no `mkdir`).
   */
  private clear(rel: string, mkdir: boolean): string | null {
    const parts = split(rel);
    const name = parts.pop();
    if (name === undefined || name === "..") {
      throw new TreePathError(`${JSON.stringify(rel)} does not name a file`, "wrong-type");
    }
    const folder = (rel.startsWith("/") ? "/" : "") + parts.join("/");
    let dir: Resolved;
    try {
      dir = this.resolve(folder || ".", { mkdir });
    } catch (err) {
      if (err instanceof TreePathError && err.problem === "missing") return null;
      throw err;
    }
    if (dir.stat === null) return null;
    if (!dir.stat.isDirectory()) {
      throw new TreePathError(
        `${JSON.stringify(rel)}: its folder is not a directory`,
        "wrong-type",
      );
    }
    const dest = path.join(dir.path, name);
    const old = lstatOrNull(dest);
    if (old?.isDirectory()) {
      throw new TreePathError(`${JSON.stringify(rel)} is a directory`, "wrong-type");
    }
    // Unlinking (not truncating) also keeps a hard link's other names untouched.
    if (old !== null) fs.unlinkSync(dest);
    return dest;
  }

  /** Host path where a new file replacing `rel` can be created (folders made as needed). */
  private replaceable(rel: string): string {
    const dest = this.clear(rel, true);
    if (dest === null) throw new TreePathError(`${JSON.stringify(rel)}: no folder`, "missing");
    return dest;
  }

  /** Replace `rel` with a new regular file holding `data`. */
  writeFile(rel: string, data: string | Buffer, mode = 0o644): void {
    // "wx" is O_CREAT | O_EXCL: it fails rather than follow a link put in its place.
    fs.writeFileSync(this.replaceable(rel), data, { flag: "wx", mode });
  }

  /** Replace `rel` with a copy of a host file (e.g. from the cache). */
  async copyIn(hostPath: string, rel: string): Promise<void> {
    // COPYFILE_EXCL creates the destination with O_EXCL too.
    await fs.promises.copyFile(hostPath, this.replaceable(rel), fs.constants.COPYFILE_EXCL);
  }

  /** Remove `rel` if it exists (a link is removed itself, not its target); never a directory. */
  remove(rel: string): void {
    this.clear(rel, false);
  }

  /** Host path of a regular file inside the tree (links inside it followed). */
  regularFile(rel: string): string {
    const r = this.resolve(rel);
    if (r.stat === null) {
      throw new TreePathError(`${JSON.stringify(rel)} does not exist`, "missing");
    }
    if (!r.stat.isFile()) {
      throw new TreePathError(
        `${JSON.stringify(rel)} is not a regular file (it is ${kindOf(r.stat)})`,
        "wrong-type",
      );
    }
    return r.path;
  }

  /** The bytes of a regular file inside the tree. */
  readFile(rel: string): Buffer {
    const file = this.regularFile(rel);
    const fd = fs.openSync(file, fs.constants.O_RDONLY | fs.constants.O_NOFOLLOW);
    try {
      return fs.readFileSync(fd);
    } finally {
      fs.closeSync(fd);
    }
  }

  /**
   * The regular files below the directory `base` that match the globs, as paths
   * relative to it. The walk lists a directory only when it is reached through real
   * directories, so it never passes a link (not even as the glob's fixed prefix, which
   * tinyglobby would otherwise open directly), and links are never matched.
   */
  async glob(base: string, patterns: readonly string[]): Promise<string[]> {
    const dir = this.resolve(base);
    if (!dir.stat?.isDirectory()) {
      throw new TreePathError(`${JSON.stringify(base)} is not a directory`, "not-a-directory");
    }
    const inside = new Tree(dir.path, this.links);
    // fdir (under tinyglobby) lists directories with readdir(path, {withFileTypes}, cb)
    // and skips one that fails; listing nothing outside is all we need to change.
    const readdir = (
      where: string,
      options: { withFileTypes: true },
      done: (err: NodeJS.ErrnoException | null, entries: fs.Dirent[]) => void,
    ): void => {
      if (inside.containsDirectory(where)) {
        fs.readdir(where, options, done);
        return;
      }
      done(Object.assign(new Error(`${where} is not inside the tree`), { code: "ENOENT" }), []);
    };
    // Loaded here, not at start-up: only builds with artifacts need it.
    const { glob } = await import("tinyglobby");
    return glob([...patterns], {
      cwd: dir.path,
      onlyFiles: true,
      followSymbolicLinks: false,
      dot: false,
      fs: { readdir: readdir as unknown as typeof fs.readdir },
    });
  }

  /** True when `hostDir` is the root or below it through real directories only. */
  containsDirectory(hostDir: string): boolean {
    const rel = path.relative(this.root, hostDir);
    if (rel === "") return true;
    if (rel.startsWith("..") || path.isAbsolute(rel)) return false;
    let here = this.root;
    for (const part of rel.split(path.sep)) {
      here = path.join(here, part);
      if (!lstatOrNull(here)?.isDirectory()) return false;
    }
    return true;
  }
}

function split(p: string): string[] {
  return p.split("/").filter((c) => c !== "" && c !== ".");
}

function lstatOrNull(p: string): fs.Stats | null {
  try {
    return fs.lstatSync(p);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return null;
    throw err;
  }
}

function kindOf(st: fs.Stats): string {
  if (st.isDirectory()) return "a directory";
  if (st.isSymbolicLink()) return "a symbolic link";
  if (st.isFIFO()) return "a named pipe";
  if (st.isSocket()) return "a socket";
  if (st.isCharacterDevice() || st.isBlockDevice()) return "a device";
  return "not a file";
}
