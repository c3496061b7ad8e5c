// File transfers: upload_file and upload_directory (worker → master, in chunks the master
// acknowledges one by one, as bin), download_file (master → worker, asking for one chunk
// at a time until an empty answer).
//
// A failed upload never sends its close: the master then deletes what it received
// instead of delivering a truncated file (its step cancels an unclosed writer). A download
// is written to a temporary file beside its destination, given the mode and the build
// user, and renamed into place, so a step never sees half a file; every path is resolved
// through the builder's Tree first (paths.ts), since this code runs as root.
//
// A directory is archived by GNU tar run through the process runner — as the build user
// in the sandbox when there is one, so it reads only what the build could read itself —
// into a root-only temporary file, then uploaded like a file. tar rather than an npm
// package: it is already what the worker unpacks with, handles every file type, long name
// and sparse file, and does not run in the daemon as root over files a build controls.

import { randomBytes } from "node:crypto";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import type { BuildLogStream, OutputSink } from "../log/buildlog.js";
import { CommandFailed, type CommandContext } from "./command.js";
import { sandboxedRun } from "./sandboxing.js";
import { asBytes, bool, optNum, optStr, str } from "./wire.js";

const DEFAULT_BLOCK = 16 * 1024;

function blocksize(ctx: CommandContext): number {
  const b = optNum(ctx.args, "blocksize") ?? DEFAULT_BLOCK;
  return Math.max(1, Math.floor(b));
}

/** Send a file's bytes in blocks, each acknowledged before the next; returns bytes sent. */
async function sendFile(
  ctx: CommandContext,
  file: string,
  op: "update_upload_file_write" | "update_upload_directory_write",
  maxsize: number | null,
  shown: string,
): Promise<number> {
  const fh = await fs.promises.open(file, fs.constants.O_RDONLY | fs.constants.O_NOFOLLOW);
  try {
    const size = (await fh.stat()).size;
    if (maxsize !== null && size > maxsize) {
      throw new CommandFailed(
        `${shown} is ${size} bytes, more than the ${maxsize} allowed (maxsize)`,
      );
    }
    const block = blocksize(ctx);
    const buf = Buffer.alloc(block);
    let sent = 0;
    for (;;) {
      if (ctx.interrupted !== null) throw new CommandFailed(`interrupted: ${ctx.interrupted}`);
      const { bytesRead } = await fh.read(buf, 0, block, sent);
      if (bytesRead === 0) return sent;
      sent += bytesRead;
      if (maxsize !== null && sent > maxsize) {
        throw new CommandFailed(`${shown} grew past the ${maxsize} bytes allowed (maxsize)`);
      }
      // A copy: the master's acknowledgement comes after the next read would reuse buf.
      await ctx.request(op, { args: Buffer.from(buf.subarray(0, bytesRead)) });
    }
  } finally {
    await fh.close();
  }
}

export async function uploadFile(ctx: CommandContext): Promise<void> {
  if (ctx.builder === null) throw new CommandFailed("upload_file: no builder named");
  const place = ctx.deps.dirs.place(ctx.builder, str(ctx.args, "path"));
  const file = place.tree.regularFile(place.rel);
  ctx.header(`sending ${place.shown}\n`);
  if (bool(ctx.args, "keepstamp", false)) {
    ctx.header(
      "keepstamp: not sent (the master's handler for it is broken); the file gets a new time\n",
    );
  }
  await sendFile(ctx, file, "update_upload_file_write", optNum(ctx.args, "maxsize"), place.shown);
  await ctx.request("update_upload_file_close");
  ctx.rc(0);
}

/** A sink that writes tar's stdout (the archive) to a file and its stderr as header lines. */
function archiveSink(fd: number, ctx: CommandContext): OutputSink {
  return {
    path: "the directory archive",
    logCommand: () => {},
    write: (text) => ctx.header(text.toString()),
    stream: (which): BuildLogStream => {
      if (which === "stdout") {
        return {
          push: (chunk) => {
            for (let off = 0; off < chunk.length;) off += fs.writeSync(fd, chunk, off);
          },
          flushIdle: () => {},
          end: () => {},
        };
      }
      let text = "";
      return {
        push: (chunk) => {
          text += chunk.toString("utf8");
        },
        flushIdle: () => {},
        end: () => {
          if (text !== "") ctx.header(text);
        },
      };
    },
  };
}

