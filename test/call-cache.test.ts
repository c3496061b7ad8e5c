// Polled calls are kept decoded only when that is safe to share, and only for equal bytes.

import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { CallCache } from "../src/rpc/call-cache.js";

const body = (s: string): Buffer => Buffer.from(s);

describe("CallCache", () => {
  it("gives a kept call back for the same bytes only, frozen", () => {
    const cache = new CallCache();
    const b = body("<methodCall>status</methodCall>");
    cache.remember(b, { methodName: "status", params: [] });
    const kept = cache.get(body("<methodCall>status</methodCall>"));
    assert.deepEqual(kept, { methodName: "status", params: [] });
    assert.ok(Object.isFrozen(kept) && Object.isFrozen(kept.params));
    assert.equal(cache.get(body("<methodCall>statuz</methodCall>")), undefined);
    assert.equal(cache.get(body("<methodCall>status</methodCall> ")), undefined);
  });

  it("keeps its own copy of the body", () => {
    const cache = new CallCache();
    const b = body("abc");
    cache.remember(b, { methodName: "status", params: [] });
    b[0] = 0x78; // the connection's buffer reused for "xbc"
    assert.equal(cache.get(body("xbc")), undefined);
    assert.ok(cache.get(body("abc")));
  });

  it("does not keep calls with structured arguments, or long bodies", () => {
    const cache = new CallCache();
    cache.remember(body("s"), { methodName: "m", params: [{ a: 1 }] });
    cache.remember(body("l"), { methodName: "m", params: [[1]] });
    cache.remember(body("x".repeat(2000)), { methodName: "m", params: [] });
    assert.equal(cache.get(body("s")), undefined);
    assert.equal(cache.get(body("l")), undefined);
    assert.equal(cache.get(body("x".repeat(2000))), undefined);
    cache.remember(body("p"), { methodName: "m", params: ["a", 1, true, null] });
    assert.deepEqual(cache.get(body("p"))?.params, ["a", 1, true, null]);
  });

  it("keeps the four most recently used bodies", () => {
    const cache = new CallCache();
    for (const n of ["1", "2", "3", "4"]) cache.remember(body(n), { methodName: n, params: [] });
    assert.ok(cache.get(body("1")), "used again: now the most recent");
    cache.remember(body("5"), { methodName: "5", params: [] });
    assert.equal(cache.get(body("2")), undefined, "the least recently used went");
    for (const n of ["1", "3", "4", "5"]) assert.equal(cache.get(body(n))?.methodName, n);
  });
});
