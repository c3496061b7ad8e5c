// `buildd history`: the journal's record of recent builds, newest first. It reads the
// SQLite file directly and read-only, so it works while the builder serves (WAL) and
// creates nothing: where no builder has run with this configuration there is no journal,
// and it says so instead of making an empty one (or a ./var) where it was run.

import fs from "node:fs";
import path from "node:path";
import Database from "better-sqlite3";
import { Journal, type BuildRecord } from "../builder/journal.js";
import { loadCliConfig } from "./config.js";
import { CliError, wholeNumber } from "./errors.js";
import { formatDuration, formatTime, table } from "./format.js";
import { shortName } from "./client.js";

export interface HistoryOptions {
  readonly config?: string;
  readonly limit: string;
  readonly json?: boolean;
}

/** The journal's file name inside [builder] statedir (src/state/db.ts opens the same). */
const JOURNAL_FILE = "buildd.sqlite";

function readJournal(statedir: string, limit: number): BuildRecord[] {
  const file = path.join(statedir, JOURNAL_FILE);
  if (!fs.existsSync(statedir)) {
    throw new CliError(
      `no journal yet: [builder] statedir ${statedir} does not exist (no builder has run with this configuration)`,
    );
  }
  if (!fs.existsSync(file)) {
    throw new CliError(
      `no journal yet: ${file} does not exist (no builder has run with [builder] statedir ${statedir})`,
    );
  }
  const db = new Database(file, { readonly: true, fileMustExist: true });
  try {
    return new Journal(db).history(limit);
  } finally {
    db.close();
  }
}

export function history(opts: HistoryOptions, out: NodeJS.WritableStream): void {
  const limit = wholeNumber("--limit", opts.limit, 1, 10_000);
  const config = loadCliConfig(opts.config);
  const records = readJournal(config.builder.statedir, limit);
  const now = Date.now();
  if (opts.json) {
    const rows = records.map((r) => ({
      build_id: r.buildId,
      build_type: r.buildType,
      build_status: r.buildStatus,
      started: new Date(r.startedAt).toISOString(),
      ended: r.endedAt === null ? null : new Date(r.endedAt).toISOString(),
      duration_seconds: r.endedAt === null ? null : (r.endedAt - r.startedAt) / 1000,
      cleaned: r.cleanedAt === null ? null : new Date(r.cleanedAt).toISOString(),
      dependencies: r.dependencies,
    }));
    out.write(`${JSON.stringify(rows, null, 2)}\n`);
    return;
  }
  if (records.length === 0) {
    out.write("no builds yet\n");
    return;
  }
  const rows = records.map((r) => [
    formatTime(r.startedAt),
    r.endedAt === null ? "-" : formatTime(r.endedAt),
    r.endedAt === null
      ? `${formatDuration(now - r.startedAt)}…`
      : formatDuration(r.endedAt - r.startedAt),
    r.buildStatus === null ? "(running)" : shortName(r.buildStatus),
    r.buildType,
    r.buildId,
  ]);
  out.write(table([["STARTED", "ENDED", "DURATION", "RESULT", "TYPE", "BUILD ID"], ...rows]));
}
