// Where a command from the master may touch files: its builder's directory, nothing else.
//
// The master sends absolute paths, joined onto the basedir we reported and the builder's
// directory name (its `workerbuilddir`). Each is checked here before anything is done
// with it: it must lie inside the builder's directory, and it is resolved through the
// Tree of that directory ("beneath": no ".." above it, no link leading out of it, links
// inside followed only where they stay inside), so a link a step made cannot send a file
// command — which runs as root — anywhere else.
//
// Which directory a builder has: the master says it in set_builder_list when it sends
// one; a 3.7 master does not (it lists and makes the directories itself), so otherwise it
// is the master's default for that builder (its name with unsafe characters replaced, as
// Buildbot's safeTranslate does) when that directory exists, else the directory below the
// basedir that the builder's first command names — pinned from then on, so a builder
// never reaches into another's directory later. Commands outside any build (the master's
// listdir and mkdir at attach) are confined to the basedir.

import fs from "node:fs";
import path from "node:path";
import { Tree, TreePathError } from "../backends/inroot.js";

/** The build user's ids, for files root makes that a sandboxed step must use. */
export interface Owner {
  readonly uid: number;
  readonly gid: number;
}

/** A path the master named, resolved to a place inside a directory we allow. */
export interface Place {
  /** The directory it is confined to (the builder's, or the basedir). */
  readonly root: string;
  readonly tree: Tree;
  /** Its path relative to root ("." for root itself). */
  readonly rel: string;
  /** The path as the master named it, for messages. */
  readonly shown: string;
}

/** Characters Buildbot's safeTranslate replaces with "_" in a builder's directory name. */
const UNSAFE = /[\t !#$%&'()*+,./:;<=>?@[\\\]^{|}~]/g;

export function defaultBuilderDir(name: string): string {
  return name.replace(UNSAFE, "_");
}

export class PathRefused extends Error {}

export class WorkerDirs {
  private readonly builders = new Map<string, string>();
  private readonly baseTree: Tree;

  constructor(
    readonly basedir: string,
    readonly owner: Owner | null,
  ) {
    this.baseTree = new Tree(basedir, "beneath");
  }

  /** set_builder_list: [name, directory] pairs; the directories are made. Returns the names. */
  setBuilders(list: readonly (readonly [string, string])[]): string[] {
    this.builders.clear();
    for (const [name, dir] of list) {
      const rel = path.isAbsolute(dir) ? this.relative(this.basedir, dir) : dir;
      if (rel.split("/").filter((c) => c !== "" && c !== ".").length !== 1) {
        throw new PathRefused(
          `builder ${name}: its directory ${dir} is not a directory directly in ${this.basedir}`,
        );
      }
      this.builders.set(name, rel);
      this.mkdir(this.baseTree, rel);
    }
    this.refresh();
    return list.map(([name]) => name);
  }

  /** The builder directories in the basedir, as last read (see refresh()). */
  private present: string[] = [];

  /**
   * Re-read which builder directories exist: after the master's attach-time listdir and
   * mkdir (a 3.7 master makes every builder's directory then, and never names the
   * builders themselves).
   */
  refresh(): void {
    try {
      this.present = fs
        .readdirSync(this.basedir, { withFileTypes: true })
        .filter((d) => d.isDirectory() && d.name !== "info" && !d.name.startsWith("."))
        .map((d) => d.name);
    } catch {
      this.present = [];
    }
  }

  /**
   * The builders this worker has a directory for (for the status snapshot): those whose
   * directory is known by name, and each other directory the master made, by its name —
   * which is the builder's own under the master's default (workerbuilddir = its name).
   */
  known(): string[] {
    const mapped = new Set(this.builders.values());
    const names = new Set([...this.builders.keys(), ...this.present.filter((d) => !mapped.has(d))]);
    return [...names].sort();
  }

  /** The builder's directory (a host path), learning it from `hostPath` if need be. */
  builderRoot(builder: string, hostPath: string): string {
    let dir = this.builders.get(builder);
    if (dir === undefined) {
      const dflt = defaultBuilderDir(builder);
      if (isRealDir(path.join(this.basedir, dflt))) dir = dflt;
      else {
        const first = this.relative(this.basedir, hostPath).split("/")[0] ?? "";
        if (first === "" || first === "." || first === ".." || first === "info") {
          throw new PathRefused(`${hostPath} is not inside a builder directory of ${this.basedir}`);
        }
        dir = first;
      }
      if (!isRealDir(path.join(this.basedir, dir))) {
        throw new PathRefused(
          `builder ${builder}: its directory ${path.join(this.basedir, dir)} does not exist (or is not a directory)`,
        );
      }
      this.builders.set(builder, dir);
    }
    const root = path.join(this.basedir, dir);
    // Its parent is ours (root's, 0755): a step cannot put a link in its place, but check.
    if (!isRealDir(root)) {
      throw new PathRefused(`the builder directory ${root} is not a directory`);
    }
    return root;
  }

  /** Resolve a path the master named for `builder` (null: outside any build). */
  place(builder: string | null, hostPath: string): Place {
    if (!path.isAbsolute(hostPath)) {
      throw new PathRefused(`${hostPath} is not an absolute path`);
    }
    const root = builder === null ? this.basedir : this.builderRoot(builder, hostPath);
    const rel = this.relative(root, hostPath);
    const tree = root === this.basedir ? this.baseTree : new Tree(root, "beneath");
    return { root, tree, rel, shown: hostPath };
  }

  /** rel of `hostPath` inside `root`, or a refusal naming both. */
  private relative(root: string, hostPath: string): string {
    if (hostPath === root || hostPath === `${root}/`) return ".";
    if (hostPath.startsWith(`${root}/`)) return hostPath.slice(root.length + 1);
    throw new PathRefused(
      `${hostPath} is outside ${root === this.basedir ? "the worker's base directory" : "the builder's directory"} ${root}`,
    );
  }

  /**
   * Make a directory and its missing parents inside the tree; each one made is given to
   * the build user, who must be able to write in it. Returns the host path.
   */
  mkdir(tree: Tree, rel: string): string {
    const parts = rel.split("/").filter((c) => c !== "" && c !== ".");
    let sofar = ".";
    for (const part of parts) {
      sofar = sofar === "." ? part : `${sofar}/${part}`;
      const r = tree.resolve(sofar);
      if (r.stat === null) {
        const made = tree.resolve(sofar, { mkdir: true });
        this.chown(made.path);
      } else if (!r.stat.isDirectory()) {
        throw new TreePathError(`${sofar} exists and is not a directory`, "wrong-type");
      }
    }
    return tree.resolve(rel).path;
  }

  /** Give a file root made (a download, a directory) to the build user; no-op without one. */
  chown(hostPath: string): void {
    if (this.owner !== null) fs.lchownSync(hostPath, this.owner.uid, this.owner.gid);
  }
}

function isRealDir(p: string): boolean {
  try {
    return fs.lstatSync(p).isDirectory();
  } catch {
    return false;
  }
}
