// Exclusive ownership of a directory (the state directory, the file cache) for the life
// of the process, so that a second `buildd serve` on the same directories refuses at once
// instead of "recovering" the first one's live build.
//
// The lock is an SQLite database file in the directory with an EXCLUSIVE transaction
// open on it: SQLite holds a POSIX write lock on the file until the connection closes. The kernel drops POSIX locks when the process dies, even by SIGKILL, so there is
// never a stale lock to clean up by hand (a PID file would need guessing). SQLite also
// tracks locks between connections inside one process, so a second builder in the same
// process is refused too. better-sqlite3 is already a dependency; Node has no flock().
//
// The holder is named from /proc/locks, which lists the PID of each POSIX lock's owner.

import fs from "node:fs";
import path from "node:path";
import Database from "better-sqlite3";
import { BuilddError } from "../errors.js";

export const LOCK_FILE = ".buildd.lock";

export interface DirectoryLock {
  readonly dir: string;
  release(): void;
}

/** The PID holding a POSIX lock on `file`, from /proc/locks; null if none is listed. */
export function lockHolder(file: string): number | null {
  let st: fs.Stats;
  let table: string;
  try {
    st = fs.statSync(file);
    table = fs.readFileSync("/proc/locks", "latin1");
  } catch {
    return null;
  }
  // "1: POSIX  ADVISORY  WRITE 12139 fe:00:2146469 1073741824 1073742335"
  for (const line of table.split("\n")) {
    const m = /^\d+:\s+POSIX\s+\S+\s+\S+\s+(\d+)\s+([0-9a-f]+):([0-9a-f]+):(\d+)\s/.exec(line);
    if (!m || Number(m[4]) !== st.ino) continue;
    const dev = (parseInt(m[2]!, 16) << 8) | parseInt(m[3]!, 16);
    // st.dev packs major/minor the kernel's way; compare only when the minor fits a byte.
    if (st.dev < 0x10000 && dev !== st.dev) continue;
    return Number(m[1]);
  }
  return null;
}

function commandOf(pid: number): string {
  try {
    return fs.readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0").filter(Boolean).join(" ");
  } catch {
    return "";
  }
}

/**
 * Take the directory for this process, or throw a BUILDD_ERR_LOCKED error naming the
 * directory and the PID that holds it. Nothing in the directory is read or changed
 * before the lock is held, except that the lock file is created if missing.
 */
export function lockDirectory(dir: string, label: string): DirectoryLock {
  const file = path.join(dir, LOCK_FILE);
  let db: Database.Database | null = null;
  try {
    db = new Database(file, { timeout: 0 });
    // A transaction that is never committed: its EXCLUSIVE lock lasts until close (or
    // until the kernel drops it with the process). SQLite keeps a `-journal` file beside
    // the lock file meanwhile; both names start with LOCK_FILE.
    db.exec("BEGIN EXCLUSIVE");
  } catch (err) {
    db?.close();
    const code = (err as { code?: string }).code;
    if (code === "SQLITE_BUSY" || code === "SQLITE_LOCKED") {
      const pid = lockHolder(file);
      const who =
        pid === null
          ? "another process"
          : pid === process.pid
            ? `this process (PID ${pid}) already`
            : `process ${pid}${commandOf(pid) ? ` (${commandOf(pid)})` : ""}`;
      throw new BuilddError(
        "BUILDD_ERR_LOCKED",
        `${label} ${dir} is in use: ${who} holds ${LOCK_FILE}. Another builder is running on it; stop that one first, or give this one its own directories`,
      );
    }
    throw new BuilddError(
      "BUILDD_ERR_LOCKED",
      `${label} ${dir}: cannot take the lock ${file} (${err instanceof Error ? err.message : String(err)})`,
      { cause: err },
    );
  }
  const held = db;
  let released = false;
  return {
    dir,
    release() {
      if (released) return;
      released = true;
      held.close();
    },
  };
}
