// The build journal: the builder's state and every build, in SQLite, so that a restart
// (even SIGKILL) loses nothing the manager was told. Only the Builder writes here.
//
// Arguments are stored with secrets removed; results are the filemap of the finished
// build; `created` lists the result SHA-1s the build added to the cache (clean() removes
// exactly those, never an input that happens to have the same content).

import fs from "node:fs";
import { statement, type Db } from "../state/db.js";
import type { Struct } from "../protocol/values.js";
import { BuilderStatus, type BuildResult, type BuilderPhase } from "../protocol/states.js";
import type { NamespaceIdentity } from "../process/pidns.js";

export interface BuildRecord {
  readonly seq: number;
  readonly buildId: string;
  readonly buildType: string;
  readonly backend: string;
  readonly chrootSha1: string;
  readonly filemap: Record<string, string>;
  readonly args: Struct;
  readonly startedAt: number;
  readonly endedAt: number | null;
  readonly buildStatus: BuildResult | null;
  readonly dependencies: string;
  readonly results: Record<string, string>;
  readonly created: string[];
  readonly extraStatus: Struct;
  /** The PID namespace of the build's current process, while it runs. */
  readonly pidNamespace: RecordedNamespace | null;
  readonly cleanedAt: number | null;
}

interface BuildRow {
  seq: number;
  build_id: string;
  build_type: string;
  backend: string;
  chroot_sha1: string;
  filemap: string;
  args: string;
  started_at: number;
  ended_at: number | null;
  build_status: string | null;
  dependencies: string;
  results: string;
  created: string;
  extra_status: string;
  pid_namespace: string | null;
  cleaned_at: number | null;
}

function fromRow(r: BuildRow): BuildRecord {
  return {
    seq: r.seq,
    buildId: r.build_id,
    buildType: r.build_type,
    backend: r.backend,
    chrootSha1: r.chroot_sha1,
    filemap: JSON.parse(r.filemap) as Record<string, string>,
    args: JSON.parse(r.args) as Struct,
    startedAt: r.started_at,
    endedAt: r.ended_at,
    buildStatus: r.build_status as BuildResult | null,
    dependencies: r.dependencies,
    results: JSON.parse(r.results) as Record<string, string>,
    created: JSON.parse(r.created) as string[],
    extraStatus: JSON.parse(r.extra_status) as Struct,
    pidNamespace: namespaceFromColumn(r.pid_namespace),
    cleanedAt: r.cleaned_at,
  };
}

/**
 * A namespace as the journal holds it: the whole identity (JSON), or, written by a buildd
 * before it recorded more, the bare "pid:[…]" name, which cannot tell a reused number.
 */
export type RecordedNamespace = NamespaceIdentity | { readonly ns: string; readonly legacy: true };

function namespaceFromColumn(text: string | null): RecordedNamespace | null {
  if (text === null) return null;
  if (!text.startsWith("{")) return { ns: text, legacy: true };
  return JSON.parse(text) as NamespaceIdentity;
}

/** Told of every build that finishes (the builder's metrics), after it is recorded. */
export type FinishListener = (record: BuildRecord) => void;

export class Journal {
  private readonly finishListeners: FinishListener[] = [];

  constructor(
    private readonly db: Db,
    private readonly now: () => number = Date.now,
  ) {}

  /** Call `listener` with each build's record once its end is committed. */
  onFinish(listener: FinishListener): void {
    this.finishListeners.push(listener);
  }

  /** Since when the builder is draining (epoch ms), or null when it takes builds. */
  drainingSince(): number | null {
    const row = statement(
      this.db,
      "SELECT draining_since FROM builder_state WHERE id = 1",
    ).get() as {
      draining_since: number | null;
    };
    return row.draining_since;
  }

  /** Start (true) or stop (false) draining; draining again keeps the first time. */
  setDraining(draining: boolean): void {
    statement(
      this.db,
      "UPDATE builder_state SET draining_since = CASE WHEN ? THEN COALESCE(draining_since, ?) ELSE NULL END WHERE id = 1",
    ).run(draining ? 1 : 0, this.now());
  }

  state(): { state: BuilderPhase; current: BuildRecord | null } {
    const row = statement(
      this.db,
      "SELECT state, current_seq FROM builder_state WHERE id = 1",
    ).get() as { state: BuilderPhase; current_seq: number | null };
    return {
      state: row.state,
      current: row.current_seq === null ? null : this.get(row.current_seq),
    };
  }

