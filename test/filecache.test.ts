// ensurepresent and /filecache through the real server and a real, misbehaving librarian.
// After every failure: the exact answer, no file under the SHA-1, no temporary left.
import assert from "node:assert/strict";
import fs from "node:fs";
import { after, before, describe, test } from "node:test";
import { startTestBuilder, type TestBuilder } from "../harness/builder.js";
import { RpcFault } from "../harness/client.js";
import {
  cacheListing,
  eventually,
  httpGet,
  makeTarball,
  putInCache,
  sha1,
  status,
  waitForState,
} from "../harness/fixtures.js";
import { startLibrarian, type Behaviour, type Librarian } from "../harness/librarian.js";
import { startScriptBuild } from "../harness/scenario.js";

describe("ensurepresent", () => {
  let b: TestBuilder;
  let lib: Librarian;
  before(async () => {
    b = await startTestBuilder({
      download: { idle_timeout: 0.5, total_timeout: 20, max_size: "1M", max_redirects: 5 },
    });
    lib = await startLibrarian();
  });
  after(async () => {
    await b.stop();
    await lib.close();
  });

  const cacheFiles = (): string[] => cacheListing(b.filecache);

  async function expectFailure(
    url: string,
    body: Buffer,
    info: string,
    creds: [string, string] = ["", ""],
  ) {
    const sum = sha1(body);
    const before = cacheFiles();
    assert.deepEqual(await b.client.call("ensurepresent", sum, url, ...creds), [false, info]);
    assert.deepEqual(cacheFiles(), before, "no file and no temporary left");
    assert.ok(!cacheFiles().includes(sum));
  }

  const failures: [string, Behaviour | "url", string][] = [
    ["404", { kind: "status", code: 404 }, "Error accessing Librarian: HTTP Error 404: Not Found"],
    [
      "500",
      { kind: "status", code: 500 },
      "Error accessing Librarian: HTTP Error 500: Internal Server Error",
    ],
    [
      "401 without credentials",
      { kind: "auth", username: "u", password: "p" },
      "Error accessing Librarian: HTTP Error 401: Unauthorized",
    ],
    [
      "a body cut off mid-way",
      { kind: "truncate", afterBytes: 1000 },
      "Error accessing Librarian: body ended after 1000 of 5000 bytes (Content-Length)",
    ],
    [
      "a Content-Length larger than the body",
      { kind: "length-lies", declared: 6000 },
      "Error accessing Librarian: body ended after 5000 of 6000 bytes (Content-Length)",
    ],
    [
      "a Content-Length smaller than the body",
      { kind: "length-lies", declared: 4000 },
      "Error accessing Librarian: body longer than its Content-Length",
    ],
    [
      "a stall (idle timeout)",
      { kind: "stall", afterBytes: 100 },
      "Error accessing Librarian: no data for 500 ms",
    ],
  ];
  for (const [name, behaviour, info] of failures) {
    test(`${name} → ${info}`, async () => {
      const body = Buffer.alloc(5000, name.length);
      const url = lib.add(`/fail-${name.replace(/\W+/g, "-")}`, body, behaviour as Behaviour);
      await expectFailure(url, body, info);
    });
  }

  test("connection refused, an unresolvable host, file:// and ftp:// and a bad URL", async () => {
    const body = Buffer.from("unreachable");
    await expectFailure(
      "http://127.0.0.1:1/x",
      body,
      "Error accessing Librarian: connection refused",
    );
    await expectFailure(
      "http://nosuch.invalid/x",
      body,
      "Error accessing Librarian: host not found: nosuch.invalid",
    );
    await expectFailure(
      "file:///etc/passwd",
      body,
      "Error accessing Librarian: unsupported URL scheme: file",
    );
    await expectFailure(
      "ftp://127.0.0.1/x",
      body,
      "Error accessing Librarian: unsupported URL scheme: ftp",
    );
    await expectFailure("", body, "Error accessing Librarian: invalid URL");
  });

  test("wrong content → digests did not match, nothing kept", async () => {
    const served = Buffer.from("not what you asked for");
    const asked = Buffer.from("what you asked for");
    const url = lib.add("/wrong", served);
    // The reference's text first (managers match on it), then both digests.
    await expectFailure(
      url,
      asked,
      `Digests did not match, removing again! (expected ${sha1(asked)}, got ${sha1(served)})`,
    );
  });

  test("a body over [download] max_size, with and without Content-Length", async () => {
    const big = Buffer.alloc(2 * 1024 * 1024, 1);
    await expectFailure(
      lib.add("/big", big),
      big,
      "Error accessing Librarian: response larger than the maximum size of 1048576 bytes",
    );
    await expectFailure(
      lib.add("/big10", big, { kind: "http10" }),
      big,
      "Error accessing Librarian: response larger than the maximum size of 1048576 bytes",
    );
  });

  test("redirect chains are followed; a loop is refused", async () => {
    const body = Buffer.from("at the end of the chain");
    const end = lib.add("/chain-end", body);
    lib.add("/chain-2", Buffer.alloc(0), { kind: "redirect", to: end });
    const start = lib.add("/chain-1", Buffer.alloc(0), {
      kind: "redirect",
      to: "/chain-2",
      code: 301,
    });
    assert.deepEqual(await b.client.call("ensurepresent", sha1(body), start, "", ""), [
      true,
      "Download",
    ]);
    lib.add("/loop-a", Buffer.alloc(0), { kind: "redirect", to: "/loop-b" });
    const loop = lib.add("/loop-b", Buffer.alloc(0), { kind: "redirect", to: "/loop-a" });
    await expectFailure(
      loop,
      Buffer.from("never"),
      "Error accessing Librarian: too many redirects (5)",
    );
  });

  test("an HTTP/1.0 librarian without Content-Length works, repeatedly, without crashing", async () => {
    for (let i = 0; i < 10; i++) {
      const body = Buffer.alloc(200_000 + i, i);
      const url = lib.add(`/http10-${i}`, body, { kind: "http10" });
      assert.deepEqual(await b.client.call("ensurepresent", sha1(body), url, "", ""), [
        true,
        "Download",
      ]);
    }
    assert.deepEqual(await b.client.call("echo", "alive"), ["alive"]);
  });

  test("No URL and Cache answers; a cached file costs no request", async () => {
    const body = Buffer.from("cache me");
    const sum = sha1(body);
    assert.deepEqual(await b.client.call("ensurepresent", sum, null, null, null), [
      false,
      "No URL",
    ]);
    const url = lib.add("/cache-me", body);
    assert.deepEqual(await b.client.call("ensurepresent", sum, url, "", ""), [true, "Download"]);
    assert.deepEqual(await b.client.call("ensurepresent", sum, url, "", ""), [true, "Cache"]);
    assert.deepEqual(await b.client.call("ensurepresent", sum, null, null, null), [true, "No URL"]);
    assert.equal(lib.requestCount("/cache-me"), 1);
    const served = Buffer.from(await (await fetch(`${b.url}/filecache/${sum}`)).arrayBuffer());
    assert.deepEqual(served, body);
  });

  test("Basic auth is sent on the first request, also with an empty username", async () => {
    const body = Buffer.from("private source");
    const url = lib.add("/private", body, {
      kind: "auth",
      username: "",
      password: "macaroon-token",
    });
    assert.deepEqual(await b.client.call("ensurepresent", sha1(body), url, "", "macaroon-token"), [
      true,
      "Download",
    ]);
    const seen = lib.requests.filter((r) => r.path === "/private");
    assert.equal(seen.length, 1, "no challenge round trip");
    assert.equal(
      seen[0]!.authorization,
      `Basic ${Buffer.from(":macaroon-token").toString("base64")}`,
    );
  });

  test("a SHA-1 that is not 40 lowercase hex digits is a fault and touches no file", async () => {
    const before = cacheFiles();
    for (const bad of [
      "../../etc/passwd",
      "/etc/passwd",
      "A".repeat(40),
      "abc",
      `${"a".repeat(40)}\n`,
    ]) {
      await assert.rejects(
        b.client.call("ensurepresent", bad, lib.add("/x", Buffer.from("x")), "", ""),
        (e: unknown) => {
          assert.ok(e instanceof RpcFault);
          assert.equal(e.faultCode, 8002);
          assert.match(
            e.faultString,
            /^ensurepresent\(\) sha1 must be 40 lowercase hexadecimal digits/,
          );
          return true;
        },
      );
    }
    assert.deepEqual(cacheFiles(), before);
    await assert.rejects(b.client.call("ensurepresent", "a".repeat(40), null, null), {
      faultCode: 8002,
      faultString: "ensurepresent() takes exactly 4 arguments (3 given)",
    });
  });

  test("ten concurrent calls for one SHA-1 share one download", async () => {
    const body = Buffer.alloc(300_000, 9);
    const url = lib.add("/shared", body, { kind: "delay", ms: 300 });
    const answers = await Promise.all(
      Array.from({ length: 10 }, () => b.client.call("ensurepresent", sha1(body), url, "", "")),
    );
    assert.equal(lib.requestCount("/shared"), 1);
    for (const a of answers) assert.equal((a as unknown[])[0], true);
  });

  test("downloads never block: status() and /filecache answer during a slow download", async () => {
    const body = Buffer.alloc(512 * 1024, 3);
    const url = lib.add("/slow", body, { kind: "slow", bytesPerChunk: 16 * 1024, intervalMs: 40 });
    const download = b.client.call("ensurepresent", sha1(body), url, "", "");
    let answered = 0;
    await eventually("download under way", () => lib.requestCount("/slow") === 1);
    while (!fs.readdirSync(b.filecache).includes(sha1(body))) {
      assert.equal((await status(b.client))["builder_status"], "BuilderStatus.IDLE");
      answered++;
      await new Promise((r) => setTimeout(r, 20));
    }
    assert.deepEqual(await download, [true, "Download"]);
    assert.ok(answered > 5, `status answered ${answered} times during the download`);
  });
});

