// The scrubber's rules (unit tests), then the same rules through the real server: a URL
// whose password holds ":" never reaches the builder's own log or a build log in clear.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { startTestBuilder, type TestBuilder } from "../harness/builder.js";
import { makeTarball, putInCache } from "../harness/fixtures.js";
import { startLibrarian, type Librarian } from "../harness/librarian.js";
import { cleanBuilder, fetchBuildLog, runScriptBuild } from "../harness/scenario.js";
import {
  MASK,
  MAX_HOLD_BACK,
  StreamScrubber,
  createScrubber,
  scrubText,
} from "../src/log/scrub.js";

test("URL credentials are removed, the host kept", () => {
  assert.equal(
    scrubText("Get:1 http://buildd:secret@ftpmaster.internal focal InRelease"),
    "Get:1 http://ftpmaster.internal focal InRelease",
  );
  assert.equal(scrubText("fetch https://:token@host/x done"), "fetch https://host/x done");
  assert.equal(
    scrubText("http_proxy=http://u:p@proxy:3128 https_proxy=http://u:p@proxy:3128"),
    "http_proxy=http://proxy:3128 https_proxy=http://proxy:3128",
  );
  assert.equal(
    scrubText("git clone git+ssh://me:pw@git.example/r.git"),
    "git clone git+ssh://git.example/r.git",
  );
});

test("the userinfo follows the URL grammar: a password may hold ':', ';', '%40' and more", () => {
  // RFC 3986 §3.2.1: userinfo = *( unreserved / pct-encoded / sub-delims / ":" ).
  for (const password of ["pa:ss", "p;w=1", "pa%40ss", "a!$&'()*+,;=b", "x:y:z", "::"]) {
    assert.equal(scrubText(`get http://user:${password}@host/x ok`), "get http://host/x ok");
  }
  assert.equal(scrubText("http://:pa:ss@host:8080?q#f"), "http://host:8080?q#f");
  // A raw "@" is not legal in the userinfo, but URL parsers (Node's included) end the
  // userinfo at the last "@" of the authority: all of it is the credential.
  assert.equal(scrubText("http://user:p@ss@host/"), "http://host/");
  assert.equal(scrubText("http://us@er:pw@host/"), "http://host/");
  // The authority ends at "/", "?" or "#": an "@" after them is not a credential.
  assert.equal(scrubText("http://h:80/a:b@c http://h?u:p@x"), "http://h:80/a:b@c http://h?u:p@x");
  // The builder's own log is JSON lines: the closing quote ends the URL.
  assert.equal(
    scrubText('{"url":"http://user:pa:ss@127.0.0.1:8/x","msg":"a:b@c"}'),
    '{"url":"http://127.0.0.1:8/x","msg":"a:b@c"}',
  );
  // Two URLs in one token, or one after another on a line, each lose their own.
  assert.equal(
    scrubText("a=http://u:p:1@h1,b=https://v:q:2@h2/ c http://w:r:3@h3"),
    "a=http://h1,b=https://h2/ c http://h3",
  );
});

test("text without credentials is unchanged", () => {
  for (const text of [
    "http://host:8080/path",
    "http://user@host/",
    "http://user@host:8080/",
    "http://[::1]:8080/x",
    "http://user:@host/", // an empty password: nothing to hide
    "https://host/a:b@c", // ':' after a '/' is not a credential
    "time 12:34:56 @home",
    "",
  ]) {
    assert.equal(scrubText(text), text);
  }
});

test("proxyauth is removed", () => {
  assert.equal(
    scrubText("snap proxy http://proxy:3128,proxyauth=user:abc-123 end"),
    "snap proxy http://proxy:3128 end",
  );
});

test("literal secrets are masked; short and empty ones ignored", () => {
  const s = createScrubber(["hunter22", "", "abc", "pässwörd"]);
  assert.deepEqual(s.secrets, ["hunter22", "pässwörd"]);
  assert.equal(s.scrub("pw=hunter22 x=abc"), `pw=${MASK} x=abc`);
  assert.equal(s.scrub("pässwörd!"), `${MASK}!`);
  assert.equal(
    s.scrubBuffer(Buffer.from("a pässwörd b hunter22", "utf8")).toString("utf8"),
    `a ${MASK} b ${MASK}`,
  );
  // URL patterns still apply with secrets configured.
  assert.equal(s.scrub("http://a:b@h/"), "http://h/");
});

test("a secret containing another is masked whole", () => {
  const s = createScrubber(["pass", "password123"]);
  assert.equal(s.scrub("password123"), MASK);
});

test("invalid UTF-8 passes through unchanged, and non-ASCII passwords are scrubbed", () => {
  const s = createScrubber();
  const raw = Buffer.from([0xff, 0xfe, 0x41, 0xc3, 0x28, 0x0a, 0x80]);
  assert.deepEqual(s.scrubBuffer(raw), raw);
  // "à" is C3 A0: 0xA0 is not whitespace, so the password is still recognised.
  const withUrl = Buffer.concat([
    Buffer.from([0xff]),
    Buffer.from(" http://u:pà@host/ "),
    Buffer.from([0xfe]),
  ]);
  const expected = Buffer.concat([
    Buffer.from([0xff]),
    Buffer.from(" http://host/ "),
    Buffer.from([0xfe]),
  ]);
  assert.deepEqual(s.scrubBuffer(withUrl), expected);
});

