// fetchToFile against a real (misbehaving) librarian on loopback, writing real files.
// Every failure case checks the exact reason text and that no file is left behind.

import assert from "node:assert/strict";
import { createHash, randomBytes } from "node:crypto";
import fs from "node:fs";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { after, before, describe, test } from "node:test";
import { startLibrarian } from "../harness/librarian.js";
import type { Librarian } from "../harness/librarian.js";
import { FetchError, fetchToFile } from "../src/filecache/fetch.js";
import type { FetchLimits, FetchRequest } from "../src/filecache/fetch.js";

const LIMITS: FetchLimits = {
  connectTimeoutMs: 5000,
  idleTimeoutMs: 5000,
  totalTimeoutMs: 30000,
  maxBytes: 64 * 1024 * 1024,
  maxRedirects: 5,
};

// A hung download fails its suite instead of hanging the whole run.
const SUITE = { timeout: 60_000 };

let lib: Librarian;
let dir: string;
let counter = 0;

before(async () => {
  lib = await startLibrarian();
  dir = fs.mkdtempSync(path.join(os.tmpdir(), "buildd-fetch-"));
});

after(async () => {
  await lib.close();
  fs.rmSync(dir, { recursive: true, force: true });
});

function sha1(data: Buffer): string {
  return createHash("sha1").update(data).digest("hex");
}

function dest(): string {
  counter += 1;
  return path.join(dir, `download-${counter}.tmp`);
}

function request(url: string, extra: Partial<FetchRequest> = {}): FetchRequest {
  return { url, destPath: dest(), limits: LIMITS, ...extra };
}

/** Expect a FetchError with exactly `reason`, and nothing left at destPath. */
async function fails(req: FetchRequest, reason: string): Promise<FetchError> {
  const err = await fetchToFile(req).then(
    () => assert.fail(`expected "${reason}", but the download succeeded`),
    (e: unknown) => e,
  );
  assert.ok(err instanceof FetchError, `not a FetchError: ${String(err)}`);
  assert.equal(err.reason, reason);
  assert.equal(err.message, reason);
  assert.equal(fs.existsSync(req.destPath), false, "temporary file left behind");
  return err;
}

async function succeeds(req: FetchRequest, body: Buffer): Promise<void> {
  const result = await fetchToFile(req);
  assert.deepEqual(result, { sha1: sha1(body), bytes: body.length });
  assert.equal(sha1(fs.readFileSync(req.destPath)), sha1(body));
  fs.rmSync(req.destPath);
}

async function closedPort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as net.AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

describe("fetchToFile: success", SUITE, () => {
  test("downloads a file and reports its SHA-1 and size", async () => {
    const body = Buffer.from("hello librarian\n");
    await succeeds(request(lib.add("/ok", body)), body);
  });

  test("an empty body is a valid file", async () => {
    const body = Buffer.alloc(0);
    await succeeds(request(lib.add("/empty", body)), body);
  });

  test("20 MiB: right sha1 and byte count", async () => {
    const body = randomBytes(20 * 1024 * 1024);
    await succeeds(request(lib.add("/big", body)), body);
  });

  test("HTTP/1.0 without Content-Length, body ended by close, 20 times in a row", async () => {
    const body = randomBytes(300 * 1024 + 7);
    const url = lib.add("/http10", body, { kind: "http10" });
    for (let i = 0; i < 20; i++) await succeeds(request(url), body);
    assert.equal(lib.requestCount("/http10"), 20);
  });

  test("a slow but steady body is not an idle timeout", async () => {
    const body = Buffer.from("drip drip drip drip");
    const url = lib.add("/slow-ok", body, { kind: "slow", bytesPerChunk: 4, intervalMs: 30 });
    await succeeds(request(url, { limits: { ...LIMITS, idleTimeoutMs: 300 } }), body);
  });
});

