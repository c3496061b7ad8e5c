// Two independent XML-RPC clients call the real server: the `xmlrpc` npm package and
// Python's xmlrpc.client. If our codec drifted from the standard, they would notice.
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { createRequire } from "node:module";
import { promisify } from "node:util";
import { after, before, describe, test } from "node:test";
import { startTestBuilder, type TestBuilder } from "../harness/builder.js";

const require = createRequire(import.meta.url);
interface XmlrpcClient {
  methodCall(
    method: string,
    params: unknown[],
    cb: (
      err: (Error & { faultCode?: number; faultString?: string }) | null,
      value: unknown,
    ) => void,
  ): void;
}
const xmlrpc = require("xmlrpc") as { createClient(opts: { url: string }): XmlrpcClient };

function npmCall(url: string, method: string, params: unknown[]): Promise<unknown> {
  const client = xmlrpc.createClient({ url: `${url}/rpc` });
  return new Promise((resolve, reject) =>
    client.methodCall(method, params, (err, value) => (err ? reject(err) : resolve(value))),
  );
}

const PYTHON = `
import json, sys, xmlrpc.client
p = xmlrpc.client.ServerProxy(sys.argv[1] + "/rpc", allow_none=True)
out = {}
out["echo"] = p.echo("Hello World", 42, 1.5, True, None, [1, [2]], {"k": "v"})
out["binary"] = p.echo(xmlrpc.client.Binary(b"\\x00\\x01\\xff"))[0].data.hex()
out["info_len"] = len(p.info())
out["status"] = p.status()["builder_status"]
try:
    p.nosuch()
except xmlrpc.client.Fault as f:
    out["fault"] = [f.faultCode, f.faultString]
print(json.dumps(out))
`;

describe("interoperability with independent clients", () => {
  let b: TestBuilder;
  before(async () => {
    b = await startTestBuilder();
  });
  after(() => b.stop());

  test("the xmlrpc npm package calls echo, info and status", async () => {
    assert.deepEqual(await npmCall(b.url, "echo", ["Hello World", 7, true, [1, 2], { a: "b" }]), [
      "Hello World",
      7,
      true,
      [1, 2],
      { a: "b" },
    ]);
    const info = (await npmCall(b.url, "info", [])) as unknown[];
    assert.equal(info.length, 3);
    assert.equal(info[0], "1.0");
    const status = (await npmCall(b.url, "status", [])) as Record<string, unknown>;
    assert.equal(status["builder_status"], "BuilderStatus.IDLE");
  });

  test("the xmlrpc npm package sees faults with their codes", async () => {
    await assert.rejects(npmCall(b.url, "nosuch", []), (err: Error & { faultCode?: number }) => {
      assert.equal(err.faultCode, 8001);
      return true;
    });
  });

  test("Python's xmlrpc.client calls echo (all types), info, status and sees faults", async () => {
    const { stdout } = await promisify(execFile)("python3", ["-c", PYTHON, b.url]);
    const out = JSON.parse(stdout) as Record<string, unknown>;
    assert.deepEqual(out["echo"], ["Hello World", 42, 1.5, true, null, [1, [2]], { k: "v" }]);
    assert.equal(out["binary"], "0001ff");
    assert.equal(out["info_len"], 3);
    assert.equal(out["status"], "BuilderStatus.IDLE");
    assert.deepEqual(out["fault"], [8001, "procedure nosuch not found"]);
  });
});