function streamAll(scrubber: StreamScrubber, chunks: readonly Buffer[], idle = false): Buffer {
  const out: Buffer[] = [];
  for (const chunk of chunks) {
    out.push(scrubber.push(chunk));
    if (idle) out.push(scrubber.flushIdle());
  }
  out.push(scrubber.end());
  return Buffer.concat(out);
}

test("StreamScrubber never emits a credential split at any byte offset", () => {
  const secrets = ["hunter22", "two words"];
  const input = Buffer.from(
    "Get:1 http://buildd:secret@ftpmaster.internal focal\n" +
      '{"url":"http://user:pa:ss@host:8/x"} clone git+ssh://me:p;w=1@git.example/r\n' +
      "proxy=http://p:3128,proxyauth=user:abc-123 next\r" +
      "pw hunter22 and two words here\n",
  );
  const expected = Buffer.from(
    "Get:1 http://ftpmaster.internal focal\n" +
      '{"url":"http://host:8/x"} clone git+ssh://git.example/r\n' +
      "proxy=http://p:3128 next\r" +
      `pw ${MASK} and ${MASK} here\n`,
  );
  for (let cut = 0; cut <= input.length; cut++) {
    for (const idle of [false, true]) {
      const chunks = [input.subarray(0, cut), input.subarray(cut)];
      const got = streamAll(new StreamScrubber(createScrubber(secrets)), chunks, idle);
      assert.deepEqual(
        got.toString("latin1"),
        expected.toString("latin1"),
        `cut at ${cut}, idle=${idle}`,
      );
    }
  }
  // Byte by byte, with an idle flush after every byte.
  const bytes = [...input].map((b) => Buffer.from([b]));
  assert.equal(
    streamAll(new StreamScrubber(createScrubber(secrets)), bytes, true).toString(),
    expected.toString(),
  );
});

test("StreamScrubber emits complete text promptly and holds back only the open token", () => {
  const s = new StreamScrubber(createScrubber());
  assert.equal(s.push(Buffer.from("line one\nhttp://user:pa")).toString(), "line one\n");
  // Idle: nothing of the open token may go out (it starts with a possible match).
  assert.equal(s.flushIdle().toString(), "http");
  assert.equal(s.push(Buffer.from("ss@host/x\n")).toString(), "://host/x\n");
  // A progress counter without a newline goes out on idle.
  assert.equal(s.push(Buffer.from("progress 45%")).toString(), "progress ");
  assert.equal(s.flushIdle().toString(), "45%");
  assert.equal(s.end().toString(), "");
});

test("StreamScrubber caps the hold-back", () => {
  const s = new StreamScrubber(createScrubber());
  const big = Buffer.alloc(MAX_HOLD_BACK + 10, "x");
  assert.equal(s.push(big.subarray(0, MAX_HOLD_BACK)).length, 0);
  assert.equal(s.push(big.subarray(MAX_HOLD_BACK)).length, big.length);
});

test("StreamScrubber keeps invalid UTF-8 split across chunks intact", () => {
  const s = new StreamScrubber(createScrubber());
  const raw = Buffer.from([0x61, 0xe2, 0x82, 0x20, 0xff, 0xc3]);
  assert.deepEqual(streamAll(s, [raw.subarray(0, 2), raw.subarray(2, 5), raw.subarray(5)]), raw);
});

describe("through the real server, a password with ':' never shows", () => {
  let b: TestBuilder;
  let lib: Librarian;
  before(async () => {
    b = await startTestBuilder();
    lib = await startLibrarian();
  });
  after(async () => {
    await b.stop();
    await lib.close();
  });

  // The password in clear, and as a URL parser percent-encodes it.
  const leaks = (text: string): string[] =>
    ["pa:ss-q7", "pa%3Ass-q7"].filter((form) => text.includes(form));

  test("ensurepresent's URL in the builder's own log", async () => {
    const body = Buffer.from("behind a password with a colon\n");
    const plain = lib.add("/x", body, { kind: "auth", username: "user", password: "pa:ss-q7" });
    const url = plain.replace("http://", "http://user:pa:ss-q7@");
    await b.client.call("ensurepresent", "0".repeat(40), url, null, null);
    const host = new URL(plain).host;
    // The URL was logged (so the check below can fail), with its credentials removed.
    assert.ok(b.logText().includes(`"url":"http://${host}/x"`), b.logText());
    assert.deepEqual(leaks(b.logText()), []);
  });

  test("a script build that prints such a URL: build log and builder log", async () => {
    const tree = await putInCache(b.client, lib, makeTarball({ README: "tree\n" }));
    const url = "http://user:pa:ss-q7@git.example/r.git";
    const args = { steps: [{ name: "clone", run: `echo "cloning ${url}"` }] };
    await runScriptBuild(b.client, "SCRUB-1", tree, args);
    const log = await fetchBuildLog(b.url);
    assert.ok(log.includes("cloning http://git.example/r.git\n"), log);
    assert.deepEqual(leaks(log), []);
    assert.deepEqual(leaks(b.logText()), []);
    await cleanBuilder(b.client);
  });
});
