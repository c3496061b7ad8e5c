// rpc: status() and echo() requests/s and p50/p99 latency at concurrency 1, 16 and 64
// with keep-alive (autocannon posting a fixed XML-RPC body to /rpc), against a bare
// node:http server in a child process answering the same response bytes.
// Targets: requests/s ≥ 0.6× the bare server; p99 at c=64 ≤ 10 ms.
//
// autocannon's own latency histogram has 1 ms resolution, so latencies are taken from
// its per-response event (milliseconds as a float) instead.

import { spawn } from "node:child_process";
import autocannon from "autocannon";
import { encodeMethodCall } from "../src/rpc/codec.js";
import {
  atLeastRatio,
  atMost,
  firstLine,
  main,
  onCleanup,
  percentile,
  Report,
  RpcConn,
  startBuilder,
  stopChild,
  track,
} from "./lib.js";

const DURATION_S = Number(process.env["BENCH_RPC_DURATION"] ?? 3);
const CONCURRENCIES = [1, 16, 64];

// The reference: answers every POST with the fixed bytes for its method, after reading
// the request body (as any server must). Nothing else.
const BARE_SERVER = `
const http = require("node:http");
const status = Buffer.from(process.argv[1], "base64");
const echo = Buffer.from(process.argv[2], "base64");
const srv = http.createServer((req, res) => {
  const chunks = [];
  req.on("data", (c) => chunks.push(c));
  req.on("end", () => {
    const body = Buffer.concat(chunks).toString("latin1");
    const out = body.includes("<methodName>status<") ? status : echo;
    res.writeHead(200, { "content-type": "text/xml; charset=utf-8", "content-length": out.length });
    res.end(out);
  });
});
srv.keepAliveTimeout = 60000;
srv.listen(0, "127.0.0.1", () => process.stdout.write(srv.address().port + "\\n"));
`;

interface LoadResult {
  rps: number;
  p50: number;
  p99: number;
  count: number;
  bad: number;
}

async function load(
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
  const result: LoadResult = {
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
  const bare = track(
    spawn(
      process.execPath,
      ["-e", BARE_SERVER, statusOut.toString("base64"), echoOut.toString("base64")],
      { stdio: ["ignore", "pipe", "inherit"], detached: true },
    ),
    true,
  );
  onCleanup("stop the bare server", () => stopChild(bare));
  const bareUrl = `http://127.0.0.1:${await firstLine(bare)}`;
  try {
    const check = new RpcConn(bareUrl);
    if (!(await check.post(bodies.status)).equals(statusOut)) {
      throw new Error("the bare server does not answer the builder's bytes");
    }
    check.close();

    // Warm both up (JIT, connection setup) before anything counts.
    await load(builder.url, bodies.status, 16, 1);
    await load(bareUrl, bodies.status, 16, 1);

    const raw: Record<string, unknown> = {};
    let turn = 0;
    for (const method of ["status", "echo"] as const) {
      for (const c of CONCURRENCIES) {
        // Interleaved: the two servers run back to back, which one first alternating.
        let ours: LoadResult;
        let ref: LoadResult;
        if (turn++ % 2 === 0) {
          ours = await load(builder.url, bodies[method], c, DURATION_S);
          ref = await load(bareUrl, bodies[method], c, DURATION_S);
        } else {
          ref = await load(bareUrl, bodies[method], c, DURATION_S);
          ours = await load(builder.url, bodies[method], c, DURATION_S);
        }
        raw[`${method}.c${c}`] = { ours, bare: ref };
        if (ours.bad > 0 || ref.bad > 0) {
          report.note(`${method} c=${c}: errors/non-2xx: ours ${ours.bad}, bare ${ref.bad}`);
        }
        const refName = "bare node:http";
        report.add({
          name: `${method}.c${c}.rps`,
          value: ours.rps,
          unit: "req/s",
          ref: { name: refName, value: ref.rps },
          target: atLeastRatio(ours.rps / ref.rps, 0.6),
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
          target: c === 64 ? atMost(ours.p99, 10, "ms") : null,
        });
      }
    }
    // The same builder's status through Express (GET /api/v1/status, the web surface)
    // against the fast path, interleaved: why /rpc stays in front of Express. The JSON
    // answer is cheaper to encode than the XML one, so this flatters Express if anything.
    await eventually(async () => (await fetch(`${builder.url}/healthz`)).status === 200);
    await load(builder.url, "", 16, 1, "/api/v1/status");
    const viaExpress = await load(builder.url, "", 16, DURATION_S, "/api/v1/status");
    const viaFastPath = await load(builder.url, bodies.status, 16, DURATION_S);
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
      `autocannon in the benchmark process, builder and bare server in their own processes; ${DURATION_S} s per run`,
    );
    console.log(`  -> ${report.write({ durationSeconds: DURATION_S, raw })}`);
  } finally {
    await stopChild(bare);
    await builder.stop();
  }
});
