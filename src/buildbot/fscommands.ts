// The file system commands: mkdir, rmdir, cpdir, stat, glob, listdir, rmfile. Every path
// is one the master named and is resolved inside the builder's directory (paths.ts).
// Those that only look, or make a directory, run here; removing and copying trees run
// rm and cp through the runner — as the build user in the sandbox when there is one, so
// they can only touch what the build itself could.

import fs from "node:fs";
import path from "node:path";
import type { Tree } from "../backends/inroot.js";
import { CommandFailed, type CommandContext } from "./command.js";
import { CommandSink, TextStream } from "./output.js";
import type { Place } from "./paths.js";
import { sandboxedRun } from "./sandboxing.js";
import { str, strList } from "./wire.js";

function places(ctx: CommandContext, key: string): Place[] {
  return strList(ctx.args, key).map((p) => ctx.deps.dirs.place(ctx.builder, p));
}

export async function mkdirCommand(ctx: CommandContext): Promise<void> {
  for (const place of places(ctx, "paths")) ctx.deps.dirs.mkdir(place.tree, place.rel);
  ctx.rc(0);
}

/** Run rm or cp with their output as the step's stdout and stderr; returns the exit code. */
async function runTool(ctx: CommandContext, root: string, argv: string[]): Promise<number> {
  const { deps } = ctx;
  const settings = ctx.settings();
  const scrubber = ctx.scrubber;
  const streams = {
    stdout: new TextStream("stdout", scrubber, settings, ctx.updates),
    stderr: new TextStream("stderr", scrubber, settings, ctx.updates),
  };
  ctx.header(`${argv.join(" ")}\n in dir ${root}\n`);
  const env = { ...deps.environ, HOME: root };
  const sandboxed = deps.sandbox !== null && ctx.builder !== null;
  const proc = deps.runner.start({
    argv,
    cwd: root,
    env,
    log: new CommandSink(
      `command ${ctx.id}`,
      streams,
      (t) => ctx.header(t),
      () => {},
    ),
    ...(sandboxed ? sandboxedRun(deps.sandbox!, deps.dirs.basedir, root, env, null) : {}),
  });
  const onInterrupt = (): void => void proc.terminate(0);
  ctx.signal.addEventListener("abort", onInterrupt, { once: true });
  try {
    const r = await proc.done;
    if (ctx.interrupted !== null) throw new CommandFailed(`interrupted: ${ctx.interrupted}`, -1);
    return r.exitCode ?? -1;
  } finally {
    ctx.signal.removeEventListener("abort", onInterrupt);
  }
}

export async function rmdirCommand(ctx: CommandContext): Promise<void> {
  const targets = places(ctx, "paths");
  if (targets.length === 0) {
    ctx.rc(0);
    return;
  }
  // A link named here is removed itself, never what it points to.
  const hostPaths = targets.map((p) => p.tree.resolve(p.rel, { final: "nofollow" }).path);
  const root = targets[0]!.root;
  const existing = hostPaths.filter((p) => lstatOrNull(p) !== null);
  if (existing.length === 0) {
    ctx.rc(0);
    return;
  }
  let rc = await runTool(ctx, root, ["rm", "-rf", "--", ...existing]);
  if (rc !== 0) {
    // A directory the build made unwritable (chmod 000) stops rm; open it up and retry.
    await runTool(ctx, root, ["chmod", "-Rf", "u+rwx", "--", ...existing]);
    rc = await runTool(ctx, root, ["rm", "-rf", "--", ...existing]);
  }
  ctx.rc(rc);
}

export async function cpdirCommand(ctx: CommandContext): Promise<void> {
  const from = ctx.deps.dirs.place(ctx.builder, str(ctx.args, "from_path"));
  const to = ctx.deps.dirs.place(ctx.builder, str(ctx.args, "to_path"));
  if (from.root !== to.root)
    throw new CommandFailed("cpdir: both paths must be in one builder directory");
  const source = from.tree.resolve(from.rel);
  if (!source.stat?.isDirectory()) throw new CommandFailed(`${from.shown} is not a directory`);
  const folder = ctx.deps.dirs.mkdir(to.tree, path.posix.dirname(to.rel));
  const dest = path.join(folder, path.posix.basename(to.rel));
  ctx.rc(await runTool(ctx, from.root, ["cp", "-R", "-P", "-p", "--", source.path, dest]));
}

