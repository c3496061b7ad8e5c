// logtail: status() latency while BUILDING with a 1 GiB build log, against status() of a
// build whose log is (nearly) empty. Target: ≤ 1.1×.
//
// Two builder processes run at once: one whose `script` step writes 1 GiB to stdout and
// then sleeps, one whose step only sleeps. Once the big log has reached 1 GiB (HEAD
// /filecache/buildlog), status() calls alternate between the two builders, one at a
// time, so both see the same machine. Both builds are aborted and cleaned at the end;
// the sleeping processes carry a unique marker and are killed by PID if anything is left.

import { randomInt } from "node:crypto";
import {
  atMostRatio,
  GiB,
  main,
  median,
  onCleanup,
  percentile,
  Report,
  RpcConn,
  sleep,
  startBuilder,
  STATUS_BODY,
  waitForState,
  type BenchBuilder,
} from "./lib.js";
import { startLibrarian } from "../harness/librarian.js";
import { makeTarball, pidsWithMarker, putInCache } from "../harness/fixtures.js";
import { createClient } from "../harness/client.js";

const SAMPLES = 3000;
const WARMUP = 300;
const FILL_TIMEOUT_MS = 300_000;

async function logSize(builder: BenchBuilder): Promise<number> {
  const res = await fetch(`${builder.url}/filecache/buildlog`, { method: "HEAD" });
  if (res.status !== 200) return 0;
  return Number(res.headers.get("content-length") ?? 0);
}

/** abort() if still building, wait for WAITING, clean(). */
async function abortAndClean(builder: BenchBuilder): Promise<void> {
  const conn = new RpcConn(builder.url);
  try {
    const s = await conn.status();
    if (s["builder_status"] === "BuilderStatus.BUILDING") await conn.call("abort");
    if (s["builder_status"] !== "BuilderStatus.IDLE") {
      await waitForState(conn, "WAITING", 50, 60_000);
      await conn.call("clean");
    }
  } finally {
    conn.close();
  }
}

await main("logtail", async () => {
  const report = new Report("logtail");
  // A sleep duration no other process on the machine uses: the marker of our processes.
  const marker = `600.${randomInt(100000, 999999)}`;
  onCleanup("kill leftover build processes", () => {
    for (const pid of pidsWithMarker(`sleep ${marker}`)) {
      try {
        process.kill(pid, "SIGKILL");
      } catch {
        // gone meanwhile
      }
    }
  });
  const sections = {
    build: { log_max_size: "2G" },
    cache: { max_size: "10G", min_free: "1G" },
  };
  // startBuilder registers each builder's stop; these run before it (reverse order).
  const big = await startBuilder(sections);
  onCleanup("abort the big-log build", () => abortAndClean(big));
  const empty = await startBuilder(sections);
  onCleanup("abort the empty-log build", () => abortAndClean(empty));

  const librarian = await startLibrarian();
  const tarball = makeTarball({ x: "x" });
  let chroot = "";
  try {
    for (const b of [big, empty])
      chroot = await putInCache(createClient(b.url), librarian, tarball);
  } finally {
    await librarian.close();
  }
  const start = async (b: BenchBuilder, id: string, run: string): Promise<void> => {
    const r = await b.conn.call(
      "build",
      id,
      "script",
      chroot,
      {},
      {
        steps: [{ name: "output", run }],
      },
    );
    if (!Array.isArray(r) || r[0] !== "BuilderStatus.BUILDING") {
      throw new Error(`build() answered ${JSON.stringify(r)}`);
    }
  };
  const t0 = performance.now();
  await start(big, "bench-big-log", `head -c 1G /dev/zero | tr '\\0' x; sleep ${marker}`);
  await start(empty, "bench-empty-log", `sleep ${marker}`);

  // Wait for the big log to reach 1 GiB (and the empty build to be running its step).
  let size: number;
  while ((size = await logSize(big)) < GiB) {
    if (performance.now() - t0 > FILL_TIMEOUT_MS) {
      throw new Error(`the build log reached only ${size} bytes in ${FILL_TIMEOUT_MS} ms`);
    }
    const s = await big.conn.status();
    if (s["builder_status"] !== "BuilderStatus.BUILDING") {
      throw new Error(`the big-log build stopped: ${JSON.stringify(s)}`);
    }
    await sleep(250);
  }
  const fillS = (performance.now() - t0) / 1000;
  const emptySize = await logSize(empty);
  await sleep(500); // let the last writes settle

  const bigConn = new RpcConn(big.url);
  const emptyConn = new RpcConn(empty.url);
  const time = async (conn: RpcConn): Promise<number> => {
    const t = performance.now();
    await conn.post(STATUS_BODY);
    return performance.now() - t;
  };
  const ours: number[] = [];
  const ref: number[] = [];
  for (let i = 0; i < WARMUP + SAMPLES; i++) {
    // Interleaved, and which builder goes first alternates.
    const [a, b] = i % 2 === 0 ? [bigConn, emptyConn] : [emptyConn, bigConn];
    const ta = await time(a);
    const tb = await time(b);
    if (i < WARMUP) continue;
    ours.push(a === bigConn ? ta : tb);
    ref.push(a === bigConn ? tb : ta);
  }
  // The big builder's logtail really is the end of a 1 GiB log.
  const s = await bigConn.status();
  const tail = s["logtail"];
  if (!Buffer.isBuffer(tail) || tail.length === 0 || !/^x+$/.test(tail.toString("latin1"))) {
    throw new Error(`unexpected logtail: ${JSON.stringify(s)}`);
  }
  bigConn.close();
  emptyConn.close();

  const refName = `status() with a ${emptySize}-byte log`;
  const p50 = median(ours);
  const p99 = percentile(ours, 99);
  report.add({
    name: "status.p50",
    value: p50,
    unit: "ms",
    ref: { name: refName, value: median(ref) },
    target: atMostRatio(p50 / median(ref), 1.1),
    samples: ours.length,
  });
  report.add({
    name: "status.p99",
    value: p99,
    unit: "ms",
    ref: { name: refName, value: percentile(ref, 99) },
    target: atMostRatio(p99 / percentile(ref, 99), 1.1),
    samples: ours.length,
  });
  report.note(
    `big log ${size} bytes (${(size / GiB).toFixed(3)} GiB), written in ${fillS.toFixed(1)} s ` +
      `(${(size / 1e6 / fillS).toFixed(0)} MB/s through the builder); ${SAMPLES} calls each`,
  );
  console.log(`  -> ${report.write({ bigLogBytes: size, emptyLogBytes: emptySize, fillS })}`);
});
