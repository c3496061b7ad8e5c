// Optional HTTP Basic authentication on /rpc and /filecache, usable by an unchanged
// manager through the userinfo of the builder's URL.
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { promisify } from "node:util";
import { after, before, describe, test } from "node:test";
import { startTestBuilder, type TestBuilder } from "../harness/builder.js";
import { httpGet, sha1 } from "../harness/fixtures.js";
import { startLibrarian, type Librarian } from "../harness/librarian.js";
import { encodeMethodCall } from "../src/rpc/codec.js";

const basic = (user: string, pass: string): string =>
  `Basic ${Buffer.from(`${user}:${pass}`).toString("base64")}`;

describe("authentication", () => {
  let b: TestBuilder;
  let lib: Librarian;
  const body = encodeMethodCall("echo", ["hi"]);
  before(async () => {
    b = await startTestBuilder({ auth: { username: "manager", password: "s3cret-Pw" } });
    lib = await startLibrarian();
  });
  after(async () => {
    await b.stop();
    await lib.close();
  });

  const post = (authorization?: string) =>
    fetch(`${b.url}/rpc`, {
      method: "POST",
      body,
      headers: authorization ? { authorization } : {},
    });

  test("/rpc without or with wrong credentials is 401 with a Basic challenge", async () => {
    for (const auth of [
      undefined,
      basic("manager", "wrong"),
      basic("other", "s3cret-Pw"),
      "Bearer s3cret-Pw",
      "Basic !!!",
    ]) {
      const res = await post(auth);
      assert.equal(res.status, 401, String(auth));
      assert.match(res.headers.get("www-authenticate") ?? "", /^Basic realm="buildd"/);
    }
  });

  test("/rpc with the right credentials answers", async () => {
    const res = await post(basic("manager", "s3cret-Pw"));
    assert.equal(res.status, 200);
    assert.match(await res.text(), /<string>hi<\/string>/);
  });

  test("/filecache is guarded too", async () => {
    const content = Buffer.from("guarded file");
    const url = lib.add("/guarded", content);
    const call = encodeMethodCall("ensurepresent", [sha1(content), url, "", ""]);
    const res = await fetch(`${b.url}/rpc`, {
      method: "POST",
      body: call,
      headers: { authorization: basic("manager", "s3cret-Pw") },
    });
    assert.match(await res.text(), /Download/);
    const file = `${b.url}/filecache/${sha1(content)}`;
    assert.equal((await httpGet(file)).status, 401);
    const ok = await httpGet(file, { authorization: basic("manager", "s3cret-Pw") });
    assert.equal(ok.status, 200);
    assert.deepEqual(ok.body, content);
  });

  test("an unchanged Python manager authenticates through the URL's userinfo", async () => {
    const url = b.url.replace("http://", "http://manager:s3cret-Pw@");
    const script = `import sys, xmlrpc.client
p = xmlrpc.client.ServerProxy(sys.argv[1] + "/rpc", allow_none=True)
print(p.echo("through userinfo")[0])
try:
    xmlrpc.client.ServerProxy(sys.argv[2] + "/rpc").echo("x")
except xmlrpc.client.ProtocolError as e:
    print(e.errcode)`;
    const { stdout } = await promisify(execFile)("python3", ["-c", script, url, b.url]);
    assert.equal(stdout, "through userinfo\n401\n");
    assert.doesNotMatch(b.logText(), /s3cret-Pw/);
  });
});
