// rpc: status() and echo() requests/s, server CPU per call and p50/p99 latency at
// concurrency 1, 16 and 64 with keep-alive (wrk posting a fixed XML-RPC body to /rpc;
// autocannon if wrk is not installed: bench/setup.sh installs it), against a bare
// node:http server in a child process answering the same response bytes, interleaved.
// Targets (status()): requests/s at c=16 ≥ 0.9× the bare server; server CPU per call
// ≤ 40 µs; p99 at c=64 ≤ 1.2× the bare server's.
//
// Server CPU per call: the server process's user + system CPU-seconds (all threads, from
// /proc) over the run, divided by the calls answered; it moves far less with the
// machine's load than requests/s do.
//
// BENCH_PEER_URL=http://host:port/rpc: also load a reference daemon an operator runs
// beside this one (the benchmark never installs one); BENCH_PEER_PID: its PID, for its
// CPU per call. Its figures are informational.

import { spawn, spawnSync } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import autocannon from "autocannon";
import { encodeMethodCall } from "../src/rpc/codec.js";
import {
  atLeastRatio,
  atMost,
  atMostRatio,
  cpuSecondsOf,
  loadAverage,
  main,
  median,
  percentile,
  Report,
  RpcConn,
  startBareRpcServer,
  startBuilder,
  tempDir,
  track,
} from "./lib.js";

const DURATION_S = Number(process.env["BENCH_RPC_DURATION"] ?? 4);
/** Runs of each server for the figures that have a target (status at c=16 and c=64). */
const TARGET_ROUNDS = 3;
const CONCURRENCIES = [1, 16, 64];

/** Each measure's median over several runs (the counts summed). */
function medianRun(runs: readonly LoadResult[]): LoadResult {
  const of = (pick: (r: LoadResult) => number): number => median(runs.map(pick));
  return {
    rps: of((r) => r.rps),
    p50: of((r) => r.p50),
    p99: of((r) => r.p99),
    cpuUs: of((r) => r.cpuUs),
    count: runs.reduce((n, r) => n + r.count, 0),
    bad: runs.reduce((n, r) => n + r.bad, 0),
  };
}

interface LoadResult {
  rps: number;
  p50: number;
  p99: number;
  count: number;
  bad: number;
  /** Server CPU per answered call, µs (NaN: no PID to read). */
  cpuUs: number;
}

const PEER_URL = process.env["BENCH_PEER_URL"] || null;
const PEER_PID = process.env["BENCH_PEER_PID"] ? Number(process.env["BENCH_PEER_PID"]) : null;
const HAVE_WRK = spawnSync("wrk", ["--version"]).error === undefined;
const scripts = new Map<string, string>();

/** wrk's latency figures: "950.00us", "11.38ms", "1.02s". */
function wrkMs(text: string): number {
  const m = /^([\d.]+)(us|ms|s|m)$/.exec(text);
  if (!m) return NaN;
  const n = Number(m[1]);
  return m[2] === "us" ? n / 1000 : m[2] === "ms" ? n : m[2] === "s" ? n * 1000 : n * 60_000;
}

function wrkScript(body: string): string {
  let file = scripts.get(body);
  if (file === undefined) {
    file = path.join(tempDir("wrk"), "post.lua");
    fs.writeFileSync(
      file,
      `wrk.method = "POST"\nwrk.headers["Content-Type"] = "text/xml"\nwrk.body = ${JSON.stringify(body)}\n`,
    );
    scripts.set(body, file);
  }
  return file;
}

/** One wrk run (one thread: the load generator takes as little of the two cores as it can). */
function wrk(url: string, body: string, connections: number, duration: number) {
  return new Promise<Omit<LoadResult, "cpuUs">>((resolve, reject) => {
    const args = ["-t1", `-c${connections}`, `-d${duration}s`, "--latency", "-s", wrkScript(body)];
    const child = track(spawn("wrk", [...args, `${url}`], { stdio: ["ignore", "pipe", "pipe"] }));
    let out = "";
    child.stdout!.on("data", (c: Buffer) => (out += c.toString()));
    child.stderr!.on("data", (c: Buffer) => (out += c.toString()));
    child.once("error", reject);
    child.once("close", (code) => {
      const count = Number(/(\d+) requests in/.exec(out)?.[1] ?? NaN);
      if (code !== 0 || !Number.isFinite(count)) return reject(new Error(`wrk: ${code}: ${out}`));
      const socketErrors = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/
        .exec(out)
        ?.slice(1)
        .reduce((a, b) => a + Number(b), 0);
      const non2xx = Number(/Non-2xx or 3xx responses: (\d+)/.exec(out)?.[1] ?? 0);
      resolve({
        rps: Number(/Requests\/sec:\s+([\d.]+)/.exec(out)?.[1] ?? NaN),
        p50: wrkMs(/^\s+50%\s+(\S+)/m.exec(out)?.[1] ?? ""),
        p99: wrkMs(/^\s+99%\s+(\S+)/m.exec(out)?.[1] ?? ""),
        count,
        bad: (socketErrors ?? 0) + non2xx,
      });
    });
  });
}

