// /metrics through the real server, parsed as Prometheus text: each family typed, and
// the values moving as calls are made, files downloaded and builds run.
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { startTestBuilder, type TestBuilder } from "../harness/builder.js";
import { eventually, makeTarball, putInCache, sha1, status } from "../harness/fixtures.js";
import { startLibrarian, type Librarian } from "../harness/librarian.js";

interface Sample {
  readonly name: string;
  readonly labels: Readonly<Record<string, string>>;
  readonly value: number;
}

/** Parse the text exposition format; throws on a line it does not understand. */
function parseMetrics(text: string): { samples: Sample[]; types: Map<string, string> } {
  const samples: Sample[] = [];
  const types = new Map<string, string>();
  for (const line of text.split("\n")) {
    if (line === "") continue;
    const type =
      /^# TYPE ([a-zA-Z_:][a-zA-Z0-9_:]*) (counter|gauge|histogram|summary|untyped)$/.exec(line);
    if (type) {
      types.set(type[1]!, type[2]!);
      continue;
    }
    if (line.startsWith("# HELP ")) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    assert.ok(m, `not a sample line: ${JSON.stringify(line)}`);
    const labels: Record<string, string> = {};
    const labelText = m[2] ?? "";
    const re = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)",?/gy;
    let consumed = 0;
    for (let l = re.exec(labelText); l; l = re.exec(labelText)) {
      labels[l[1]!] = l[2]!;
      consumed = re.lastIndex;
    }
    assert.equal(consumed, labelText.length, `labels of ${JSON.stringify(line)}`);
    // Go's ParseFloat, as Prometheus reads it: Inf and NaN in any case (prom-client
    // writes an event-loop lag with no samples yet as "Nan").
    const raw = m[3]!;
    const value = /^[+-]?inf$/i.test(raw)
      ? (raw.startsWith("-") ? -1 : 1) * Infinity
      : /^nan$/i.test(raw)
        ? NaN
        : Number(raw);
    assert.ok(!Number.isNaN(value) || /^nan$/i.test(raw), `value of ${JSON.stringify(line)}`);
    samples.push({ name: m[1]!, labels, value });
  }
  // Every sample belongs to a typed family (a histogram's _bucket/_sum/_count to its own).
  for (const s of samples) {
    const family = s.name.replace(/_(bucket|sum|count)$/, "");
    assert.ok(types.has(s.name) || types.get(family) === "histogram", `${s.name} has no # TYPE`);
  }
  return { samples, types };
}

