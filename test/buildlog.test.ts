import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { BuildLog, readLogTail, shellQuote, utcTimestamp } from "../src/log/buildlog.js";
import { createScrubber } from "../src/log/scrub.js";

function tempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), "buildlog-test-"));
  test.after(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

const opts = (maxBytes = 1 << 20, secrets: string[] = []) => ({
  maxBytes,
  scrubber: createScrubber(secrets),
});

test("readLogTail returns at most the last 2048 bytes", () => {
  const dir = tempDir();
  for (const [size, expected] of [
    [0, 0],
    [1, 1],
    [2048, 2048],
    [2049, 2048],
    [4096, 2048],
  ] as const) {
    const path = join(dir, `log-${size}`);
    const content = Buffer.alloc(size);
    for (let i = 0; i < size; i++) content[i] = (i * 7 + (i >> 8)) & 0xff;
    writeFileSync(path, content);
    const tail = readLogTail(path);
    assert.equal(tail.length, expected, `size ${size}`);
    assert.deepEqual(tail, content.subarray(size - expected), `size ${size}`);
  }
  assert.deepEqual(readLogTail(join(dir, "missing")), Buffer.alloc(0));
  assert.equal(readLogTail(join(dir, "log-4096"), 10).length, 10);
});

test("create truncates, makes mode 0644 and appends; reopen continues", () => {
  const dir = tempDir();
  const path = join(dir, "buildlog");
  writeFileSync(path, "old content\n");
  const oldUmask = process.umask(0o077);
  let log: BuildLog;
  try {
    log = BuildLog.create(path, opts());
  } finally {
    process.umask(oldUmask);
  }
  assert.equal(statSync(path).mode & 0o777, 0o644);
  log.write("one\n");
  log.write(Buffer.from("two\n"));
  assert.equal(log.size, 8);
  log.close();
  log.write("dropped after close\n");
  const again = BuildLog.reopen(path, opts());
  assert.equal(again.size, 8);
  again.write("three\n");
  again.close();
  assert.equal(readFileSync(path, "utf8"), "one\ntwo\nthree\n");
});

test("write scrubs URL credentials and secrets", () => {
  const path = join(tempDir(), "buildlog");
  const log = BuildLog.create(path, opts(1 << 20, ["hunter22"]));
  log.write("Get:1 http://buildd:secret@ftpmaster.internal focal InRelease\n");
  log.write(Buffer.from("password is hunter22\n"));
  log.close();
  assert.equal(
    readFileSync(path, "utf8"),
    "Get:1 http://ftpmaster.internal focal InRelease\npassword is ********\n",
  );
});

test("exceeding maxBytes stops the log with one notice and one callback", () => {
  const path = join(tempDir(), "buildlog");
  const log = BuildLog.create(path, opts(100));
  let calls = 0;
  log.onExceeded(() => calls++);
  log.write("x".repeat(60));
  assert.equal(log.exceeded, false);
  log.write("y".repeat(60));
  assert.equal(log.exceeded, true);
  assert.equal(calls, 1);
  log.write("z".repeat(60));
  log.stream().push(Buffer.from("more\n"));
  assert.equal(calls, 1);
  let late = 0;
  log.onExceeded(() => late++);
  assert.equal(late, 1, "a callback registered after the fact runs at once");
  log.close();
  const notice =
    "\n[buildd] build log exceeded the maximum size of 100 bytes; stopping the build\n";
  assert.equal(readFileSync(path, "utf8"), "x".repeat(60) + "y".repeat(40) + notice);
  assert.equal(log.size, 100 + notice.length);
  // A reopened log that is already full stays stopped.
  const reopened = BuildLog.reopen(path, opts(100));
  assert.equal(reopened.exceeded, true);
  reopened.write("after restart\n");
  reopened.close();
  assert.equal(statSync(path).size, 100 + notice.length);
});

test("stream() scrubs credentials split across chunks", () => {
  const path = join(tempDir(), "buildlog");
  const log = BuildLog.create(path, opts());
  const s = log.stream();
  s.push(Buffer.from("fetching http://user:sec"));
  s.flushIdle();
  assert.equal(readFileSync(path, "utf8"), "fetching http");
  s.push(Buffer.from("ret@host/file ok\n"));
  s.end();
  log.close();
  assert.equal(readFileSync(path, "utf8"), "fetching http://host/file ok\n");
});

test("shellQuote quotes like shlex.join", () => {
  assert.equal(shellQuote(["echo", "hello world"]), "echo 'hello world'");
  assert.equal(shellQuote(["a-b_c.d/e:f,g=h+i@j%k"]), "a-b_c.d/e:f,g=h+i@j%k");
  assert.equal(shellQuote([""]), "''");
  assert.equal(shellQuote(["it's"]), `'it'"'"'s'`);
  assert.equal(shellQuote(["$HOME", "a*b", "x\ny"]), "'$HOME' 'a*b' 'x\ny'");
});

test("logCommand writes a UTC timestamp line and a quoted, scrubbed RUN line", () => {
  const path = join(tempDir(), "buildlog");
  const log = BuildLog.create(path, opts(1 << 20, ["hunter22"]));
  const before = Date.now();
  log.logCommand(["echo", "hello world"]);
  log.logCommand(["git", "clone", "https://u:tok3n@git.example/r.git", "--password=hunter22"]);
  log.close();
  const lines = readFileSync(path, "utf8").split("\n");
  assert.equal(lines.length, 5);
  const stamp = /^\[(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d) UTC\]$/;
  assert.match(lines[0]!, stamp);
  const when = Date.parse(`${stamp.exec(lines[0]!)![1]!.replace(" ", "T")}Z`);
  assert.ok(Math.abs(when - before) < 2000, `timestamp ${lines[0]} is UTC now`);
  assert.equal(lines[1], "RUN: echo 'hello world'");
  assert.match(lines[2]!, stamp);
  assert.equal(lines[3], "RUN: git clone https://git.example/r.git --password=********");
  assert.equal(
    utcTimestamp(new Date(Date.UTC(2026, 10, 21, 19, 41, 41))),
    "2026-11-21 19:41:41 UTC",
  );
});

test("tail() is the file's last 2048 bytes after every write, across the limit and a reopen", () => {
  const dir = tempDir();
  const path = join(dir, "buildlog");
  let seed = 7;
  const random = (n: number): number => {
    seed = (seed * 1103515245 + 12345) % 2 ** 31;
    return seed % n;
  };
  const log = BuildLog.create(path, opts(200_000));
  assert.deepEqual(log.tail(), Buffer.alloc(0));
  for (let i = 0; i < 400 && !log.exceeded; i++) {
    // Mostly small writes, some near and past the tail's size.
    const size = [1, 17, 300, 2047, 2048, 2049, 5000][random(7)]!;
    const chunk = Buffer.alloc(size);
    for (let j = 0; j < size; j++) chunk[j] = 0x61 + random(26);
    if (random(2) === 0) log.write(chunk);
    else log.stream().push(chunk);
    assert.deepEqual(log.tail(), readLogTail(path), `after write ${i} of ${size} bytes`);
    assert.equal(log.tail(), log.tail(), "the same Buffer until the next write");
  }
  assert.ok(log.exceeded, "the writes went past the limit");
  assert.match(log.tail().toString(), /exceeded the maximum size of 200000 bytes/);
  log.close();
  const again = BuildLog.reopen(path, opts());
  assert.deepEqual(again.tail(), readLogTail(path), "reopened");
  again.write("more\n");
  assert.deepEqual(again.tail(), readLogTail(path));
  assert.ok(again.tail().toString().endsWith("more\n"));
});