  get(seq: number): BuildRecord | null {
    const row = statement(this.db, "SELECT * FROM builds WHERE seq = ?").get(seq) as
      BuildRow | undefined;
    return row ? fromRow(row) : null;
  }

  /** IDLE → BUILDING: record the build and make it current, in one transaction. */
  begin(b: {
    buildId: string;
    buildType: string;
    backend: string;
    chrootSha1: string;
    filemap: Record<string, string>;
    args: Struct;
  }): number {
    return this.db.transaction(() => {
      const info = statement(
        this.db,
        `INSERT INTO builds (build_id, build_type, backend, chroot_sha1, filemap, args, started_at)
           VALUES (?, ?, ?, ?, ?, ?, ?)`,
      ).run(
        b.buildId,
        b.buildType,
        b.backend,
        b.chrootSha1,
        JSON.stringify(b.filemap),
        JSON.stringify(b.args),
        this.now(),
      );
      const seq = Number(info.lastInsertRowid);
      this.setState(BuilderStatus.BUILDING, seq);
      return seq;
    })();
  }

  /**
   * Make every commit so far durable against a power cut, without blocking the event
   * loop: the database runs `synchronous = NORMAL` (see src/state/db.ts), so commits are
   * in the WAL but maybe not on disk; this fsyncs the WAL on libuv's thread pool. Linux's
   * fsync flushes the file whatever descriptor it is called on.
   */
  async sync(): Promise<void> {
    let handle: fs.promises.FileHandle;
    try {
      handle = await fs.promises.open(`${this.db.name}-wal`, "r");
    } catch (err) {
      // No WAL (checkpointed and removed): the commits are in the main file, which the
      // checkpoint fsynced.
      if ((err as NodeJS.ErrnoException).code === "ENOENT") return;
      throw err;
    }
    try {
      await handle.datasync();
    } finally {
      await handle.close();
    }
  }

  setState(state: BuilderPhase, currentSeq: number | null): void {
    statement(this.db, "UPDATE builder_state SET state = ?, current_seq = ? WHERE id = 1").run(
      state,
      currentSeq,
    );
  }

  setExtraStatus(seq: number, extra: Struct): void {
    statement(this.db, "UPDATE builds SET extra_status = ? WHERE seq = ?").run(
      JSON.stringify(extra),
      seq,
    );
  }

  setPidNamespace(seq: number, id: NamespaceIdentity | null): void {
    statement(this.db, "UPDATE builds SET pid_namespace = ? WHERE seq = ?").run(
      id === null ? null : JSON.stringify(id),
      seq,
    );
  }

  /** BUILDING/ABORTING → WAITING with the result, in one transaction. */
  finish(
    seq: number,
    r: {
      status: BuildResult;
      dependencies: string;
      results: Record<string, string>;
      created: string[];
    },
  ): void {
    this.db.transaction(() => {
      statement(
        this.db,
        `UPDATE builds SET ended_at = ?, build_status = ?, dependencies = ?, results = ?, created = ?,
             pid_namespace = NULL WHERE seq = ?`,
      ).run(
        this.now(),
        r.status,
        r.dependencies,
        JSON.stringify(r.results),
        JSON.stringify(r.created),
        seq,
      );
      this.setState(BuilderStatus.WAITING, seq);
    })();
    if (this.finishListeners.length === 0) return;
    const record = this.get(seq);
    if (record) for (const listener of this.finishListeners) listener(record);
  }

  /** WAITING → CLEANING: clean() has begun; a restart finishes it (see Builder.recover). */
  beginClean(seq: number): void {
    this.setState("CLEANING", seq);
  }

  /** CLEANING → IDLE; the build stays as history. */
  cleaned(seq: number): void {
    this.db.transaction(() => {
      statement(this.db, "UPDATE builds SET cleaned_at = ? WHERE seq = ?").run(this.now(), seq);
      this.setState(BuilderStatus.IDLE, null);
    })();
  }

  history(limit = 50): BuildRecord[] {
    const rows = statement(this.db, "SELECT * FROM builds ORDER BY seq DESC LIMIT ?").all(
      limit,
    ) as BuildRow[];
    return rows.map(fromRow);
  }
}
