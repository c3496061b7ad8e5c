// A download's SHA-1 is computed on a thread of its own (sha1-thread.ts), reading the
// capture's shared buffers in place. What a user relies on: the digest is exactly the
// SHA-1 of the bytes in order, however they arrive and however many downloads run at
// once; a buffer is never reused before the thread has read it (or the name in the
// cache could be wrong); and if the thread dies, the download fails with that reason
// instead of hanging or naming an unhashed file, and the next download works.

import assert from "node:assert/strict";
import { createHash, randomBytes } from "node:crypto";
import fs from "node:fs";
import http from "node:http";
import os from "node:os";
import path from "node:path";
import { after, before, describe, test } from "node:test";
import { crashHashThreadForTests, startSha1 } from "../src/filecache/sha1-thread.js";
import { FetchError, fetchToFile, type FetchLimits } from "../src/filecache/fetch.js";

const sha1 = (b: Buffer): string => createHash("sha1").update(b).digest("hex");

/** `bytes` in shared memory, as body-capture.ts holds a download. */
function shared(bytes: Buffer): Buffer {
  const b = Buffer.from(new SharedArrayBuffer(bytes.length));
  bytes.copy(b);
  return b;
}

describe("the hashing thread", () => {
  test("digests equal SHA-1 of the bytes for pieces of every kind, three hashes at once", async () => {
    const wholes = [randomBytes(5_000_000), randomBytes(3_300_001), randomBytes(777)];
    const streams = wholes.map(() => startSha1());
    const sharedCopies = wholes.map(shared);
    const offsets = wholes.map(() => 0);
    let callbacks = 0;
    let called = 0;
    // Round robin over the three, with piece sizes that cross the 1 MiB range and staging
    // sizes, empty pieces, shared pieces (adjacent, so they join) and plain ones (copied).
    const sizes = [0, 1, 65_536, 262_144, 1_048_575, 2_500_000, 7, 100_000];
    for (let round = 0; offsets.some((o, i) => o < wholes[i]!.length); round++) {
      for (let i = 0; i < wholes.length; i++) {
        const at = offsets[i]!;
        const n = Math.min(sizes[(round + i) % sizes.length]!, wholes[i]!.length - at);
        if (at >= wholes[i]!.length) continue;
        const piece =
          (round + i) % 3 === 0
            ? wholes[i]!.subarray(at, at + n)
            : sharedCopies[i]!.subarray(at, at + n);
        callbacks++;
        streams[i]!.update(piece, () => called++);
        offsets[i] = at + n;
      }
    }
    const got = await Promise.all(streams.map((s) => s.digest()));
    assert.deepEqual(got, wholes.map(sha1));
    assert.equal(called, callbacks, "every piece's callback ran once");
  });

  test("a shared piece is read before its memory is handed back", async () => {
    // The callback overwrites the piece, as the next socket read into that buffer would.
    // Were it called before the thread had read the bytes, the digest would be wrong.
    const original = randomBytes(4 * 1024 * 1024);
    const memory = shared(original);
    const stream = startSha1();
    for (let at = 0; at < memory.length; at += 256 * 1024) {
      const piece = memory.subarray(at, at + 256 * 1024);
      stream.update(piece, () => piece.fill(0));
    }
    assert.equal(await stream.digest(), sha1(original));
    assert.ok(
      memory.every((b) => b === 0),
      "every piece was handed back",
    );
  });

  test("a dropped hash hands back its pieces and leaves the others alone", async () => {
    const a = startSha1();
    const b = startSha1();
    const bytes = randomBytes(3_000_000);
    let handedBack = 0;
    a.update(shared(bytes), () => handedBack++);
    b.update(shared(bytes));
    a.drop();
    await assert.rejects(a.digest(), /dropped/);
    assert.equal(await b.digest(), sha1(bytes));
    // Sent pieces come back once the thread has read them.
    for (let i = 0; i < 100 && handedBack === 0; i++) await new Promise((r) => setTimeout(r, 10));
    assert.equal(handedBack, 1);
  });

  test("if the thread dies, the hashes in progress fail with the reason and the next works", async () => {
    const stream = startSha1();
    let handedBack = 0;
    let drained = 0;
    stream.onDrain = () => drained++;
    // More than the high-water mark at once (no answer can come in between): the source
    // is asked to pause, and must be let go again when the thread dies.
    const full = !stream.update(shared(randomBytes(5_000_000)), () => handedBack++);
    assert.ok(full, "5 MB at once is above the hash's high-water mark");
    assert.equal(await crashHashThreadForTests(), true);
    await assert.rejects(stream.digest(), /the SHA-1 thread stopped/);
    assert.equal(handedBack, 1, "its pieces are free: nothing will read them");
    assert.equal(drained, 1, "a source paused on the hash is let go");
    const next = startSha1();
    const bytes = randomBytes(1_500_000);
    next.update(shared(bytes));
    assert.equal(await next.digest(), sha1(bytes));
  });
});

describe("a download whose hashing thread dies", () => {
  const LIMITS: FetchLimits = {
    connectTimeoutMs: 2000,
    idleTimeoutMs: 5000,
    totalTimeoutMs: 20_000,
    maxBytes: 256 * 1024 * 1024,
    maxRedirects: 0,
  };
  let dir = "";
  let server: http.Server;
  let url = "";
  const body = randomBytes(8 * 1024 * 1024);
  before(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), "buildd-sha1-"));
    // Half the body, a pause (the thread is killed meanwhile), then the rest.
    server = http.createServer((_req, res) => {
      res.writeHead(200, { "content-length": body.length });
      res.write(body.subarray(0, body.length / 2));
      setTimeout(() => res.end(body.subarray(body.length / 2)), 300);
    });
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
    url = `http://127.0.0.1:${(server.address() as { port: number }).port}/f`;
  });
  after(() => {
    server.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  test("fails with a local error naming the thread, and the next download is right", async () => {
    const destPath = path.join(dir, "first");
    const download = fetchToFile({ url, destPath, limits: LIMITS });
    await new Promise((r) => setTimeout(r, 150));
    assert.equal(await crashHashThreadForTests(), true, "the download started the thread");
    await assert.rejects(download, (err: unknown) => {
      assert.ok(err instanceof FetchError);
      assert.equal(err.code, "BUILDD_ERR_FETCH_LOCAL");
      assert.match(err.message, /cannot hash the download: the SHA-1 thread stopped/);
      return true;
    });
    const again = path.join(dir, "second");
    const r = await fetchToFile({ url, destPath: again, limits: LIMITS });
    assert.equal(r.sha1, sha1(body));
    assert.deepEqual(fs.readFileSync(again), body);
  });
});

// Last in the file: from here on this process hashes inline.
describe("a hashing thread that dies before it ever answers", () => {
  test("later hashes are computed inline, and are right", async () => {
    await crashHashThreadForTests(); // the thread the earlier tests used, which answered
    const first = startSha1(); // a new thread, stopped before it answers anything
    assert.equal(await crashHashThreadForTests(), true);
    await assert.rejects(first.digest(), /the SHA-1 thread stopped/);
    const bytes = randomBytes(3_000_000);
    const next = startSha1();
    next.update(shared(bytes));
    assert.equal(await next.digest(), sha1(bytes));
    assert.equal(await crashHashThreadForTests(), false, "no thread was started for it");
  });
});