export async function uploadDirectory(ctx: CommandContext): Promise<void> {
  const { deps } = ctx;
  if (ctx.builder === null) throw new CommandFailed("upload_directory: no builder named");
  const place = deps.dirs.place(ctx.builder, str(ctx.args, "path"));
  const dir = place.tree.resolve(place.rel);
  if (!dir.stat?.isDirectory()) throw new CommandFailed(`${place.shown} is not a directory`);
  const compress = optStr(ctx.args, "compress");
  const flag = compress === "gz" ? ["-z"] : compress === "bz2" ? ["-j"] : [];
  if (compress !== null && flag.length === 0) {
    throw new CommandFailed(`compress: ${compress} is not one of None, gz, bz2`);
  }

  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "buildd-upload-"));
  const archive = path.join(tmp, "archive.tar");
  const fd = fs.openSync(archive, "wx", 0o600);
  try {
    ctx.header(`sending ${place.shown}\n`);
    const env = { ...deps.environ, HOME: place.root };
    const proc = deps.runner.start({
      // Members are named ./… (the master unpacks them into its destination directory).
      argv: ["tar", "-c", "-f", "-", ...flag, "-C", dir.path, "."],
      cwd: dir.path,
      env,
      log: archiveSink(fd, ctx),
      ...(deps.sandbox === null
        ? {}
        : sandboxedRun(deps.sandbox, deps.dirs.basedir, place.root, env, null)),
    });
    const onInterrupt = (): void => void proc.terminate(0);
    ctx.signal.addEventListener("abort", onInterrupt, { once: true });
    const result = await proc.done.finally(() =>
      ctx.signal.removeEventListener("abort", onInterrupt),
    );
    fs.closeSync(fd);
    if (ctx.interrupted !== null) throw new CommandFailed(`interrupted: ${ctx.interrupted}`);
    if (result.exitCode !== 0) {
      throw new CommandFailed(
        `archiving ${place.shown} failed: tar ${result.signal ?? `exit status ${result.exitCode}`}`,
      );
    }
    await sendFile(
      ctx,
      archive,
      "update_upload_directory_write",
      optNum(ctx.args, "maxsize"),
      `the archive of ${place.shown}`,
    );
    await ctx.request("update_upload_directory_unpack");
    ctx.rc(0);
  } finally {
    try {
      fs.closeSync(fd);
    } catch {
      // closed above
    }
    fs.rmSync(tmp, { recursive: true, force: true });
  }
}

export async function downloadFile(ctx: CommandContext): Promise<void> {
  const { deps } = ctx;
  if (ctx.builder === null) throw new CommandFailed("download_file: no builder named");
  const place = deps.dirs.place(ctx.builder, str(ctx.args, "path"));
  const name = path.posix.basename(place.rel);
  if (name === "." || name === ".." || name === "") {
    throw new CommandFailed(`${place.shown} does not name a file`);
  }
  const folder = deps.dirs.mkdir(place.tree, path.posix.dirname(place.rel));
  const dest = path.join(folder, name);
  const old = lstatOrNull(dest);
  if (old?.isDirectory()) throw new CommandFailed(`${place.shown} is a directory`);

  const maxsize = optNum(ctx.args, "maxsize");
  const mode = optNum(ctx.args, "mode");
  const block = blocksize(ctx);
  const tmp = path.join(folder, `.buildd-download-${randomBytes(6).toString("hex")}`);
  // "wx": O_CREAT | O_EXCL, which never follows a link put in its place.
  const fh = await fs.promises.open(tmp, "wx", 0o600);
  let done = false;
  try {
    let got = 0;
    try {
      for (;;) {
        if (ctx.interrupted !== null) throw new CommandFailed(`interrupted: ${ctx.interrupted}`);
        const want = maxsize === null ? block : Math.min(block, maxsize - got);
        if (want <= 0) {
          throw new CommandFailed(
            `${place.shown}: more than the ${maxsize} bytes allowed (maxsize)`,
          );
        }
        // An empty answer is the end; so is None (which a master with the upstream bug
        // sends for every chunk).
        const data = asBytes(await ctx.request("update_read_file", { length: want }));
        if (data === null || data.length === 0) break;
        got += data.length;
        await fh.write(data);
      }
    } finally {
      await ctx.request("update_read_file_close").catch(() => undefined);
    }
    await fh.chmod(mode ?? 0o644);
    if (deps.dirs.owner !== null) await fh.chown(deps.dirs.owner.uid, deps.dirs.owner.gid);
    await fh.close();
    // rename replaces a file, or a link itself, never what a link points to.
    fs.renameSync(tmp, dest);
    done = true;
    ctx.rc(0);
  } finally {
    if (!done) {
      await fh.close().catch(() => undefined);
      fs.rmSync(tmp, { force: true });
    }
  }
}

function lstatOrNull(p: string): fs.Stats | null {
  try {
    return fs.lstatSync(p);
  } catch {
    return null;
  }
}