describe("fetchToFile: authentication", SUITE, () => {
  test("401 without credentials", async () => {
    const url = lib.add("/secret-1", Buffer.from("x"), {
      kind: "auth",
      username: "u",
      password: "p",
    });
    await fails(request(url), "HTTP Error 401: Unauthorized");
    assert.equal(lib.requests.find((r) => r.path === "/secret-1")?.authorization, undefined);
  });

  test("Basic credentials are sent preemptively on the first request", async () => {
    const body = Buffer.from("secret body");
    const url = lib.add("/secret-2", body, { kind: "auth", username: "user", password: "pw" });
    await succeeds(request(url, { username: "user", password: "pw" }), body);
    const seen = lib.requests.filter((r) => r.path === "/secret-2");
    assert.equal(seen.length, 1);
    assert.equal(seen[0]?.authorization, `Basic ${Buffer.from("user:pw").toString("base64")}`);
  });

  test("an empty username with a token as password is sent too", async () => {
    const body = Buffer.from("token body");
    const url = lib.add("/secret-3", body, { kind: "auth", username: "", password: "tok3n" });
    await succeeds(request(url, { username: "", password: "tok3n" }), body);
    const seen = lib.requests.filter((r) => r.path === "/secret-3");
    assert.equal(seen.length, 1);
    assert.equal(seen[0]?.authorization, `Basic ${Buffer.from(":tok3n").toString("base64")}`);
  });

  test("no Authorization header when username and password are empty or null", async () => {
    const body = Buffer.from("public");
    const url = lib.add("/public", body);
    await succeeds(request(url, { username: "", password: null }), body);
    assert.equal(lib.requests.find((r) => r.path === "/public")?.authorization, undefined);
  });

  test("credentials follow a same-host redirect but not one to another host:port", async () => {
    const other = await startLibrarian();
    try {
      const body = Buffer.from("elsewhere");
      const target = other.add("/there", body);
      lib.add("/same-hop", Buffer.alloc(0), { kind: "redirect", to: "/to-other" });
      lib.add("/to-other", Buffer.alloc(0), { kind: "redirect", to: target });
      await succeeds(request(`${lib.url}/same-hop`, { username: "", password: "t" }), body);
      const auth = `Basic ${Buffer.from(":t").toString("base64")}`;
      assert.equal(lib.requests.find((r) => r.path === "/same-hop")?.authorization, auth);
      assert.equal(lib.requests.find((r) => r.path === "/to-other")?.authorization, auth);
      assert.equal(other.requests.length, 1);
      assert.equal(other.requests[0]?.authorization, undefined);
    } finally {
      await other.close();
    }
  });
});

describe("fetchToFile: HTTP errors and redirects", SUITE, () => {
  test("404", async () => {
    await fails(request(`${lib.url}/no-such-file`), "HTTP Error 404: Not Found");
  });

  test("500", async () => {
    const url = lib.add("/broken", Buffer.alloc(0), { kind: "status", code: 500 });
    await fails(request(url), "HTTP Error 500: Internal Server Error");
  });

  test("a redirect chain of 3 hops (absolute and relative Locations)", async () => {
    const body = Buffer.from("at the end of the chain");
    lib.add("/hop1", Buffer.alloc(0), { kind: "redirect", to: `${lib.url}/hop2`, code: 301 });
    lib.add("/hop2", Buffer.alloc(0), { kind: "redirect", to: "hop3", code: 307 });
    lib.add("/hop3", Buffer.alloc(0), { kind: "redirect", to: "/final", code: 308 });
    lib.add("/final", body);
    await succeeds(request(`${lib.url}/hop1`), body);
    for (const p of ["/hop1", "/hop2", "/hop3", "/final"]) assert.equal(lib.requestCount(p), 1);
  });

  test("a redirect loop fails with too many redirects", async () => {
    const url = lib.add("/loop", Buffer.alloc(0), { kind: "redirect", to: "/loop" });
    await fails(request(url), "too many redirects (5)");
    assert.equal(lib.requestCount("/loop"), 6); // the first request and 5 redirects
  });

  test("a redirect without Location", async () => {
    const url = lib.add("/no-location", Buffer.alloc(0), { kind: "status", code: 302 });
    await fails(request(url), "redirect without Location");
  });

  test("a redirect to an ftp: URL is refused", async () => {
    const url = lib.add("/to-ftp", Buffer.alloc(0), { kind: "redirect", to: "ftp://127.0.0.1/x" });
    await fails(request(url), "unsupported URL scheme: ftp");
  });
});

