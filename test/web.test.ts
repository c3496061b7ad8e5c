// The web surface through the real server: the JSON API while a real script build runs
// and a slow download is in flight, downloads in status(), drain (also across a
// restart), /readyz with each reason, and authentication on everything but /healthz.
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import {
  makeBuilderDirs,
  startBuilderProcess,
  startTestBuilder,
  type TestBuilder,
} from "../harness/builder.js";
import { RpcFault, type RpcClient } from "../harness/client.js";
import { eventually, makeTarball, putInCache, sha1, status } from "../harness/fixtures.js";
import { startLibrarian, type Librarian } from "../harness/librarian.js";

interface Json {
  [key: string]: unknown;
}

async function getJson(
  url: string,
  init: RequestInit = {},
): Promise<{ status: number; body: Json }> {
  const res = await fetch(url, init);
  const text = await res.text();
  assert.match(res.headers.get("content-type") ?? "", /^application\/json/, `${url}: ${text}`);
  return { status: res.status, body: JSON.parse(text) as Json };
}

/** GET and expect 200 JSON. */
async function ok(url: string): Promise<Json> {
  const r = await getJson(url);
  assert.equal(r.status, 200, `${url}: ${JSON.stringify(r.body)}`);
  return r.body;
}

/** Start a download that takes a few seconds; resolves with its ensurepresent answer. */
function slowDownload(
  client: RpcClient,
  lib: Librarian,
  name: string,
  urlOf: (url: string) => string = (u) => u,
): { sha1: string; size: number; done: Promise<unknown> } {
  const body = Buffer.alloc(192 * 1024, name);
  const url = lib.add(`/${name}`, body, { kind: "slow", bytesPerChunk: 8192, intervalMs: 100 });
  return {
    sha1: sha1(body),
    size: body.length,
    done: client.call("ensurepresent", sha1(body), urlOf(url), "", ""),
  };
}

