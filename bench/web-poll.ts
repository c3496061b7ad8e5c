// web-poll: status() latency on the fast path while a person's page and a Prometheus
// scraper poll the web surface once a second each (GET / and GET /metrics, as a browser
// tab left open and a scrape interval of 1 s would), against the same status() calls
// with nobody polling, interleaved in rounds. Target: the polls cost status() nothing
// measurable — p99 ≤ 1.1× and worst ≤ 20 ms.

import http from "node:http";
import {
  addLatencyFigures,
  main,
  percentile,
  Report,
  RpcConn,
  sleep,
  startBuilder,
  STATUS_BODY,
} from "./lib.js";

const ROUNDS = 4;
const ROUND_MS = 5000;
const PACE_MS = 5;
const POLL_MS = 1000;

function get(url: string): Promise<void> {
  return new Promise((resolve, reject) => {
    http
      .get(url, { agent: false }, (res) => {
        res.resume();
        res.on("end", () => resolve());
      })
      .on("error", reject);
  });
}

/** status() every PACE_MS for `ms`; the latency of each call. */
async function sample(conn: RpcConn, ms: number): Promise<number[]> {
  const out: number[] = [];
  const end = Date.now() + ms;
  while (Date.now() < end) {
    const t0 = performance.now();
    await conn.post(STATUS_BODY);
    const took = performance.now() - t0;
    out.push(took);
    await sleep(Math.max(0, PACE_MS - took));
  }
  return out;
}

await main("web-poll", async () => {
  const report = new Report("web-poll");
  const builder = await startBuilder();
  const conn = new RpcConn(builder.url);
  try {
    // The web surface loads a moment after the builder listens.
    for (let i = 0; i < 100; i++) {
      const res = await fetch(`${builder.url}/healthz`);
      if (res.ok) break;
      await sleep(100);
    }
    const quiet: number[] = [];
    const polled: number[] = [];
    let polls = 0;
    for (let round = 0; round < ROUNDS; round++) {
      quiet.push(...(await sample(conn, ROUND_MS)));
      let polling = true;
      const poller = (async () => {
        while (polling) {
          await Promise.all([get(`${builder.url}/`), get(`${builder.url}/metrics`)]);
          polls++;
          await sleep(POLL_MS);
        }
      })();
      polled.push(...(await sample(conn, ROUND_MS)));
      polling = false;
      await poller;
    }
    addLatencyFigures(report, {
      name: "status_while_polled",
      loaded: polled,
      unloaded: quiet,
      refName: "nobody polling",
      maxRatio: 1.1,
      worstMs: 20,
    });
    report.add({
      name: "status_p50_while_polled",
      value: percentile(polled, 50),
      unit: "ms",
      ref: { name: "nobody polling", value: percentile(quiet, 50) },
      samples: polled.length,
    });
    report.note(
      `${ROUNDS} rounds of ${ROUND_MS} ms quiet then ${ROUND_MS} ms with GET / and GET /metrics every ${POLL_MS} ms (${polls} polls); status() every ${PACE_MS} ms`,
    );
    console.log(`  -> ${report.write({ quietMs: quiet, polledMs: polled })}`);
  } finally {
    conn.close();
    await builder.stop();
  }
});