describe("fetchToFile: bad URLs", SUITE, () => {
  test("file: URL", async () => {
    await fails(request("file:///etc/passwd"), "unsupported URL scheme: file");
  });

  test("ftp: URL", async () => {
    await fails(request("ftp://127.0.0.1/pub/file"), "unsupported URL scheme: ftp");
  });

  test("invalid URL", async () => {
    await fails(request("not a url"), "invalid URL");
  });
});

describe("fetchToFile: network failures", SUITE, () => {
  test("connection refused", async () => {
    const port = await closedPort();
    await fails(request(`http://127.0.0.1:${port}/x`), "connection refused");
  });

  test("unresolvable host", async () => {
    await fails(request("http://nosuch.invalid/x"), "host not found: nosuch.invalid");
  });

  test("truncated body", async () => {
    const url = lib.add("/truncated", randomBytes(10000), { kind: "truncate", afterBytes: 4000 });
    await fails(request(url), "body ended after 4000 of 10000 bytes (Content-Length)");
  });

  test("Content-Length larger than the body", async () => {
    const url = lib.add("/lies-big", randomBytes(1000), { kind: "length-lies", declared: 1500 });
    await fails(request(url), "body ended after 1000 of 1500 bytes (Content-Length)");
  });

  test("Content-Length smaller than the body", async () => {
    const url = lib.add("/lies-small", randomBytes(1000), { kind: "length-lies", declared: 600 });
    await fails(request(url), "body longer than its Content-Length");
  });

  test("stall: idle timeout", async () => {
    const url = lib.add("/stall", randomBytes(5000), { kind: "stall", afterBytes: 1000 });
    const started = Date.now();
    await fails(request(url, { limits: { ...LIMITS, idleTimeoutMs: 300 } }), "no data for 300 ms");
    assert.ok(Date.now() - started < 3000);
  });

  test("a server that accepts and never answers: idle timeout", async () => {
    // Its own librarian, so the pending 60 s answer ends with this test.
    const own = await startLibrarian();
    try {
      const url = own.add("/silent", Buffer.from("x"), { kind: "delay", ms: 60_000 });
      const limits = { ...LIMITS, idleTimeoutMs: 300 };
      await fails(request(url, { limits }), "no data for 300 ms");
    } finally {
      await own.close();
    }
  });

  test("total timeout", async () => {
    const url = lib.add("/drip", randomBytes(1000), {
      kind: "slow",
      bytesPerChunk: 10,
      intervalMs: 20,
    });
    await fails(
      request(url, { limits: { ...LIMITS, idleTimeoutMs: 1000, totalTimeoutMs: 300 } }),
      "download exceeded the total timeout of 300 ms",
    );
  });

  test("over maxBytes, announced by Content-Length", async () => {
    const url = lib.add("/too-big", randomBytes(4096));
    await fails(
      request(url, { limits: { ...LIMITS, maxBytes: 1000 } }),
      "response larger than the maximum size of 1000 bytes",
    );
  });

  test("over maxBytes, without Content-Length (HTTP/1.0)", async () => {
    const url = lib.add("/too-big-10", randomBytes(200 * 1024), { kind: "http10" });
    await fails(
      request(url, { limits: { ...LIMITS, maxBytes: 100 * 1024 } }),
      "response larger than the maximum size of 102400 bytes",
    );
  });

  test("a body of exactly maxBytes is accepted", async () => {
    const body = randomBytes(1000);
    const url = lib.add("/exact", body, { kind: "http10" });
    await succeeds(request(url, { limits: { ...LIMITS, maxBytes: 1000 } }), body);
  });
});