/** Load `url` and measure the server's CPU per answered call (when its PID is known). */
async function load(
  url: string,
  pid: number | null,
  body: string,
  connections: number,
  duration: number,
): Promise<LoadResult> {
  const cpu0 = pid === null ? 0 : cpuSecondsOf(pid);
  const r = HAVE_WRK
    ? await wrk(`${url}/rpc`, body, connections, duration)
    : await loadWithAutocannon(url, body, connections, duration);
  const cpuUs = pid === null ? NaN : ((cpuSecondsOf(pid) - cpu0) / r.count) * 1e6;
  return { ...r, cpuUs };
}

async function loadWithAutocannon(
  url: string,
  body: string,
  connections: number,
  duration: number,
  /** A GET of this path instead of POST /rpc (the web surface's JSON status). */
  getPath?: string,
) {
  const latencies: number[] = [];
  const inst = autocannon({
    url: `${url}${getPath ?? "/rpc"}`,
    ...(getPath === undefined
      ? { method: "POST" as const, body, headers: { "content-type": "text/xml" } }
      : { method: "GET" as const }),
    connections,
    duration,
  });
  inst.on("response", (_client, statusCode, _bytes, ms) => {
    if (statusCode === 200) latencies.push(ms);
  });
  const r = await inst;
  const result: Omit<LoadResult, "cpuUs"> = {
    rps: r.requests.total / r.duration,
    p50: percentile(latencies, 50),
    p99: percentile(latencies, 99),
    count: latencies.length,
    bad: r.errors + r.timeouts + r.non2xx,
  };
  return result;
}

/** Poll `check` until it holds (the web surface loads just after the builder listens). */
async function eventually(check: () => Promise<boolean>, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check().catch(() => false))) {
    if (Date.now() > deadline) throw new Error("the builder's web surface never answered /healthz");
    await new Promise((r) => setTimeout(r, 50));
  }
}

