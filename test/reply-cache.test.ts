// The encoded status() reply is reused only while the value is exactly the same.

import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { encodeMethodResponse, type XmlRpcStruct, type XmlRpcValue } from "../src/rpc/codec.js";
import { ReplyCache, sameValue } from "../src/rpc/reply-cache.js";

const fresh = (v: XmlRpcValue): string => encodeMethodResponse(v);

describe("ReplyCache", () => {
  it("reuses the bytes for an equal value and re-encodes a changed one", () => {
    const cache = new ReplyCache();
    const a = cache.encode({ builder_status: "BuilderStatus.IDLE", builder_version: "1" });
    const b = cache.encode({ builder_status: "BuilderStatus.IDLE", builder_version: "1" });
    assert.equal(a, b, "the same Buffer, not re-encoded");
    const c = cache.encode({ builder_status: "BuilderStatus.BUILDING", builder_version: "1" });
    assert.notEqual(c, a);
    assert.equal(
      c.toString("utf8"),
      fresh({ builder_status: "BuilderStatus.BUILDING", builder_version: "1" }),
    );
  });

  it("is not fooled by a value changed in place after it was answered", () => {
    const cache = new ReplyCache();
    const logtail = Buffer.from("line 1\n");
    const extra: XmlRpcStruct = { step: "one", list: [1, 2] };
    const status: XmlRpcStruct = { builder_status: "B", logtail, extra };
    cache.encode(status);
    logtail[0] = 0x4c; // "Line 1"
    assert.equal(cache.encode(status).toString("utf8"), fresh(status));
    (extra["list"] as XmlRpcValue[]).push(3);
    assert.equal(cache.encode(status).toString("utf8"), fresh(status));
    extra["step"] = "two";
    assert.equal(cache.encode(status).toString("utf8"), fresh(status));
    status["new_key"] = true;
    assert.equal(cache.encode(status).toString("utf8"), fresh(status));
  });

  it("tells apart what encodes differently", () => {
    const pairs: [XmlRpcValue, XmlRpcValue][] = [
      [
        { a: 1, b: 2 },
        { b: 2, a: 1 },
      ],
      [1, 1.5],
      [1, "1"],
      [true, 1],
      [null, ""],
      [
        [1, 2],
        [1, 2, 3],
      ],
      [[1], { 0: 1 }],
      [Buffer.from("ab"), Buffer.from("ac")],
      [Buffer.from("ab"), "ab"],
      [new Date(0), new Date(1000)],
      [{ a: { b: [1] } }, { a: { b: [2] } }],
    ];
    for (const [x, y] of pairs) {
      assert.equal(sameValue(x, y), false, `${JSON.stringify(x)} vs ${JSON.stringify(y)}`);
      const cache = new ReplyCache();
      cache.encode(x);
      assert.equal(cache.encode(y).toString("utf8"), fresh(y));
    }
    assert.ok(
      sameValue(
        { a: [1, "x", null, new Date(5), Buffer.from("z")] },
        { a: [1, "x", null, new Date(5), Buffer.from("z")] },
      ),
    );
  });

  it("keeps a __proto__ member an own member in its copy", () => {
    const cache = new ReplyCache();
    const v = JSON.parse('{"__proto__": {"x": 1}, "y": 2}') as XmlRpcStruct;
    const first = cache.encode(v);
    assert.equal(first.toString("utf8"), fresh(v));
    assert.equal(cache.encode(v), first);
  });

  it("re-encodes, and so refuses, what cannot be encoded", () => {
    const cache = new ReplyCache();
    assert.throws(() => cache.encode(Number.NaN), { code: "BUILDD_ERR_SERIALIZE" });
    assert.throws(() => cache.encode(Number.NaN), { code: "BUILDD_ERR_SERIALIZE" });
  });
});