describe("fetchToFile: the temporary file", SUITE, () => {
  test("an existing destPath is neither overwritten nor deleted", async () => {
    const url = lib.add("/exists", Buffer.from("new content"));
    const destPath = dest();
    fs.writeFileSync(destPath, "someone else's file");
    const err = await fetchToFile({ url, destPath, limits: LIMITS }).then(
      () => assert.fail("expected a failure"),
      (e: unknown) => e,
    );
    assert.ok(err instanceof FetchError);
    assert.equal(err.reason, `cannot write ${destPath}: EEXIST`);
    assert.equal(fs.readFileSync(destPath, "utf8"), "someone else's file");
  });

  test("the caller's AbortSignal stops a download and removes the file", async () => {
    const url = lib.add("/abortable", randomBytes(5000), { kind: "stall", afterBytes: 2000 });
    const ctl = new AbortController();
    const req = request(url, { signal: ctl.signal });
    setTimeout(() => ctl.abort(), 100);
    await fails(req, "download aborted");
  });
});

describe("fetchToFile: leaves nothing running", SUITE, () => {
  test("no timers or sockets remain after failures and successes", async () => {
    const own = await startLibrarian();
    try {
      const short = { ...LIMITS, idleTimeoutMs: 200, totalTimeoutMs: 400 };
      const attempts = [
        request(own.add("/a", randomBytes(5000), { kind: "stall", afterBytes: 100 }), {
          limits: short,
        }),
        request(
          own.add("/b", randomBytes(500), { kind: "slow", bytesPerChunk: 1, intervalMs: 5 }),
          {
            limits: short,
          },
        ),
        request(own.add("/c", randomBytes(5000), { kind: "truncate", afterBytes: 10 })),
        request(own.add("/d", randomBytes(5000), { kind: "length-lies", declared: 10 })),
        request(own.add("/e", randomBytes(5000), { kind: "http10" })),
        request(own.add("/f", randomBytes(5000))),
        request(`${own.url}/missing`),
      ];
      await Promise.allSettled(attempts.map((r) => fetchToFile(r)));
    } finally {
      await own.close();
    }
    // Give closed sockets one turn of the event loop to be released.
    await new Promise((resolve) => setImmediate(resolve));
    const resources = process.getActiveResourcesInfo();
    assert.equal(resources.filter((r) => r === "Timeout").length, 0, resources.join(", "));
    assert.equal(resources.filter((r) => r === "TCPSocketWrap").length, 0, resources.join(", "));
  });
});

describe("fetchToFile: onResponse", SUITE, () => {
  test("is told the Content-Length, or undefined without one", async () => {
    const body = randomBytes(1234);
    const seen: (number | undefined)[] = [];
    const onResponse = (length: number | undefined): void => void seen.push(length);
    await succeeds(request(lib.add("/on-1", body), { onResponse }), body);
    await succeeds(request(lib.add("/on-2", body, { kind: "http10" }), { onResponse }), body);
    assert.deepEqual(seen, [1234, undefined]);
  });

  test("is not called for redirects or error statuses", async () => {
    let calls = 0;
    const onResponse = (): void => void (calls += 1);
    await fails(request(`${lib.url}/on-missing`, { onResponse }), "HTTP Error 404: Not Found");
    const body = Buffer.from("after a hop");
    lib.add("/on-hop", Buffer.alloc(0), { kind: "redirect", to: "/on-target" });
    lib.add("/on-target", body);
    await succeeds(request(`${lib.url}/on-hop`, { onResponse }), body);
    assert.equal(calls, 1);
  });

  test("throwing fails the download with that error as the cause", async () => {
    const refusal = new Error("not enough space for 5000 bytes");
    const url = lib.add("/on-refuse", randomBytes(5000));
    const err = await fails(
      request(url, {
        onResponse: () => {
          throw refusal;
        },
      }),
      "not enough space for 5000 bytes",
    );
    assert.equal(err.code, "BUILDD_ERR_FETCH_LOCAL");
    assert.equal(err.cause, refusal);
  });
});
