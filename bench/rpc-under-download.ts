// rpc-under-download: worst and p99 status() latency while ensurepresent pulls 1 GiB
// from a local file server, against the same status() calls with no download running.
// Targets: p99 ≤ 2× idle; worst ≤ 20 ms.
//
// Each download has a fresh builder (so the file is not cached yet) and measures: idle,
// download, idle. status() is called one at a time on a keep-alive connection, paced
// every PACE_MS, from the benchmark process; the builder and the file server run in
// their own processes.
//
// Each round also downloads the file once more with the bare node:http server (a process
// that does nothing else, answering the builder's bytes) polled instead of the builder,
// and idle: on a machine the download keeps busy its latency rises too, and the
// difference is what the download costs the builder's own event loop (informational).
// Polled in downloads of their own: calls to it between the builder's change what the
// builder's calls measure (bench/journal.ts).

import {
  atMost,
  atMostRatio,
  type BareRpcServer,
  GiB,
  main,
  makeBigFile,
  max,
  MB,
  percentile,
  Report,
  RpcConn,
  sleep,
  startBareRpcServer,
  startBuilder,
  startFileServer,
  STATUS_BODY,
  tempDir,
} from "./lib.js";

/** Rounds of two downloads: one with the builder polled, one with the bare server. */
const ROUNDS = 2;
const IDLE_MS = 2000;
const PACE_MS = 5;

/** Call status() every PACE_MS until `until` resolves (or for `ms`); latencies in ms. */
async function sampleStatus(conn: RpcConn, stop: Promise<unknown> | number): Promise<number[]> {
  const out: number[] = [];
  let done = false;
  const end = typeof stop === "number" ? Date.now() + stop : Infinity;
  if (typeof stop !== "number") void stop.finally(() => (done = true));
  while (!done && Date.now() < end) {
    const t0 = performance.now();
    await conn.post(STATUS_BODY);
    const ms = performance.now() - t0;
    out.push(ms);
    await sleep(Math.max(0, PACE_MS - ms));
  }
  return out;
}

await main("rpc-under-download", async () => {
  const report = new Report("rpc-under-download");
  const dir = tempDir("download");
  const file = makeBigFile(dir);
  const server = await startFileServer(dir, report);
  try {
    const url = `${server.url}/big.bin`;
    const polled = {
      ours: { idle: [] as number[], during: [] as number[] },
      bare: { idle: [] as number[], during: [] as number[] },
    };
    const downloads: number[] = [];
    let bareServer: BareRpcServer | null = null;
    try {
      for (let round = 0; round < ROUNDS; round++) {
        const order = round % 2 === 0 ? (["ours", "bare"] as const) : (["bare", "ours"] as const);
        for (const who of order) {
          const builder = await startBuilder({
            download: { max_size: "2G", total_timeout: 600 },
            cache: { max_size: "10G", min_free: "1G" },
          });
          try {
            const fetcher = new RpcConn(builder.url);
            // The bare server answers with the builder's own bytes for an idle status().
            bareServer ??= await startBareRpcServer(
              await fetcher.post(STATUS_BODY),
              Buffer.alloc(0),
            );
            const conn = new RpcConn(who === "ours" ? builder.url : bareServer.url);
            await sampleStatus(conn, 300); // warm-up, not counted
            polled[who].idle.push(...(await sampleStatus(conn, IDLE_MS)));
            const t0 = performance.now();
            const download = fetcher.call("ensurepresent", file.sha1, url, "", "");
            polled[who].during.push(...(await sampleStatus(conn, download)));
            const result = await download;
            downloads.push(performance.now() - t0);
            if (JSON.stringify(result) !== JSON.stringify([true, "Download"])) {
              throw new Error(`ensurepresent answered ${JSON.stringify(result)}`);
            }
            polled[who].idle.push(...(await sampleStatus(conn, IDLE_MS)));
            conn.close();
            fetcher.close();
          } finally {
            await builder.stop();
          }
        }
      }
    } finally {
      await bareServer?.stop();
    }
    const { idle, during } = polled.ours;
    const ref = "idle (no download)";
    const p99 = percentile(during, 99);
    const idleP99 = percentile(idle, 99);
    report.add({
      name: "status.p50",
      value: percentile(during, 50),
      unit: "ms",
      ref: { name: ref, value: percentile(idle, 50) },
      samples: during.length,
    });
    report.add({
      name: "status.p99",
      value: p99,
      unit: "ms",
      ref: { name: ref, value: idleP99 },
      target: atMostRatio(p99 / idleP99, 2),
      samples: during.length,
    });
    const worst = max(during);
    report.add({
      name: "status.worst",
      value: worst,
      unit: "ms",
      ref: { name: ref, value: max(idle) },
      target: atMost(worst, 20, "ms"),
      samples: during.length,
    });
    report.add({
      name: "bare_server.status.p99",
      value: percentile(polled.bare.during, 99),
      unit: "ms",
      ref: { name: "the bare server idle", value: percentile(polled.bare.idle, 99) },
      samples: polled.bare.during.length,
    });
    const mbps = downloads.map((ms) => file.size / MB / (ms / 1000));
    report.note(
      `${downloads.length} downloads of ${file.size / GiB} GiB from ${server.kind}: ` +
        `${mbps.map((v) => v.toFixed(0)).join(", ")} MB/s; status() every ${PACE_MS} ms; ` +
        `${during.length} samples during downloads, ${idle.length} idle; the bare server polled in downloads of its own`,
    );
    console.log(`  -> ${report.write({ downloadMs: downloads, server: server.kind })}`);
  } finally {
    await server.stop();
  }
});
