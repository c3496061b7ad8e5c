// [download] allow: ensurepresent fetches only from the hosts and networks listed, checked
// on the address every URL and every redirect resolves to; the link-local metadata
// addresses are refused unless listed. A refusal leaves nothing in the cache.
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { startTestBuilder, type TestBuilder } from "../harness/builder.js";
import { cacheListing, sha1 } from "../harness/fixtures.js";
import { startLibrarian, type Librarian } from "../harness/librarian.js";

describe("[download] allow", () => {
  let allowed: Librarian;
  let other: Librarian;
  let b: TestBuilder;
  const port = (lib: Librarian): string => new URL(lib.url).port;

  before(async () => {
    allowed = await startLibrarian();
    other = await startLibrarian();
    b = await startTestBuilder({
      download: { allow: `127.0.0.1:${port(allowed)}`, connect_timeout: 5 },
    });
  });
  after(async () => {
    await b.stop();
    await allowed.close();
    await other.close();
  });

  const ensure = (body: Buffer, url: string) =>
    b.client.call("ensurepresent", sha1(body), url, "", "") as Promise<[boolean, string]>;

  test("an allowed host:port downloads", async () => {
    const body = Buffer.from("from the allowed librarian");
    assert.deepEqual(await ensure(body, allowed.add("/ok", body)), [true, "Download"]);
  });

  test("another port of the same machine is refused with the reason, and nothing is left", async () => {
    const body = Buffer.from("from a port that is not listed");
    const url = other.add("/no", body);
    assert.deepEqual(await ensure(body, url), [
      false,
      `Error accessing Librarian: 127.0.0.1:${port(other)} is not in [download] allow`,
    ]);
    assert.equal(other.requestCount("/no"), 0, "no request reached it");
    assert.ok(!cacheListing(b.filecache).some((n) => n === sha1(body) || n.startsWith(".tmp-")));
  });

  test("a redirect from an allowed librarian to a forbidden port is refused, naming it", async () => {
    const body = Buffer.from("behind a redirect");
    const target = other.add("/target", body);
    const url = allowed.add("/hop", Buffer.alloc(0), { kind: "redirect", to: target });
    assert.deepEqual(await ensure(body, url), [
      false,
      `Error accessing Librarian: redirected to http://127.0.0.1:${port(other)}: 127.0.0.1:${port(other)} is not in [download] allow`,
    ]);
    assert.equal(other.requestCount("/target"), 0);
    assert.ok(!cacheListing(b.filecache).includes(sha1(body)));
  });

  test("a name is checked on the address it resolves to", async () => {
    const body = Buffer.from("through a name");
    // localhost resolves to 127.0.0.1 (allowed only on the allowed librarian's port).
    const url = other.add("/named", body).replace("127.0.0.1", "localhost");
    const [present, info] = await ensure(body, url);
    assert.equal(present, false);
    assert.match(
      info,
      new RegExp(
        `^Error accessing Librarian: localhost:${port(other)} \\((127\\.0\\.0\\.1|::1)\\) is not in \\[download\\] allow$`,
      ),
    );
  });
});

describe("link-local metadata addresses", () => {
  let b: TestBuilder;
  before(async () => {
    b = await startTestBuilder({ download: { connect_timeout: 5 } });
  });
  after(() => b.stop());

  test("169.254.169.254 and fd00:ec2::254 are refused without a list, before any connection", async () => {
    for (const url of [
      "http://169.254.169.254/latest/meta-data/",
      "http://[fd00:ec2::254]/latest",
    ]) {
      const [present, info] = (await b.client.call(
        "ensurepresent",
        "a".repeat(40),
        url,
        "",
        "",
      )) as [boolean, string];
      assert.equal(present, false);
      assert.match(
        info,
        /is a link-local metadata address, refused unless \[download\] allow names it$/,
      );
    }
    assert.deepEqual(cacheListing(b.filecache), []);
  });
});