describe("web surface", () => {
  let b: TestBuilder;
  let lib: Librarian;
  let tree: string;
  before(async () => {
    b = await startTestBuilder();
    lib = await startLibrarian();
    tree = await putInCache(
      b.client,
      lib,
      makeTarball({
        "steps.sh": 'for i in 1 2 3 4 5 6; do echo "line $i"; sleep 0.4; done\n',
      }),
    );
  });
  after(async () => {
    await b?.stop();
    await lib?.close();
  });

  test("a download in progress: in status() as an extra key, in the API without credentials", async () => {
    const dl = slowDownload(b.client, lib, "slow-web", (u) =>
      u.replace("http://", "http://fetcher:librarian-pw@"),
    );
    let seen: Json[] = [];
    await eventually("the download shows bytes", async () => {
      seen = (await ok(`${b.url}/api/v1/downloads`))["downloads"] as Json[];
      return seen.length === 1 && (seen[0]!["bytes"] as number) > 0;
    });
    const first = seen[0]!;
    assert.equal(first["sha1"], dl.sha1);
    assert.equal(first["total"], dl.size);
    assert.match(first["url"] as string, /^http:\/\/127\.0\.0\.1:\d+\/slow-web$/);
    assert.equal(typeof first["rate_bytes_per_second"], "number");

    // The manager's view: the protocol's keys, plus downloads as {sha1, bytes, total}.
    const s = await status(b.client);
    assert.equal(s["builder_status"], "BuilderStatus.IDLE");
    const wire = s["downloads"] as Json[];
    assert.equal(wire.length, 1);
    assert.deepEqual(Object.keys(wire[0]!).sort(), ["bytes", "sha1", "total"]);
    assert.equal(wire[0]!["sha1"], dl.sha1);
    assert.equal(wire[0]!["total"], dl.size);

    // The byte count rises while it runs.
    const before = first["bytes"] as number;
    await eventually("the byte count rises", async () => {
      const now = (await ok(`${b.url}/api/v1/downloads`))["downloads"] as Json[];
      return now.length === 1 && (now[0]!["bytes"] as number) > before;
    });
    for (const path of ["/", "/api/v1/downloads", "/api/v1/status", "/metrics"]) {
      const text = await (await fetch(`${b.url}${path}`)).text();
      assert.doesNotMatch(text, /librarian-pw|fetcher/, `${path} shows the URL's credentials`);
    }
    assert.deepEqual(await dl.done, [true, "Download"]);
    assert.deepEqual((await ok(`${b.url}/api/v1/downloads`))["downloads"], []);
    assert.equal("downloads" in (await status(b.client)), false, "no key once nothing downloads");
  });

  test("a running build: state, step, the log followed by offset, then the history", async () => {
    const reply = await b.client.call(
      "build",
      "WEB-1",
      "script",
      tree,
      {},
      {
        steps: [
          { name: "first", run: "sh steps.sh" },
          { name: "second", run: "echo second step done" },
        ],
      },
    );
    assert.deepEqual(reply, ["BuilderStatus.BUILDING", "WEB-1"]);
    const s = await ok(`${b.url}/api/v1/status`);
    assert.equal(s["state"], "BUILDING");
    const build = s["build"] as Json;
    assert.equal(build["build_id"], "WEB-1");
    assert.equal(build["type"], "script");
    assert.equal(build["result"], null);
    const seq = build["seq"] as number;
    assert.ok(Number.isInteger(seq));

    // Follow the log from offset 0 until it is complete: every line arrives once, in order.
    let offset = 0;
    let text = "";
    const steps = new Set<string>();
    for (;;) {
      const chunk = await ok(`${b.url}/api/v1/builds/${seq}/log?offset=${offset}&max=64`);
      assert.equal(chunk["offset"], offset);
      text += chunk["text"] as string;
      offset = chunk["next_offset"] as number;
      const step = ((await ok(`${b.url}/api/v1/status`))["build"] as Json | null)?.["step"];
      if (typeof step === "string") steps.add(step);
      if (chunk["complete"] === true && offset === chunk["size"]) break;
      await new Promise((r) => setTimeout(r, 100));
    }
    for (let i = 1; i <= 6; i++) assert.equal(text.split(`line ${i}\n`).length, 2, `line ${i}`);
    assert.match(text, /second step done/);
    assert.ok(steps.has("first"), `steps seen: ${[...steps].join(", ")}`);

    const done = await ok(`${b.url}/api/v1/status`);
    assert.equal(done["state"], "WAITING");
    assert.equal((done["build"] as Json)["result"], "OK");
    const current = await ok(`${b.url}/api/v1/builds/current`);
    assert.equal(current["seq"], seq);
    assert.equal(current["result"], "OK");
    await b.client.call("clean");

    const history = (await ok(`${b.url}/api/v1/builds?limit=1`))["builds"] as Json[];
    assert.equal(history[0]!["build_id"], "WEB-1");
    assert.equal(history[0]!["result"], "OK");
    assert.equal(history[0]!["cleaned"], true);
    assert.ok((history[0]!["duration_seconds"] as number) >= 2);
    const gone = await getJson(`${b.url}/api/v1/builds/${seq}/log`);
    assert.equal(gone.status, 404);
  });

  test("bad parameters are refused, saying what would be right", async () => {
    const cases: [string, number, RegExp][] = [
      ["/api/v1/builds?limit=0", 400, /limit must be a whole number from 1 to 1000, not "0"/],
      ["/api/v1/builds?limit=1&limit=2", 400, /limit must be given once/],
      ["/api/v1/builds/x1", 400, /named by its seq .* or "current", not "x1"/],
      ["/api/v1/builds/current/log?max=0", 404, /no current build/],
      ["/api/v1/nothing", 404, /no such endpoint: GET \/api\/v1\/nothing; docs\/api.md/],
      ["/api/v1/builds/%E0%A4%A", 400, /./],
    ];
    for (const [path, code, message] of cases) {
      const r = await getJson(`${b.url}${path}`);
      assert.equal(r.status, code, path);
      assert.match((r.body["error"] as Json)["message"] as string, message, path);
    }
  });

  test("what a build names itself is escaped on the page", async () => {
    const id = "<img src=x onerror=alert(1)>&";
    await b.client.call("build", id, "script", tree, {}, { steps: [{ name: "<b>", run: "true" }] });
    await eventually(
      "the build ends",
      async () => (await status(b.client))["builder_status"] === "BuilderStatus.WAITING",
    );
    const page = await (await fetch(`${b.url}/`)).text();
    assert.ok(page.includes("&lt;img src=x onerror=alert(1)&gt;&amp;"), "the id, escaped");
    assert.ok(!page.includes("<img"), "no markup from the build");
    assert.ok(!page.includes("<b>"), "no markup from a step name");
    await b.client.call("clean");
  });

  test("drain: build() is refused with a fault that says so, /readyz says why; undrain", async () => {
    const drained = await getJson(`${b.url}/api/v1/drain`, { method: "POST" });
    assert.equal(drained.status, 200);
    assert.equal(drained.body["draining"], true);
    await assert.rejects(
      b.client.call("build", "WEB-D", "script", tree, {}, { steps: [{ name: "x", run: "true" }] }),
      (err: unknown) =>
        err instanceof RpcFault &&
        err.faultCode === 8002 &&
        /^Builder is draining: /.test(err.faultString),
    );
    const ready = await getJson(`${b.url}/readyz`);
    assert.equal(ready.status, 503);
    assert.deepEqual(
      (ready.body["reasons"] as Json[]).map((r) => r["code"]),
      ["draining"],
    );
    assert.equal(
      (await getJson(`${b.url}/api/v1/undrain`, { method: "POST" })).body["draining"],
      false,
    );
    assert.equal((await getJson(`${b.url}/readyz`)).status, 200);
    assert.deepEqual(
      await b.client.call(
        "build",
        "WEB-U",
        "script",
        tree,
        {},
        { steps: [{ name: "x", run: "true" }] },
      ),
      ["BuilderStatus.BUILDING", "WEB-U"],
    );
    await eventually(
      "the build ends",
      async () => (await status(b.client))["builder_status"] === "BuilderStatus.WAITING",
    );
    await b.client.call("clean");
  });

  test("a POST from another site's page is refused", async () => {
    const r = await getJson(`${b.url}/api/v1/drain`, {
      method: "POST",
      headers: { origin: "http://evil.example" },
    });
    assert.equal(r.status, 403);
    assert.match((r.body["error"] as Json)["message"] as string, /another origin/);
    assert.equal((await ok(`${b.url}/api/v1/status`))["draining"], false);
  });
});

