// rpc-under-download: worst and p99 status() latency while ensurepresent pulls 1 GiB
// from a local file server, against the same status() calls with no download running.
// Targets: p99 ≤ 2× idle; worst ≤ 20 ms.
//
// Each round starts a fresh builder (so the file is not cached yet) and measures: idle,
// download, idle. status() is called one at a time on a keep-alive connection, paced
// every PACE_MS, from the benchmark process; the builder and the file server run in
// their own processes.
//
// Beside each call to the builder, the same call goes to the bare node:http server (a
// process that does nothing else, answering the builder's bytes), idle and during the
// download alike: on a machine the download keeps busy, its latency rises too, and the
// difference between the two is what the download costs the builder's own event loop
// (informational).

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

const ROUNDS = 2;
const IDLE_MS = 2000;
const PACE_MS = 5;

interface Samples {
  readonly ours: number[];
  readonly bare: number[];
}

/**
 * Call status() on the builder, then on the bare server, every PACE_MS until `stop`
 * resolves (or for `stop` ms); latencies in ms.
 */
async function sampleStatus(
  conn: RpcConn,
  bare: RpcConn,
  stop: Promise<unknown> | number,
): Promise<Samples> {
  const out: Samples = { ours: [], bare: [] };
  let done = false;
  const end = typeof stop === "number" ? Date.now() + stop : Infinity;
  if (typeof stop !== "number") void stop.finally(() => (done = true));
  while (!done && Date.now() < end) {
    const t0 = performance.now();
    await conn.post(STATUS_BODY);
    const t1 = performance.now();
    await bare.post(STATUS_BODY);
    out.ours.push(t1 - t0);
    out.bare.push(performance.now() - t1);
    await sleep(Math.max(0, PACE_MS - (t1 - t0)));
  }
  return out;
}

function add(to: Samples, from: Samples): void {
  to.ours.push(...from.ours);
  to.bare.push(...from.bare);
}

await main("rpc-under-download", async () => {
  const report = new Report("rpc-under-download");
  const dir = tempDir("download");
  const file = makeBigFile(dir);
  const server = await startFileServer(dir, report);
  try {
    const url = `${server.url}/big.bin`;
    const idleSamples: Samples = { ours: [], bare: [] };
    const duringSamples: Samples = { ours: [], bare: [] };
    const downloads: number[] = [];
    let bareServer: BareRpcServer | null = null;
    try {
      for (let round = 0; round < ROUNDS; round++) {
        const builder = await startBuilder({
          download: { max_size: "2G", total_timeout: 600 },
          cache: { max_size: "10G", min_free: "1G" },
        });
        try {
          const conn = new RpcConn(builder.url);
          const fetcher = new RpcConn(builder.url);
          // The bare server answers with the builder's own bytes for an idle status().
          bareServer ??= await startBareRpcServer(await conn.post(STATUS_BODY), Buffer.alloc(0));
          const bare = new RpcConn(bareServer.url);
          await sampleStatus(conn, bare, 300); // warm-up, not counted
          add(idleSamples, await sampleStatus(conn, bare, IDLE_MS));
          const t0 = performance.now();
          const download = fetcher.call("ensurepresent", file.sha1, url, "", "");
          add(duringSamples, await sampleStatus(conn, bare, download));
          const result = await download;
          downloads.push(performance.now() - t0);
          if (JSON.stringify(result) !== JSON.stringify([true, "Download"])) {
            throw new Error(`ensurepresent answered ${JSON.stringify(result)}`);
          }
          add(idleSamples, await sampleStatus(conn, bare, IDLE_MS));
          conn.close();
          fetcher.close();
          bare.close();
        } finally {
          await builder.stop();
        }
      }
    } finally {
      await bareServer?.stop();
    }
    const idle = idleSamples.ours;
    const during = duringSamples.ours;
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
    const bareP99 = percentile(duringSamples.bare, 99);
    report.add({
      name: "bare_server.status.p99",
      value: bareP99,
      unit: "ms",
      ref: { name: "the bare server idle", value: percentile(idleSamples.bare, 99) },
      samples: duringSamples.bare.length,
    });
    const mbps = downloads.map((ms) => file.size / MB / (ms / 1000));
    report.note(
      `${ROUNDS} downloads of ${file.size / GiB} GiB from ${server.kind}: ` +
        `${mbps.map((v) => v.toFixed(0)).join(", ")} MB/s; status() every ${PACE_MS} ms; ` +
        `${during.length} samples during downloads, ${idle.length} idle`,
    );
    console.log(`  -> ${report.write({ downloadMs: downloads, server: server.kind })}`);
  } finally {
    await server.stop();
  }
});