describe("/filecache/<name>", () => {
  let b: TestBuilder;
  let lib: Librarian;
  let sum: string;
  const body = Buffer.from("0123456789abcdefghij");
  before(async () => {
    b = await startTestBuilder();
    lib = await startLibrarian();
    sum = await putInCache(b.client, lib, body);
  });
  after(async () => {
    await b.stop();
    await lib.close();
  });

  test("GET: the bytes, strong ETag, Last-Modified, Content-Length, octet-stream", async () => {
    const res = await fetch(`${b.url}/filecache/${sum}`);
    assert.equal(res.status, 200);
    assert.equal(res.headers.get("etag"), `"${sum}"`);
    assert.equal(res.headers.get("content-length"), "20");
    assert.equal(res.headers.get("content-type"), "application/octet-stream");
    assert.ok(res.headers.get("last-modified"));
    assert.equal(res.headers.get("accept-ranges"), "bytes");
    assert.deepEqual(Buffer.from(await res.arrayBuffer()), body);
  });

  test("HEAD: headers without a body", async () => {
    const res = await fetch(`${b.url}/filecache/${sum}`, { method: "HEAD" });
    assert.equal(res.status, 200);
    assert.equal(res.headers.get("content-length"), "20");
    assert.equal((await res.arrayBuffer()).byteLength, 0);
  });

  test("byte ranges: 206 with the slice, 416 past the end", async () => {
    const part = await fetch(`${b.url}/filecache/${sum}`, { headers: { range: "bytes=5-9" } });
    assert.equal(part.status, 206);
    assert.equal(part.headers.get("content-range"), "bytes 5-9/20");
    assert.equal(await part.text(), "56789");
    const past = await fetch(`${b.url}/filecache/${sum}`, { headers: { range: "bytes=100-200" } });
    assert.equal(past.status, 416);
  });

  test("conditional requests: 304 on If-None-Match and If-Modified-Since", async () => {
    const url = `${b.url}/filecache/${sum}`;
    const first = await httpGet(url);
    const lastModified = String(first.headers["last-modified"]);
    assert.equal((await httpGet(url, { "if-none-match": `"${sum}"` })).status, 304);
    assert.equal((await httpGet(url, { "if-modified-since": lastModified })).status, 304);
    assert.equal((await httpGet(url, { "if-none-match": '"other"' })).status, 200);
  });

  test("If-Range, suffix and multiple ranges; methods other than GET and HEAD", async () => {
    const url = `${b.url}/filecache/${sum}`;
    const matching = await httpGet(url, { range: "bytes=0-3", "if-range": `"${sum}"` });
    assert.equal(matching.status, 206);
    assert.equal(matching.body.toString(), "0123");
    const stale = await httpGet(url, { range: "bytes=0-3", "if-range": '"something-else"' });
    assert.equal(stale.status, 200, "If-Range naming another version: the whole file");
    assert.equal(stale.body.length, 20);
    const suffix = await httpGet(url, { range: "bytes=-5" });
    assert.equal(suffix.status, 206);
    assert.equal(suffix.body.toString(), "fghij");
    const several = await httpGet(url, { range: "bytes=0-1,5-6" });
    assert.equal(several.status, 200, "several ranges: the whole file");
    const put = await fetch(url, { method: "PUT", body: "x" });
    assert.equal(put.status, 405);
    assert.equal(put.headers.get("allow"), "GET, HEAD");
  });

  test("names that are not a SHA-1 or buildlog are 404; no path leaves the cache", async () => {
    fs.writeFileSync(`${b.filecache}/.tmp-deadbeef`, "temp");
    for (const name of [
      sum.toUpperCase(),
      "buildlog",
      "..%2F..%2Fetc%2Fpasswd",
      "%2e%2e/%2e%2e/etc/passwd",
      `${sum}%00`,
      ".tmp-deadbeef",
      "a".repeat(5000),
      `${sum}/x`,
      "0".repeat(40),
    ]) {
      const res = await fetch(`${b.url}/filecache/${name}`);
      assert.equal(res.status, 404, name.slice(0, 60));
    }
    assert.equal((await fetch(`${b.url}/filecache/../../etc/passwd`)).status, 404);
  });
});

