// journal: status() latency while a build writes many journal rows (a 400-step script
// build: every step journals its name and its PID namespace), against status() on the
// same idle builder, interleaved in rounds. Targets as for rpc-under-download: p99 ≤ 2×
// idle, worst ≤ 20 ms.
//
// Also, in the same run, what one SQLite commit costs on the state directory's disk with
// `synchronous = FULL` (an fsync per commit, on the calling thread) and with `NORMAL`
// (the builder's setting: no fsync in a WAL commit; durability where the protocol needs
// it comes from an fsync of the WAL on libuv's thread pool). That per-commit time is what
// the event loop no longer waits for.

import path from "node:path";
import Database from "better-sqlite3";
import { makeTarball, putInCache } from "../harness/fixtures.js";
import { startLibrarian } from "../harness/librarian.js";
import { createClient } from "../harness/client.js";
import {
  addLatencyFigures,
  main,
  max,
  percentile,
  removeDir,
  Report,
  RpcConn,
  startBuilder,
  STATUS_BODY,
  tempDir,
  waitForState,
} from "./lib.js";

const ROUNDS = 3;
const STEPS = 400;
const IDLE_MS = 3000;

/** status() back to back on one connection until `done()`; the latency of each call. */
async function pollStatus(conn: RpcConn, done: () => boolean): Promise<number[]> {
  const ms: number[] = [];
  while (!done()) {
    const t = performance.now();
    await conn.post(STATUS_BODY);
    ms.push(performance.now() - t);
  }
  return ms;
}

function commitMs(dir: string, synchronous: "FULL" | "NORMAL", n: number): number[] {
  const db = new Database(path.join(dir, `commit-${synchronous}.sqlite`));
  try {
    db.pragma("journal_mode = WAL");
    db.pragma(`synchronous = ${synchronous}`);
    db.exec("CREATE TABLE t (k INTEGER PRIMARY KEY, v TEXT)");
    const update = db.prepare("INSERT OR REPLACE INTO t (k, v) VALUES (1, ?)");
    const out: number[] = [];
    for (let i = 0; i < n; i++) {
      const t = performance.now();
      update.run(`{"build_step":"step-${i}"}`);
      out.push(performance.now() - t);
    }
    return out;
  } finally {
    db.close();
  }
}

await main("journal", async () => {
  const report = new Report("journal");
  const builder = await startBuilder();
  try {
    const librarian = await startLibrarian();
    let tree: string;
    try {
      tree = await putInCache(createClient(builder.url), librarian, makeTarball({ x: "x" }));
    } finally {
      await librarian.close();
    }
    const conn = builder.conn;
    const busy: number[] = [];
    const idle: number[] = [];
    for (let round = 1; round <= ROUNDS; round++) {
      const steps = Array.from({ length: STEPS }, (_, i) => ({ name: `s${i}`, run: ["true"] }));
      await conn.call("build", `bench-journal-${round}`, "script", tree, {}, { steps });
      let finished = false;
      const ended = waitForState(builder.conn, "WAITING", 50, 300_000).then(() => {
        finished = true;
      });
      // A second connection for the measured calls, as a manager's poll would be.
      const measured = new RpcConn(builder.url);
      try {
        busy.push(...(await pollStatus(measured, () => finished)));
        await ended;
        await conn.call("clean");
        const until = performance.now() + IDLE_MS;
        idle.push(...(await pollStatus(measured, () => performance.now() > until)));
      } finally {
        measured.close();
      }
    }
    addLatencyFigures(report, {
      name: "status_during_build",
      loaded: busy,
      unloaded: idle,
      refName: "idle builder",
      maxRatio: 2,
      worstMs: 20,
    });

    const dir = tempDir("commit");
    // The same file system as the builder's state directory (both under the temp dir).
    try {
      const n = 200;
      const full = commitMs(dir, "FULL", n);
      const normal = commitMs(dir, "NORMAL", n);
      report.add({
        name: "commit_p50_normal",
        value: percentile(normal, 50),
        unit: "ms",
        ref: { name: "synchronous=FULL", value: percentile(full, 50) },
        samples: n,
      });
      report.add({
        name: "commit_worst_normal",
        value: max(normal),
        unit: "ms",
        ref: { name: "synchronous=FULL", value: max(full) },
        samples: n,
      });
    } finally {
      removeDir(dir);
    }
    report.note(
      `${ROUNDS} rounds of a ${STEPS}-step build (about ${2 * STEPS} journal commits each), status() back to back meanwhile, then ${IDLE_MS} ms idle`,
    );
    console.log(`  -> ${report.write({ busyMs: busy, idleMs: idle })}`);
  } finally {
    await builder.stop();
  }
});
