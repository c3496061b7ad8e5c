// HTTP hygiene: a client that dribbles its headers (slow-loris) is cut off while the
// builder keeps answering others; one client address cannot hold more than
// [http] max_connections_per_client connections; the web surface sends security headers;
// faults never echo a credential.
import assert from "node:assert/strict";
import net from "node:net";
import { after, before, describe, test } from "node:test";
import { startTestBuilder, type TestBuilder } from "../harness/builder.js";
import { RpcFault } from "../harness/client.js";
import { httpGet, status } from "../harness/fixtures.js";

/** Resolves when the server closes the socket; the bytes it sent before that. */
function closed(socket: net.Socket): Promise<string> {
  return new Promise((resolve) => {
    let got = "";
    socket.on("data", (c: Buffer) => (got += c.toString("latin1")));
    socket.on("error", () => undefined);
    socket.on("close", () => resolve(got));
  });
}

describe("HTTP hygiene", () => {
  let b: TestBuilder;
  let port: number;
  before(async () => {
    b = await startTestBuilder({ http: { headers_timeout: 1 } });
    port = Number(new URL(b.url).port);
  });
  after(() => b.stop());

  test("slow-loris: headers dribbled past [http] headers_timeout are cut off; status() goes on", async () => {
    const socket = net.connect(port, "127.0.0.1");
    const done = closed(socket);
    let stopped = false;
    void done.then(() => (stopped = true));
    const started = Date.now();
    const header = "GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ";
    for (let i = 0; !stopped && i < 60; i++) {
      socket.write(i < header.length ? header[i]! : "a");
      assert.equal((await status(b.client))["builder_status"], "BuilderStatus.IDLE");
      await new Promise((r) => setTimeout(r, 100));
    }
    const answer = await done;
    assert.ok(stopped, "the dribbling connection was closed");
    assert.ok(Date.now() - started < 6000, "…long before the client stopped dribbling");
    assert.match(answer, /^$|^HTTP\/1\.1 408/);
  });

  test("one client address holds at most max_connections_per_client connections", async () => {
    // A builder of its own: no other connection of this process counts against the cap.
    const capped = await startTestBuilder({ http: { max_connections_per_client: 4 } });
    const port = Number(new URL(capped.url).port);
    const sockets: net.Socket[] = [];
    const outcomes: Promise<string>[] = [];
    for (let i = 0; i < 6; i++) {
      const s = net.connect(port, "127.0.0.1");
      await new Promise((r) => s.once("connect", r));
      sockets.push(s);
      outcomes.push(closed(s));
    }
    await new Promise((r) => setTimeout(r, 300));
    const stillOpen = sockets.filter((s) => !s.destroyed && s.readyState === "open");
    assert.equal(stillOpen.length, 4, "the fifth and sixth were closed");
    for (const s of sockets) s.destroy();
    await Promise.all(outcomes);
    // Once those are gone the client is served again.
    assert.equal((await httpGet(`${capped.url}/healthz`)).status, 200);
    assert.match(capped.logText(), /too many connections from one client/);
    await capped.stop();
  });

  test("a fault never echoes a credential the caller sent", async () => {
    await assert.rejects(
      b.client.call("ensurepresent", "http://user:pw-in-fault-9@example.org/x", null, null, null),
      (err: unknown) => {
        assert.ok(err instanceof RpcFault);
        assert.doesNotMatch(err.faultString, /pw-in-fault-9/);
        assert.match(err.faultString, /http:\/\/example\.org\/x/);
        return true;
      },
    );
  });

  test("the web surface sends security headers; there is no directory listing", async () => {
    const page = await httpGet(`${b.url}/`);
    assert.equal(page.status, 200);
    assert.match(String(page.headers["content-security-policy"]), /default-src 'none'/);
    assert.equal(page.headers["x-content-type-options"], "nosniff");
    assert.equal(page.headers["x-frame-options"], "DENY");
    assert.equal(page.headers["referrer-policy"], "no-referrer");
    assert.equal(page.headers["x-powered-by"], undefined);
    for (const dir of ["/assets/", "/filecache/", "/api/v1/"]) {
      const res = await httpGet(`${b.url}${dir}`);
      assert.equal(res.status, 404, `${dir} lists nothing`);
    }
  });
});
