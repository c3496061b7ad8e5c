// The content-addressed store: a flat directory of files named by the SHA-1 of their
// content, with their bookkeeping (size, time added, last use, who holds them) in SQLite.
//
// Invariant: a file under a SHA-1 name is always exactly that content. New content is
// written to a temporary file in the same directory (names start with "." so they can
// never look like a SHA-1), fsynced, verified, renamed into place, and the directory is
// fsynced. A crash at any point leaves either nothing or a temporary file, and temporary
// files are removed at start-up.
//
// This module owns the cache directory and the cache tables; it knows nothing of builds.
// Builds reach it through holds: a named holder (e.g. "build:ID") pins entries so that
// eviction never removes a file a build or its waiting results still need.

import { createHash, randomBytes } from "node:crypto";
import fs from "node:fs";
import path from "node:path";
import { pipeline } from "node:stream/promises";
import type { Logger } from "pino";
import { statement, type Db } from "../state/db.js";
import { isSha1 } from "./names.js";

export interface CacheBudget {
  /** Total bytes the cache may hold; 0 = no budget. */
  readonly maxSize: number;
  /** Free bytes to keep on the file system. */
  readonly minFree: number;
}

export class NotEnoughSpace extends Error {}

const TEMP_PREFIX = ".tmp-";

export class FileCache {
  /** Bytes promised to downloads in progress, not yet in cache_entries. */
  private reserved = 0;
  /** Entries evicted to make room since start-up (the page and /metrics show it). */
  private evicted = 0;

  constructor(
    readonly dir: string,
    private readonly db: Db,
    private readonly budget: CacheBudget,
    private readonly log: Logger,
    private readonly now: () => number = Date.now,
  ) {}

  pathOf(sha1: string): string {
    return path.join(this.dir, sha1);
  }

  has(sha1: string): boolean {
    return isSha1(sha1) && fs.existsSync(this.pathOf(sha1));
  }

  /** A fresh temporary path in the cache directory (same file system, so rename is atomic). */
  tempPath(): string {
    return path.join(this.dir, `${TEMP_PREFIX}${randomBytes(8).toString("hex")}`);
  }

  touch(sha1: string): void {
    statement(this.db, "UPDATE cache_entries SET last_used = ? WHERE sha1 = ?").run(
      this.now(),
      sha1,
    );
  }

  /**
   * Move a verified temporary file into place under its SHA-1. The caller has fsynced
   * the file and checked its digest. If the entry exists already, the temp is dropped.
   * `holder`, when given, holds the entry in the same synchronous step as its row is
   * written, so no eviction can come in between. Returns whether the entry is new.
   */
  async commit(tempPath: string, sha1: string, size: number, holder?: string): Promise<boolean> {
    if (!isSha1(sha1)) throw new Error(`not a SHA-1: ${sha1}`);
    const existed = fs.existsSync(this.pathOf(sha1));
    if (existed) {
      fs.rmSync(tempPath, { force: true });
    } else {
      fs.renameSync(tempPath, this.pathOf(sha1));
    }
    const t = this.now();
    this.db.transaction(() => {
      statement(
        this.db,
        `INSERT INTO cache_entries (sha1, size, added_at, last_used) VALUES (?, ?, ?, ?)
           ON CONFLICT (sha1) DO UPDATE SET last_used = excluded.last_used`,
      ).run(sha1, size, t, t);
      if (holder !== undefined) this.hold(holder, [sha1]);
    })();
    // After the row and the hold: the await gives other calls a turn, and from here on
    // the entry is both known and (if asked) protected from eviction.
    if (!existed) await fsyncPath(this.dir);
    return !existed;
  }

  /**
   * Copy a file into the cache while hashing it (build results); returns its SHA-1.
   * `holder` holds the entry from the moment it exists (see commit()).
   */
  async storeFile(
    source: string,
    holder?: string,
  ): Promise<{ sha1: string; size: number; added: boolean }> {
    const temp = this.tempPath();
    const hash = createHash("sha1");
    let size = 0;
    try {
      const out = fs.createWriteStream(temp, { flags: "wx", mode: 0o644 });
      await pipeline(
        fs.createReadStream(source),
        async function* (chunks: AsyncIterable<Buffer>) {
          for await (const chunk of chunks) {
            hash.update(chunk);
            size += chunk.length;
            yield chunk;
          }
        },
        out,
      );
      await fsyncPath(temp);
      const sha1 = hash.digest("hex");
      this.reserve(size, true);
      const added = await this.commit(temp, sha1, size, holder);
      return { sha1, size, added };
    } catch (err) {
      fs.rmSync(temp, { force: true });
      throw err;
    }
  }

  remove(sha1: string): void {
    if (!isSha1(sha1)) return;
    fs.rmSync(this.pathOf(sha1), { force: true });
    statement(this.db, "DELETE FROM cache_entries WHERE sha1 = ?").run(sha1);
    statement(this.db, "DELETE FROM cache_holds WHERE sha1 = ?").run(sha1);
  }

  hold(holder: string, sha1s: Iterable<string>): void {
    const insert = statement(
      this.db,
      "INSERT OR IGNORE INTO cache_holds (sha1, holder) VALUES (?, ?)",
    );
    this.db.transaction(() => {
      for (const sha1 of sha1s) insert.run(sha1, holder);
    })();
  }