describe("/metrics", () => {
  let b: TestBuilder;
  let lib: Librarian;
  before(async () => {
    b = await startTestBuilder();
    lib = await startLibrarian();
  });
  after(async () => {
    await b?.stop();
    await lib?.close();
  });

  async function scrape(): Promise<ReturnType<typeof parseMetrics>> {
    const res = await fetch(`${b.url}/metrics`);
    assert.equal(res.status, 200);
    assert.match(res.headers.get("content-type") ?? "", /^text\/plain; version=0\.0\.4/);
    return parseMetrics(await res.text());
  }
  /** The value of one sample; 0 when the series does not exist yet. */
  function value(
    m: ReturnType<typeof parseMetrics>,
    name: string,
    labels: Record<string, string> = {},
  ): number {
    const hit = m.samples.find(
      (s) =>
        s.name === name &&
        Object.keys(s.labels).length === Object.keys(labels).length &&
        Object.entries(labels).every(([k, v]) => s.labels[k] === v),
    );
    return hit?.value ?? 0;
  }

  test("every family is typed, with the process defaults", async () => {
    const m = await scrape();
    for (const [name, type] of [
      ["buildd_builds_total", "counter"],
      ["buildd_build_duration_seconds", "histogram"],
      ["buildd_builder_state", "gauge"],
      ["buildd_download_bytes_total", "counter"],
      ["buildd_download_failures_total", "counter"],
      ["buildd_cache_bytes", "gauge"],
      ["buildd_cache_entries", "gauge"],
      ["buildd_cache_evictions_total", "counter"],
      ["buildd_rpc_calls_total", "counter"],
      ["buildd_rpc_duration_seconds", "histogram"],
      ["buildd_process_cpu_seconds_total", "counter"],
      ["buildd_nodejs_heap_size_total_bytes", "gauge"],
    ]) {
      assert.equal(m.types.get(name!), type, name);
    }
    assert.equal(value(m, "buildd_builder_state", { state: "IDLE" }), 1);
    assert.equal(value(m, "buildd_builder_state", { state: "BUILDING" }), 0);
  });

  test("RPC calls by method and fault code, with their latency", async () => {
    const before = await scrape();
    for (let i = 0; i < 3; i++) await b.client.call("status");
    await assert.rejects(b.client.call("no_such_method"));
    await assert.rejects(b.client.call("status", "extra"));
    const m = await scrape();
    const calls = (labels: Record<string, string>): number =>
      value(m, "buildd_rpc_calls_total", labels) - value(before, "buildd_rpc_calls_total", labels);
    assert.equal(calls({ method: "status", fault: "none" }), 3);
    assert.equal(calls({ method: "status", fault: "8002" }), 1);
    assert.equal(calls({ method: "unknown", fault: "8001" }), 1);
    const count = (): number =>
      value(m, "buildd_rpc_duration_seconds_count", { method: "status" }) -
      value(before, "buildd_rpc_duration_seconds_count", { method: "status" });
    assert.equal(count(), 4);
    const inf = value(m, "buildd_rpc_duration_seconds_bucket", { method: "status", le: "+Inf" });
    assert.equal(inf, value(m, "buildd_rpc_duration_seconds_count", { method: "status" }));
  });

  test("downloads: bytes, failures by cause, and the cache they fill", async () => {
    const before = await scrape();
    const body = Buffer.alloc(100_000, "m");
    await putInCache(b.client, lib, body, "metrics-file");
    lib.add("/missing", Buffer.from("x"), { kind: "status", code: 404 });
    const [present] = (await b.client.call(
      "ensurepresent",
      sha1("x"),
      `${lib.url}/missing`,
      "",
      "",
    )) as [boolean, string];
    assert.equal(present, false);
    const wrong = lib.add("/wrong", Buffer.from("not what was asked for"));
    await b.client.call("ensurepresent", sha1("something else"), wrong, "", "");
    const m = await scrape();
    const delta = (name: string, labels: Record<string, string> = {}): number =>
      value(m, name, labels) - value(before, name, labels);
    assert.equal(delta("buildd_download_bytes_total"), body.length + 22);
    assert.equal(delta("buildd_download_failures_total", { cause: "http_status" }), 1);
    assert.equal(delta("buildd_download_failures_total", { cause: "digest_mismatch" }), 1);
    assert.equal(delta("buildd_cache_entries"), 1);
    assert.equal(delta("buildd_cache_bytes"), body.length);
  });

  test("builds by type and result, their duration, and the state while one runs", async () => {
    const tree = await putInCache(b.client, lib, makeTarball({ "ok.sh": "sleep 1\n" }));
    const before = await scrape();
    await b.client.call(
      "build",
      "M-1",
      "script",
      tree,
      {},
      { steps: [{ name: "s", run: "sh ok.sh" }] },
    );
    const during = await scrape();
    assert.equal(value(during, "buildd_builder_state", { state: "BUILDING" }), 1);
    assert.equal(value(during, "buildd_builder_state", { state: "IDLE" }), 0);
    await eventually(
      "the build ends",
      async () => (await status(b.client))["builder_status"] === "BuilderStatus.WAITING",
    );
    await b.client.call("clean");
    await b.client.call(
      "build",
      "M-2",
      "script",
      tree,
      {},
      { steps: [{ name: "s", run: "exit 3" }] },
    );
    await eventually(
      "the build ends",
      async () => (await status(b.client))["builder_status"] === "BuilderStatus.WAITING",
    );
    await b.client.call("clean");
    const m = await scrape();
    const delta = (name: string, labels: Record<string, string>): number =>
      value(m, name, labels) - value(before, name, labels);
    assert.equal(delta("buildd_builds_total", { type: "script", result: "OK" }), 1);
    assert.equal(delta("buildd_builds_total", { type: "script", result: "PACKAGEFAIL" }), 1);
    assert.equal(delta("buildd_build_duration_seconds_count", { type: "script" }), 2);
    assert.ok(delta("buildd_build_duration_seconds_sum", { type: "script" }) >= 1);
    // Both took well under a minute; none took under no time at all.
    assert.equal(delta("buildd_build_duration_seconds_bucket", { type: "script", le: "60" }), 2);
    assert.ok(delta("buildd_build_duration_seconds_bucket", { type: "script", le: "1" }) < 2);
    assert.equal(value(m, "buildd_builder_state", { state: "IDLE" }), 1);
  });
});