export async function statCommand(ctx: CommandContext): Promise<void> {
  const place = ctx.deps.dirs.place(ctx.builder, str(ctx.args, "path"));
  const st = fs.statSync(place.tree.resolve(place.rel).path);
  const secs = (ms: number): number => Math.floor(ms / 1000);
  ctx.value("stat", [
    st.mode,
    st.ino,
    st.dev,
    st.nlink,
    st.uid,
    st.gid,
    st.size,
    secs(st.atimeMs),
    secs(st.mtimeMs),
    secs(st.ctimeMs),
  ]);
  ctx.rc(0);
}

export async function listdirCommand(ctx: CommandContext): Promise<void> {
  const place = ctx.deps.dirs.place(ctx.builder, str(ctx.args, "path"));
  ctx.value("files", fs.readdirSync(place.tree.resolve(place.rel).path));
  ctx.rc(0);
}

export async function rmfileCommand(ctx: CommandContext): Promise<void> {
  const place = ctx.deps.dirs.place(ctx.builder, str(ctx.args, "path"));
  const r = place.tree.resolve(place.rel, { final: "nofollow" });
  if (r.stat === null) throw new CommandFailed(`rmfile: no such file: ${place.shown}`, 2);
  if (r.stat.isDirectory()) throw new CommandFailed(`rmfile: ${place.shown} is a directory`, 21);
  fs.unlinkSync(r.path);
  ctx.rc(0);
}

export async function globCommand(ctx: CommandContext): Promise<void> {
  const place = ctx.deps.dirs.place(ctx.builder, str(ctx.args, "path"));
  const found = globIn(place.tree, place.rel);
  const prefix = place.root;
  ctx.value(
    "files",
    found.map((rel) => (rel === "." ? prefix : `${prefix}/${rel}`)),
  );
  ctx.rc(0);
}

const MAGIC = /[*?[]/;

/** Python's fnmatch for one path component. */
function componentPattern(pattern: string): RegExp {
  let re = "";
  for (let i = 0; i < pattern.length; i++) {
    const c = pattern[i]!;
    if (c === "*") re += "[^/]*";
    else if (c === "?") re += "[^/]";
    else if (c === "[") {
      const end = pattern.indexOf("]", i + 2);
      if (end === -1) re += "\\[";
      else {
        let set = pattern.slice(i + 1, end);
        if (set.startsWith("!")) set = `^${set.slice(1)}`;
        re += `[${set.replace(/\\/g, "\\\\")}]`;
        i = end;
      }
    } else re += c.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
  }
  return new RegExp(`^${re}$`);
}

/** Real directories only: a link to a directory is matched but never entered. */
function listDir(tree: Tree, rel: string): fs.Dirent[] {
  try {
    const r = tree.resolve(rel);
    if (!r.stat?.isDirectory() || !tree.containsDirectory(r.path)) return [];
    return fs.readdirSync(r.path, { withFileTypes: true });
  } catch {
    return [];
  }
}

function join(rel: string, name: string): string {
  return rel === "." ? name : `${rel}/${name}`;
}

/** The paths (relative to the tree's root) matching `pattern`, like Python's glob. */
export function globIn(tree: Tree, pattern: string): string[] {
  let current = ["."];
  const parts = pattern.split("/").filter((p) => p !== "" && p !== ".");
  for (const [i, part] of parts.entries()) {
    const last = i === parts.length - 1;
    const next: string[] = [];
    if (part === "**") {
      // Itself and every directory below, recursively (matching files too when last).
      const walk = (rel: string): void => {
        next.push(rel);
        for (const d of listDir(tree, rel)) {
          if (d.name.startsWith(".")) continue;
          if (d.isDirectory()) walk(join(rel, d.name));
          else if (last) next.push(join(rel, d.name));
        }
      };
      for (const rel of current) walk(rel);
    } else if (!MAGIC.test(part)) {
      for (const rel of current) {
        const p = join(rel, part);
        try {
          if (
            last
              ? tree.resolve(p, { final: "nofollow" }).stat !== null
              : tree.resolve(p).stat?.isDirectory()
          ) {
            next.push(p);
          }
        } catch {
          // outside the tree, or missing
        }
      }
    } else {
      const re = componentPattern(part);
      for (const rel of current) {
        for (const d of listDir(tree, rel)) {
          if (d.name.startsWith(".") && !part.startsWith(".")) continue;
          if (re.test(d.name) && (last || d.isDirectory() || d.isSymbolicLink()))
            next.push(join(rel, d.name));
        }
      }
    }
    current = [...new Set(next)];
  }
  return current.filter((rel) => rel !== "." || parts.length === 0).sort();
}

function lstatOrNull(p: string): fs.Stats | null {
  try {
    return fs.lstatSync(p);
  } catch {
    return null;
  }
}