  release(holder: string): void {
    statement(this.db, "DELETE FROM cache_holds WHERE holder = ?").run(holder);
  }

  isHeld(sha1: string): boolean {
    return statement(this.db, "SELECT 1 FROM cache_holds WHERE sha1 = ?").get(sha1) !== undefined;
  }

  totalSize(): number {
    const row = statement(
      this.db,
      "SELECT COALESCE(SUM(size), 0) AS n FROM cache_entries",
    ).get() as {
      n: number;
    };
    return row.n;
  }

  /** Entries in the cache and entries evicted since start-up. */
  counts(): { entries: number; evictions: number } {
    const row = statement(this.db, "SELECT COUNT(*) AS n FROM cache_entries").get() as {
      n: number;
    };
    return { entries: row.n, evictions: this.evicted };
  }

  /**
   * Make room for `bytes` more, evicting least recently used entries that nothing holds.
   * Returns a release function for the reservation (call it once the bytes are committed
   * or abandoned). Throws NotEnoughSpace, evicting nothing, when it cannot fit.
   * `committed`: the bytes are about to be committed at once (no release needed).
   */
  reserve(bytes: number, committed = false): () => void {
    const need = (): { overBudget: number; overDisk: number } => {
      const total = this.totalSize() + this.reserved + bytes;
      const free = freeBytes(this.dir) - this.reserved - bytes;
      return {
        overBudget: this.budget.maxSize > 0 ? Math.max(0, total - this.budget.maxSize) : 0,
        overDisk: Math.max(0, this.budget.minFree - free),
      };
    };
    const first = need();
    if (first.overBudget > 0 || first.overDisk > 0) {
      const candidates = statement(
        this.db,
        `SELECT sha1, size FROM cache_entries
           WHERE sha1 NOT IN (SELECT sha1 FROM cache_holds) ORDER BY last_used, added_at`,
      ).all() as { sha1: string; size: number }[];
      const evictable = candidates.reduce((n, c) => n + c.size, 0);
      if (first.overBudget > evictable || first.overDisk > evictable) {
        throw new NotEnoughSpace(describeShortfall(bytes, first, evictable, this.budget));
      }
      let freedBudget = 0;
      for (const c of candidates) {
        if (freedBudget >= first.overBudget && freedBudget >= first.overDisk) break;
        this.log.info({ sha1: c.sha1, size: c.size }, "evicting cache entry");
        this.remove(c.sha1);
        this.evicted++;
        freedBudget += c.size;
      }
    }
    if (committed) return () => undefined;
    this.reserved += bytes;
    let released = false;
    return () => {
      if (!released) this.reserved -= bytes;
      released = true;
    };
  }

  /**
   * Make the directory and the table agree, at start-up: remove temporary leftovers,
   * adopt files without a row after verifying their content, drop rows without a file
   * and files whose content does not match their name.
   */
  async reconcile(): Promise<void> {
    const names = new Set(fs.readdirSync(this.dir));
    for (const name of names) {
      if (name.startsWith(TEMP_PREFIX)) {
        this.log.info({ file: name }, "removing a temporary file left by an interrupted download");
        fs.rmSync(path.join(this.dir, name), { force: true });
      }
    }
    const rows = statement(this.db, "SELECT sha1 FROM cache_entries").all() as { sha1: string }[];
    const known = new Set(rows.map((r) => r.sha1));
    for (const sha1 of known) {
      if (!names.has(sha1)) {
        this.log.warn({ sha1 }, "cache entry without a file: dropping it");
        statement(this.db, "DELETE FROM cache_entries WHERE sha1 = ?").run(sha1);
      }
    }
    for (const name of names) {
      if (!isSha1(name) || known.has(name)) continue;
      const file = path.join(this.dir, name);
      if (!fs.statSync(file).isFile()) continue;
      const actual = await sha1OfFile(file);
      if (actual === name) {
        this.log.info({ sha1: name }, "adopting a verified file without a cache entry");
        const t = this.now();
        statement(
          this.db,
          "INSERT INTO cache_entries (sha1, size, added_at, last_used) VALUES (?, ?, ?, ?)",
        ).run(name, fs.statSync(file).size, t, t);
      } else {
        this.log.warn({ file: name, actual }, "file content does not match its name: removing");
        fs.rmSync(file, { force: true });
      }
    }
  }
}

function describeShortfall(
  bytes: number,
  need: { overBudget: number; overDisk: number },
  evictable: number,
  budget: CacheBudget,
): string {
  const why =
    need.overBudget > evictable
      ? `the cache budget of ${budget.maxSize} bytes ([cache] max_size)`
      : `the free-space reserve of ${budget.minFree} bytes ([cache] min_free)`;
  return `not enough space in the file cache for ${bytes} bytes: it would break ${why}, and only ${evictable} bytes can be evicted`;
}

export function freeBytes(dir: string): number {
  const st = fs.statfsSync(dir);
  return st.bavail * st.bsize;
}

export async function sha1OfFile(file: string): Promise<string> {
  const hash = createHash("sha1");
  await pipeline(fs.createReadStream(file), hash);
  return hash.digest("hex");
}

/**
 * fsync a file or directory off the main thread: on a busy disk an fsync can take
 * hundreds of milliseconds, and status() must keep answering meanwhile.
 */
export async function fsyncPath(file: string): Promise<void> {
  const handle = await fs.promises.open(file, "r");
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}