describe("/readyz reasons", () => {
  test("free space below [cache] min_free", async () => {
    const b = await startTestBuilder({ cache: { min_free: "1000000G" } });
    try {
      const r = await getJson(`${b.url}/readyz`);
      assert.equal(r.status, 503);
      const [reason, ...rest] = r.body["reasons"] as Json[];
      assert.deepEqual(rest, []);
      assert.equal(reason!["code"], "disk");
      assert.match(
        reason!["message"] as string,
        /below the reserve of \d+ bytes \(\[cache\] min_free\)/,
      );
    } finally {
      await b.stop();
    }
  });

  test("a capability the builder is reserved for whose probe fails", async () => {
    const b = await startTestBuilder(
      { builder: { only_if_requires: "gpu" } },
      { capabilities: ["gpu 2 probe=false"] },
    );
    try {
      const r = await getJson(`${b.url}/readyz`);
      assert.equal(r.status, 503);
      const reasons = r.body["reasons"] as Json[];
      assert.deepEqual(
        reasons.map((x) => x["code"]),
        ["capability"],
      );
      assert.match(
        reasons[0]!["message"] as string,
        /capability gpu, which this builder is reserved for/,
      );
      const caps = (await ok(`${b.url}/api/v1/capabilities`))["capabilities"] as Json[];
      assert.equal(caps.length, 1);
      assert.equal(caps[0]!["available"], false);
      assert.notEqual(caps[0]!["reason"], "");
    } finally {
      await b.stop();
    }
  });
});

describe("drain survives a restart", () => {
  test("drained, stopped, started again: still draining until undrained", async () => {
    const dirs = makeBuilderDirs();
    const lib = await startLibrarian();
    let p = await startBuilderProcess(dirs);
    try {
      const tree = await putInCache(p.client, lib, makeTarball({ "a.txt": "a\n" }));
      await eventually(
        "the web surface answers",
        async () => (await fetch(`${p.url}/healthz`)).status === 200,
      );
      assert.equal((await getJson(`${p.url}/api/v1/drain`, { method: "POST" })).status, 200);
      assert.equal(await p.kill("SIGTERM"), 0);
      p = await startBuilderProcess(dirs);
      await eventually(
        "the web surface answers",
        async () => (await fetch(`${p.url}/healthz`)).status === 200,
      );
      assert.equal((await ok(`${p.url}/api/v1/status`))["draining"], true);
      assert.equal((await getJson(`${p.url}/readyz`)).status, 503);
      await assert.rejects(
        p.client.call("build", "R-1", "script", tree, {}, { steps: [{ name: "x", run: "true" }] }),
        /Builder is draining/,
      );
      assert.equal((await getJson(`${p.url}/api/v1/undrain`, { method: "POST" })).status, 200);
      assert.equal((await getJson(`${p.url}/readyz`)).status, 200);
    } finally {
      await p.kill("SIGTERM");
      await lib.close();
    }
  });
});

describe("web surface with [auth] password", () => {
  const password = "web-s3cret-Pw";
  const basic = `Basic ${Buffer.from(`manager:${password}`).toString("base64")}`;
  let b: TestBuilder;
  before(async () => {
    b = await startTestBuilder({ auth: { username: "manager", password } });
  });
  after(async () => b?.stop());

  const paths = [
    "/",
    "/assets/page.js",
    "/assets/page.css",
    "/metrics",
    "/readyz",
    "/api/v1/status",
    "/api/v1/builds",
    "/api/v1/builds/1",
    "/api/v1/builds/current/log",
    "/api/v1/downloads",
    "/api/v1/cache",
    "/api/v1/capabilities",
    "/no-such-page",
  ];

  test("everything but /healthz needs the credentials", async () => {
    for (const path of paths) {
      const res = await fetch(`${b.url}${path}`);
      assert.equal(res.status, 401, path);
      assert.match(res.headers.get("www-authenticate") ?? "", /^Basic realm="buildd"/, path);
    }
    for (const path of ["/api/v1/drain", "/api/v1/undrain"]) {
      const res = await fetch(`${b.url}${path}`, { method: "POST" });
      assert.equal(res.status, 401, path);
    }
    assert.equal((await fetch(`${b.url}/healthz`)).status, 200);
  });

  test("with them every path answers, and none shows a credential", async () => {
    for (const path of paths) {
      const res = await fetch(`${b.url}${path}`, { headers: { authorization: basic } });
      assert.ok(res.status === 200 || res.status === 404, `${path}: ${res.status}`);
      const text = await res.text();
      assert.ok(!text.includes(password), `${path} shows the password`);
      assert.ok(!text.includes(basic.slice(6)), `${path} shows the Authorization header`);
    }
  });
});
