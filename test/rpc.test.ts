// The XML-RPC endpoint through the real server: routes, HTTP methods, limits, faults,
// and the malformed-input corpus. After each bad input the server still answers echo.
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { startTestBuilder, type TestBuilder } from "../harness/builder.js";
import { RpcFault } from "../harness/client.js";
import { encodeMethodCall } from "../src/rpc/codec.js";

const call = (method: string, params = ""): string =>
  `<?xml version="1.0"?><methodCall><methodName>${method}</methodName><params>${params}</params></methodCall>`;

function faultOf(text: string): { code: number; message: string } | null {
  const code = /<name>faultCode<\/name>\s*<value>\s*<(?:int|i4)>(-?\d+)</.exec(text);
  const message = /<name>faultString<\/name>\s*<value>\s*(?:<string>)?([^<]*)</.exec(text);
  return code ? { code: Number(code[1]), message: message?.[1] ?? "" } : null;
}

describe("XML-RPC over HTTP", () => {
  let b: TestBuilder;
  before(async () => {
    b = await startTestBuilder({ rpc: { max_body: "64K" } });
  });
  after(() => b.stop());

  test("POST /rpc, /rpc/ and /rpc/<anything> all reach the dispatcher", async () => {
    for (const path of ["/rpc", "/rpc/", "/rpc/some/thing"]) {
      const res = await b.client.raw(encodeMethodCall("echo", ["Hello World"]), { path });
      assert.equal(res.status, 200, path);
      assert.equal(res.contentType, "text/xml; charset=utf-8");
      assert.match(res.text, /<string>Hello World<\/string>/);
    }
  });

  test("other HTTP methods on /rpc are 405", async () => {
    for (const method of ["GET", "PUT", "DELETE"]) {
      const res = await b.client.raw("", { method });
      assert.equal(res.status, 405, method);
    }
  });

  test("unknown paths and the bare /filecache are 404; no listing (/ is the status page)", async () => {
    for (const path of ["/nope", "/filecache", "/filecache/"]) {
      const res = await fetch(`${b.url}${path}`);
      assert.equal(res.status, 404, path);
    }
  });

  test("a body over [rpc] max_body is 413", async () => {
    const big = encodeMethodCall("echo", ["x".repeat(70 * 1024)]);
    const res = await b.client.raw(big);
    assert.equal(res.status, 413);
    assert.deepEqual(await b.client.call("echo", "still here"), ["still here"]);
  });

  test("unknown method is fault 8001, wrong arity fault 8002 naming the method", async () => {
    await assert.rejects(b.client.call("frobnicate"), {
      faultCode: 8001,
      faultString: "procedure frobnicate not found",
    });
    await assert.rejects(b.client.call("info", 1), (err: unknown) => {
      assert.ok(err instanceof RpcFault);
      assert.equal(err.faultCode, 8002);
      assert.equal(err.faultString, "info() takes exactly 0 arguments (1 given)");
      return true;
    });
  });

  test("method names that exist on Object.prototype are not methods", async () => {
    for (const name of ["constructor", "toString", "__proto__", "hasOwnProperty"]) {
      await assert.rejects(b.client.call(name), { faultCode: 8001 }, name);
    }
  });

  test("status() of a fresh builder: IDLE and the version, nothing else", async () => {
    const status = await b.client.call("status");
    assert.deepEqual(Object.keys(status as object).sort(), ["builder_status", "builder_version"]);
    assert.equal((status as Record<string, unknown>)["builder_status"], "BuilderStatus.IDLE");
  });

  const corpus: [string, string | Buffer][] = [
    ["empty body", ""],
    ["not XML", "hello"],
    [
      "XXE",
      `<?xml version="1.0"?><!DOCTYPE x [<!ENTITY x SYSTEM "file:///etc/passwd">]>${call("echo", "<param><value>&x;</value></param>")}`,
    ],
    [
      "billion laughs",
      `<?xml version="1.0"?><!DOCTYPE l [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;"><!ENTITY c "&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;">]>${call("echo", "<param><value>&c;</value></param>")}`,
    ],
    [
      "100,000-deep nesting",
      call(
        "echo",
        `<param><value>${"<array><data><value>".repeat(100_000)}1${"</value></data></array>".repeat(100_000)}</value></param>`,
      ),
    ],
    ["invalid base64", call("echo", "<param><value><base64>!!!notbase64</base64></value></param>")],
    ["mismatched tags", call("echo", "<param><value><string>x</int></value></param>")],
    ["missing methodName", `<?xml version="1.0"?><methodCall><params/></methodCall>`],
    ["trailing garbage", `${call("echo")}<junk/>`],
    [
      "two values in one value",
      call("echo", "<param><value><int>1</int><int>2</int></value></param>"),
    ],
    [
      "non-UTF-8 bytes",
      Buffer.concat([
        Buffer.from(call("echo", "<param><value>")),
        Buffer.from([0xff, 0xfe]),
        Buffer.from("</value></param>"),
      ]),
    ],
    ["invalid int", call("echo", "<param><value><int>12a</int></value></param>")],
  ];
  for (const [name, body] of corpus) {
    test(`malformed input: ${name} → fault 8002, server still answers`, async () => {
      const res = await b.client.raw(body);
      if (res.status === 200) {
        const fault = faultOf(res.text);
        assert.ok(fault, `expected a fault, got ${res.text.slice(0, 200)}`);
        assert.equal(fault.code, 8002);
        assert.match(fault.message, /^Can't deserialize input: .+/);
      } else {
        assert.ok(res.status >= 400 && res.status < 500, `status ${res.status}`);
      }
      assert.deepEqual(await b.client.call("echo", "alive"), ["alive"]);
    });
  }

  test("__proto__ members are plain keys and echo back", async () => {
    const body = call(
      "echo",
      "<param><value><struct><member><name>__proto__</name><value><string>p</string></value></member><member><name>constructor</name><value><int>1</int></value></member></struct></value></param>",
    );
    const res = await b.client.raw(body);
    assert.equal(res.status, 200);
    assert.match(res.text, /<name>__proto__<\/name>\s*<value>\s*<string>p<\/string>/);
    assert.match(res.text, /<name>constructor<\/name>/);
  });

  // status() bodies are kept decoded (src/rpc/call-cache.ts): a body is answered from a
  // kept one only when it is the same bytes.
  test("a status() body sent again is read again whenever one byte differs", async () => {
    const statusOf = async (body: string): Promise<string> => {
      const res = await b.client.raw(body);
      assert.equal(res.status, 200);
      return res.text;
    };
    const idle = /<name>builder_status<\/name>\s*<value>\s*<string>BuilderStatus\.IDLE</;
    const body = call("status");
    assert.match(await statusOf(body), idle);
    assert.match(await statusOf(body), idle, "the same bytes again");

    // The same length as the kept body, one byte changed each time.
    const misspelt = body.replace("<methodName>status<", "<methodName>statuz<");
    assert.equal(misspelt.length, body.length);
    assert.deepEqual(faultOf(await statusOf(misspelt)), {
      code: 8001,
      message: "procedure statuz not found",
    });
    const broken = body.replace("</methodCall>", "</methodCalx>");
    const fault = faultOf(await statusOf(broken));
    assert.equal(fault?.code, 8002);
    assert.match(fault.message, /^Can't deserialize input: /);
    assert.match(await statusOf(body), idle);

    // An argument is refused every time, not only the first.
    const withArgument = call("status", "<param><value><string>x</string></value></param>");
    for (let i = 0; i < 2; i++) {
      assert.deepEqual(faultOf(await statusOf(withArgument)), {
        code: 8002,
        message: "status() takes exactly 0 arguments (1 given)",
      });
    }

    // More distinct bodies than are kept, twice over: each is answered for itself.
    const variants = Array.from(
      { length: 6 },
      (_, i) =>
        `<?xml version="1.0"?>${"\n".repeat(i)}<methodCall><methodName>status</methodName><params/></methodCall>`,
    );
    for (const round of [1, 2]) {
      for (const v of variants) assert.match(await statusOf(v), idle, `round ${round}: ${v}`);
    }
    assert.deepEqual(await b.client.call("echo", "alive"), ["alive"]);
  });

  test("control characters in strings are answered as valid XML", async () => {
    const value = await b.client.call("echo", "colour \u001b[31mred\u001b[0m and NUL \u0000");
    assert.deepEqual(value, ["colour \uFFFD[31mred\uFFFD[0m and NUL \uFFFD"]);
  });
});
