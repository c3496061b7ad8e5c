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
//
// Each round also runs the same build once more with the bare node:http server (a process
// that does nothing else) polled instead of the builder, and then idle: the build's 400
// processes keep the machine busy too, and the bare server's latency shows how much of
// the rise is the machine's (informational). Polled in builds of their own: calls to it
// between the builder's changed the builder's own figures (0.95 ms p99 became 1.9).

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
  startBareRpcServer,
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
    const polled = {
      ours: { busy: [] as number[], idle: [] as number[], url: builder.url },
      // It answers with the builder's own bytes for an idle status().
      bare: { busy: [] as number[], idle: [] as number[], url: "" },
    };
    const bareServer = await startBareRpcServer(await conn.post(STATUS_BODY), Buffer.alloc(0));
    polled.bare.url = bareServer.url;
    try {
      for (let round = 1; round <= ROUNDS; round++) {
        const order = round % 2 === 1 ? (["ours", "bare"] as const) : (["bare", "ours"] as const);
        for (const who of order) {
          const steps = Array.from({ length: STEPS }, (_, i) => ({ name: `s${i}`, run: ["true"] }));
          await conn.call("build", `bench-journal-${round}-${who}`, "script", tree, {}, { steps });
          let finished = false;
          const ended = waitForState(builder.conn, "WAITING", 50, 300_000).then(() => {
            finished = true;
          });
          // A connection of its own for the measured calls, as a manager's poll would be.
          const measured = new RpcConn(polled[who].url);
          try {
            polled[who].busy.push(...(await pollStatus(measured, () => finished)));
            await ended;
            await conn.call("clean");
            const until = performance.now() + IDLE_MS;
            polled[who].idle.push(...(await pollStatus(measured, () => performance.now() > until)));
          } finally {
            measured.close();
          }
        }
      }
    } finally {
      await bareServer.stop();
    }
    const { busy, idle } = polled.ours;
    addLatencyFigures(report, {
      name: "status_during_build",
      loaded: busy,
      unloaded: idle,
      refName: "idle builder",
      maxRatio: 2,
      worstMs: 20,
    });
    report.add({
      name: "bare_server_p99_during_build",
      value: percentile(polled.bare.busy, 99),
      unit: "ms",
      ref: { name: "the bare server, builder idle", value: percentile(polled.bare.idle, 99) },
      samples: polled.bare.busy.length,
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
      `${ROUNDS} rounds of a ${STEPS}-step build (about ${2 * STEPS} journal commits each), status() back to back meanwhile, then ${IDLE_MS} ms idle; the same again with the bare server polled`,
    );
    console.log(
      `  -> ${report.write({
        busyMs: busy,
        idleMs: idle,
        bareBusyMs: polled.bare.busy,
        bareIdleMs: polled.bare.idle,
      })}`,
    );
  } finally {
    await builder.stop();
  }
});
