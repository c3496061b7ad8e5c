// The builder's one SQLite file (WAL): the cache's bookkeeping and the build journal.
// Schema changes are numbered migrations, applied in order inside a transaction and
// recorded in `user_version`, so an old state directory upgrades in place.

import path from "node:path";
import Database from "better-sqlite3";

export type Db = Database.Database;

const statements = new WeakMap<Db, Map<string, Database.Statement>>();

/**
 * `db.prepare(sql)`, compiled once per database and kept: better-sqlite3 compiles the
 * SQL on every prepare(), and the journal writes the same few statements on every step
 * of a build. A statement is reset by each run()/get()/all(), so one is safely shared by
 * callers that do not iterate it.
 */
export function statement(db: Db, sql: string): Database.Statement {
  let kept = statements.get(db);
  if (!kept) statements.set(db, (kept = new Map()));
  let stmt = kept.get(sql);
  if (!stmt) kept.set(sql, (stmt = db.prepare(sql)));
  return stmt;
}

const MIGRATIONS: readonly string[] = [
  // 1: the file cache
  `CREATE TABLE cache_entries (
     sha1 TEXT PRIMARY KEY,
     size INTEGER NOT NULL,
     added_at INTEGER NOT NULL,
     last_used INTEGER NOT NULL
   );
   CREATE INDEX cache_entries_lru ON cache_entries (last_used);
   CREATE TABLE cache_holds (
     sha1 TEXT NOT NULL,
     holder TEXT NOT NULL,
     PRIMARY KEY (sha1, holder)
   );`,
  // 2: the build journal (owned by src/builder/journal.ts)
  `CREATE TABLE builds (
     seq INTEGER PRIMARY KEY AUTOINCREMENT,
     build_id TEXT NOT NULL,
     build_type TEXT NOT NULL,
     backend TEXT NOT NULL,
     chroot_sha1 TEXT NOT NULL,
     filemap TEXT NOT NULL,
     args TEXT NOT NULL,
     started_at INTEGER NOT NULL,
     ended_at INTEGER,
     build_status TEXT,
     dependencies TEXT NOT NULL DEFAULT '',
     results TEXT NOT NULL DEFAULT '{}',
     created TEXT NOT NULL DEFAULT '[]',
     extra_status TEXT NOT NULL DEFAULT '{}',
     pid_namespace TEXT,
     cleaned_at INTEGER
   );
   CREATE TABLE builder_state (
     id INTEGER PRIMARY KEY CHECK (id = 1),
     state TEXT NOT NULL,
     current_seq INTEGER REFERENCES builds (seq)
   );
   INSERT INTO builder_state (id, state) VALUES (1, 'BuilderStatus.IDLE');`,
  // 3: drain (owned by src/builder/journal.ts): when the builder was told to take no
  // new builds, or NULL; kept across restarts until undrain.
  `ALTER TABLE builder_state ADD COLUMN draining_since INTEGER;`,
];

export function openDatabase(statedir: string): Db {
  const db = new Database(path.join(statedir, "buildd.sqlite"));
  db.pragma("journal_mode = WAL");
  // NORMAL: in WAL mode a commit is then a write() without fsync, so no journal write
  // waits for the disk on the event loop, and every commit still survives the process
  // being killed. Durability against a power cut is asked for only where the protocol
  // promises it (a build accepted, a clean done): the journal fsyncs the WAL off the main
  // thread before those answers go out (Journal.sync()).
  db.pragma("synchronous = NORMAL");
  db.pragma("foreign_keys = ON");
  db.pragma("busy_timeout = 5000");
  const current = db.pragma("user_version", { simple: true }) as number;
  for (let v = current; v < MIGRATIONS.length; v++) {
    db.transaction(() => {
      db.exec(MIGRATIONS[v]!);
      db.pragma(`user_version = ${v + 1}`);
    })();
  }
  return db;
}