await main("rpc", async () => {
  const report = new Report("rpc");
  const builder = await startBuilder();
  const bodies = {
    status: encodeMethodCall("status", []),
    echo: encodeMethodCall("echo", ["Hello World", 42, true]),
  };
  // The bare server answers with exactly the bytes the builder answers (IDLE status).
  const conn = new RpcConn(builder.url);
  const statusOut = await conn.post(bodies.status);
  const echoOut = await conn.post(bodies.echo);
  conn.close();
  const bare = await startBareRpcServer(statusOut, echoOut);
  const bareUrl = bare.url;
  try {
    const check = new RpcConn(bareUrl);
    if (!(await check.post(bodies.status)).equals(statusOut)) {
      throw new Error("the bare server does not answer the builder's bytes");
    }
    check.close();

    const barePid = bare.pid;
    // Warm both up (JIT, connection setup) before anything counts.
    await load(builder.url, null, bodies.status, 16, 1);
    await load(bareUrl, null, bodies.status, 16, 1);

    const raw: Record<string, unknown> = {};
    const loads: string[] = [loadAverage().text];
    let turn = 0;
    for (const method of ["status", "echo"] as const) {
      for (const c of CONCURRENCIES) {
        // Interleaved: the two servers run back to back, which one first alternating.
        // The figures with a target run TARGET_ROUNDS times and each side reports its
        // median per measure: on this kind of shared machine one 4 s run of either
        // server moved by a third from one run to the next.
        const rounds = method === "status" && c !== 1 ? TARGET_ROUNDS : 1;
        const oursRuns: LoadResult[] = [];
        const refRuns: LoadResult[] = [];
        for (let round = 0; round < rounds; round++) {
          if (turn++ % 2 === 0) {
            oursRuns.push(await load(builder.url, builder.pid, bodies[method], c, DURATION_S));
            refRuns.push(await load(bareUrl, barePid, bodies[method], c, DURATION_S));
          } else {
            refRuns.push(await load(bareUrl, barePid, bodies[method], c, DURATION_S));
            oursRuns.push(await load(builder.url, builder.pid, bodies[method], c, DURATION_S));
          }
        }
        const ours = medianRun(oursRuns);
        const ref = medianRun(refRuns);
        let peer: LoadResult | null = null;
        if (PEER_URL !== null && method === "status") {
          peer = await load(
            PEER_URL.replace(/\/rpc\/?$/, ""),
            PEER_PID,
            bodies[method],
            c,
            DURATION_S,
          );
        }
        loads.push(loadAverage().text);
        raw[`${method}.c${c}`] = {
          ours,
          bare: ref,
          oursRuns,
          bareRuns: refRuns,
          ...(peer ? { peer } : {}),
        };
        if (ours.bad > 0 || ref.bad > 0) {
          report.note(`${method} c=${c}: errors/non-2xx: ours ${ours.bad}, bare ${ref.bad}`);
        }
        const refName = "bare node:http";
        const isStatus = method === "status";
        report.add({
          name: `${method}.c${c}.rps`,
          value: ours.rps,
          unit: "req/s",
          ref: { name: refName, value: ref.rps },
          target: isStatus && c === 16 ? atLeastRatio(ours.rps / ref.rps, 0.9) : null,
          samples: ours.count,
        });
        report.add({
          name: `${method}.c${c}.cpu_per_call`,
          value: ours.cpuUs,
          unit: "µs",
          ref: { name: refName, value: ref.cpuUs },
          target: isStatus && c === 16 ? atMost(ours.cpuUs, 40, "µs") : null,
          samples: ours.count,
        });
        report.add({
          name: `${method}.c${c}.p50`,
          value: ours.p50,
          unit: "ms",
          ref: { name: refName, value: ref.p50 },
        });
        report.add({
          name: `${method}.c${c}.p99`,
          value: ours.p99,
          unit: "ms",
          ref: { name: refName, value: ref.p99 },
          target: isStatus && c === 64 ? atMostRatio(ours.p99 / ref.p99, 1.2) : null,
        });
        if (peer !== null) {
          report.add({
            name: `${method}.c${c}.rps_vs_peer`,
            value: ours.rps,
            unit: "req/s",
            ref: { name: `the peer daemon at ${PEER_URL}`, value: peer.rps },
            target: null,
            samples: peer.count,
          });
          if (PEER_PID !== null) {
            report.add({
              name: `${method}.c${c}.cpu_per_call_vs_peer`,
              value: ours.cpuUs,
              unit: "µs",
              ref: { name: "the peer daemon", value: peer.cpuUs },
              target: null,
            });
          }
        }
      }
    }
    // The same builder's status through Express (GET /api/v1/status, the web surface)
    // against the fast path, interleaved: why /rpc stays in front of Express. The JSON
    // answer is cheaper to encode than the XML one, so this flatters Express if anything.
    await eventually(async () => (await fetch(`${builder.url}/healthz`)).status === 200);
    await loadWithAutocannon(builder.url, "", 16, 1, "/api/v1/status");
    const viaExpress = await loadWithAutocannon(builder.url, "", 16, DURATION_S, "/api/v1/status");
    const viaFastPath = await loadWithAutocannon(builder.url, bodies.status, 16, DURATION_S);
    raw["status.express.c16"] = { express: viaExpress, fastPath: viaFastPath };
    if (viaExpress.bad > 0) report.note(`status via Express: errors/non-2xx ${viaExpress.bad}`);
    report.add({
      name: "status.c16.express.rps",
      value: viaExpress.rps,
      unit: "req/s",
      ref: { name: "the fast path (POST /rpc), same builder", value: viaFastPath.rps },
      target: null,
      samples: viaExpress.count,
    });
    report.note(
      `${HAVE_WRK ? "wrk (one thread)" : "autocannon in the benchmark process (wrk is not installed)"}; ` +
        `builder (from dist/) and bare server in their own processes; ${DURATION_S} s per run, status() at c=16 and c=64 the median of ${TARGET_ROUNDS} runs per server; ` +
        `the Express comparison with autocannon; load average ${loads.join(" → ")}`,
    );
    console.log(`  -> ${report.write({ durationSeconds: DURATION_S, raw })}`);
  } finally {
    await bare.stop();
    await builder.stop();
  }
});