describe("cache budget and eviction", () => {
  let b: TestBuilder;
  let lib: Librarian;
  before(async () => {
    b = await startTestBuilder({
      cache: { max_size: "100K", min_free: 0 },
      build: { kill_grace: 1 },
    });
    lib = await startLibrarian();
  });
  after(async () => {
    await b.stop();
    await lib.close();
  });

  const blob = (n: number): Buffer => Buffer.alloc(30 * 1024, n);

  test("least recently used entries go first; entries a build holds never", async () => {
    const a = await putInCache(b.client, lib, blob(1), "a");
    const bb = await putInCache(b.client, lib, blob(2), "b");
    const c = await putInCache(b.client, lib, blob(3), "c");
    // Use a, so b is now the least recently used.
    assert.deepEqual(await b.client.call("ensurepresent", a, lib.add("/a2", blob(1)), "", ""), [
      true,
      "Cache",
    ]);
    const d = await putInCache(b.client, lib, blob(4), "d");
    const files = fs.readdirSync(b.filecache);
    assert.ok(!files.includes(bb), "b was evicted");
    for (const kept of [a, c, d]) assert.ok(files.includes(kept));

    // A build holds its tarball (a small real one) while it runs: it must survive.
    const tree = await putInCache(b.client, lib, makeTarball({ x: "x" }), "tree");
    await startScriptBuild(b.client, "HOLD-1", tree, {
      steps: [{ name: "wait", run: "sleep 4251.1" }],
    });
    for (let i = 5; i < 9; i++) await putInCache(b.client, lib, blob(i), `e${i}`);
    assert.ok(fs.readdirSync(b.filecache).includes(tree), "held entry kept");
    await b.client.call("abort");
    await waitForState(b.client, "WAITING");
    await b.client.call("clean");
  });

  test("a file that cannot fit even after eviction is refused before downloading", async () => {
    const huge = Buffer.alloc(150 * 1024, 7);
    const url = lib.add("/huge", huge);
    const [ok, info] = (await b.client.call("ensurepresent", sha1(huge), url, "", "")) as [
      boolean,
      string,
    ];
    assert.equal(ok, false);
    assert.match(
      info,
      /^Error accessing Librarian: not enough space in the file cache for 153600 bytes/,
    );
    assert.ok(!fs.readdirSync(b.filecache).some((f) => f.startsWith(".tmp-")));
  });
});
