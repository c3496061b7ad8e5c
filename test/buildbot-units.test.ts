// The Buildbot worker's pure parts, cheaply: line cutting and update batching, the env
// rules, the msgpack shapes the master needs (text as str, data as bin), argv with
// obfuscated words, path confinement, glob, and build sessions over the machine's slots.
import assert from "node:assert/strict";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { test } from "node:test";
import { decode } from "@msgpack/msgpack";
import { MachineSlots } from "../src/builder/slots.js";
import { stepEnvironment } from "../src/buildbot/env.js";
import { globIn } from "../src/buildbot/fscommands.js";
import {
  DEFAULT_SETTINGS,
  LineSplitter,
  newlinePattern,
  UpdateBatcher,
  type OutputSettings,
} from "../src/buildbot/output.js";
import { defaultBuilderDir, WorkerDirs } from "../src/buildbot/paths.js";
import { BuilderSessions } from "../src/buildbot/sessions.js";
import { commandArgv } from "../src/buildbot/shell.js";
import { encodeFrame } from "../src/buildbot/wire.js";
import { Tree } from "../src/backends/inroot.js";

const settings: OutputSettings = { ...DEFAULT_SETTINGS, maxLineLength: 10 };

test("lines: whole lines only, the partial held, flushed with a newline added", () => {
  const s = new LineSplitter(DEFAULT_SETTINGS);
  assert.equal(s.push("one\ntw"), "one\n");
  assert.equal(s.push("o\r\nthree"), "two\n");
  assert.equal(s.push("\r"), "");
  assert.equal(s.push("\n"), "three\n", "a CR LF split across chunks is one line end");
  assert.equal(s.push("progress 1\rprogress 2"), "progress 1\n", "a lone CR ends a line");
  assert.equal(s.flush(), "progress 2\n");
  assert.equal(s.flush(), "");
});

test("lines: longer than max_line_length are cut", () => {
  const s = new LineSplitter(settings);
  assert.equal(s.push("abcdefghijklmno\nxy"), "abcdefghij\nklmno\n");
  assert.equal(s.push("0123456789abc"), "xy01234567\n");
  assert.equal(s.flush(), "89abc\n");
});

test("the master's newline pattern (Python syntax) compiles as it means", () => {
  const re = newlinePattern(
    String.raw`(\r\n|\r(?=.)|\033\[u|\033\[[0-9]+;[0-9]+[Hf]|\033\[2J|\x08+)`,
  );
  assert.equal("a\x1b[2Jb\x08\x08c".replace(re, "\n"), "a\nb\nc");
});

test("updates: consecutive text of one stream joins into one [text, offsets, times]", async () => {
  const sent: unknown[] = [];
  const b = new UpdateBatcher(
    async (args) => void sent.push(args),
    () => settings,
  );
  b.text("stdout", "a\n");
  b.text("stdout", "bc\n");
  b.text("stderr", "e\n");
  b.text({ log: "build.log" }, "l1\n");
  b.text({ log: "build.log" }, "l2\n");
  b.value("rc", 0);
  await b.drain();
  assert.equal(sent.length, 1);
  const [args] = sent as [unknown[][]];
  assert.deepEqual(
    args.map((e) => e[0]),
    ["stdout", "stderr", "log", "rc"],
  );
  const [text, offsets, times] = args[0]![1] as [string, number[], number[]];
  assert.equal(text, "a\nbc\n");
  assert.deepEqual(offsets, [1, 4]);
  assert.equal(times.length, 2);
  const [name, info] = args[2]![1] as [string, [string, number[], number[]]];
  assert.equal(name, "build.log");
  assert.equal(info[0], "l1\nl2\n");
  assert.deepEqual(args[3], ["rc", 0]);
});

test("updates: buffer_size reached sends at once", () => {
  let sends = 0;
  const b = new UpdateBatcher(
    async () => void sends++,
    () => ({ ...settings, bufferSize: 10 }),
  );
  b.text("stdout", "0123456789\n");
  assert.equal(sends, 1);
  b.discard();
});

test("msgpack: text goes as str, file data as bin", () => {
  const frame = encodeFrame({
    op: "update_upload_file_write",
    args: Buffer.from([0, 255]),
    t: "é",
  });
  // 0xc4: bin 8; 0xa2: a 2-byte fixstr ("é" in UTF-8).
  assert.ok(frame.includes(Buffer.from([0xc4, 0x02, 0x00, 0xff])));
  assert.ok(frame.includes(Buffer.from([0xa2, 0xc3, 0xa9])));
  const back = decode(frame) as { args: Uint8Array; t: string };
  assert.deepEqual([...back.args], [0, 255]);
  assert.equal(back.t, "é");
});

test("env: None removes, lists join with ':', ${name} expands from the worker's", () => {
  const base = { PATH: "/bin", HOME: "/w", LANG: "C.UTF-8" };
  const env = stepEnvironment(base, {
    LANG: null,
    P: ["a", "b"],
    X: "${HOME}/x ${NOPE}.",
    PYTHONPATH: "lib",
  });
  assert.deepEqual(env, { PATH: "/bin", HOME: "/w", P: "a:b", X: "/w/x .", PYTHONPATH: "lib:" });
  assert.throws(() => stepEnvironment(base, { N: 3 }), /must be a string or a list/);
  assert.deepEqual(stepEnvironment(base, null), base);
});

test("argv: a string runs through /bin/sh -c; obfuscated words run real, shown fake", () => {
  assert.deepEqual(commandArgv("echo hi").real, ["/bin/sh", "-c", "echo hi"]);
  const a = commandArgv(["curl", ["obfuscated", "s3cret-token", "XXXX"], 3]);
  assert.deepEqual(a.real, ["curl", "s3cret-token", "3"]);
  assert.deepEqual(a.shown, ["curl", "XXXX", "3"]);
  assert.deepEqual(a.secrets, ["s3cret-token"]);
  assert.throws(() => commandArgv([]), /not a string or a non-empty list/);
});

test("paths: confined to the builder's directory; the default name is safeTranslate's", () => {
  const base = fs.mkdtempSync(path.join(os.tmpdir(), "bb-paths-"));
  try {
    assert.equal(defaultBuilderDir("my builder/x"), "my_builder_x");
    fs.mkdirSync(path.join(base, "b1"));
    fs.mkdirSync(path.join(base, "b2"));
    fs.mkdirSync(path.join(base, "custom"));
    const dirs = new WorkerDirs(base, null);
    const p = dirs.place("b1", `${base}/b1/build/x`);
    assert.equal(p.root, path.join(base, "b1"));
    assert.equal(p.rel, "build/x");
    assert.throws(() => dirs.place("b1", `${base}/b2/x`), /outside the builder's directory/);
    assert.throws(() => dirs.place("b1", "/etc/passwd"), /outside the builder's directory/);
    assert.throws(() => dirs.place("b1", "relative"), /not an absolute path/);
    // A builder with a custom workerbuilddir is pinned to the first one it names.
    assert.equal(dirs.place("other", `${base}/custom/f`).root, path.join(base, "custom"));
    assert.throws(() => dirs.place("other", `${base}/b2/f`), /outside/);
    assert.throws(() => dirs.place("third", `${base}/info/f`), /not inside a builder directory/);
    // ".." and links are the Tree's to refuse.
    const up = dirs.place("b1", `${base}/b1/../b2/x`);
    assert.throws(() => up.tree.resolve(up.rel), /leads out of the workspace/);
    fs.symlinkSync("/etc", path.join(base, "b1", "etc"));
    const l = dirs.place("b1", `${base}/b1/etc/passwd`);
    assert.throws(() => l.tree.resolve(l.rel), /symbolic link to "\/etc", outside/);
    assert.deepEqual(dirs.setBuilders([["n", "nd"]]), ["n"]);
    assert.ok(fs.statSync(path.join(base, "nd")).isDirectory());
    // The status lists builders by name where known, else by the directory the master made.
    assert.deepEqual(dirs.known(), ["b1", "b2", "custom", "n"]);
    assert.throws(() => dirs.setBuilders([["n", "../x"]]), /not a directory directly in/);
  } finally {
    fs.rmSync(base, { recursive: true, force: true });
  }
});

test("glob: like Python's, never through a link", () => {
  const base = fs.mkdtempSync(path.join(os.tmpdir(), "bb-glob-"));
  try {
    for (const f of ["a.txt", "b.txt", "c.log", ".hidden.txt", "sub/d.txt", "sub/deep/e.txt"]) {
      fs.mkdirSync(path.dirname(path.join(base, f)), { recursive: true });
      fs.writeFileSync(path.join(base, f), "");
    }
    fs.symlinkSync("/etc", path.join(base, "etc"));
    const tree = new Tree(base, "beneath");
    assert.deepEqual(globIn(tree, "*.txt"), ["a.txt", "b.txt"]);
    assert.deepEqual(globIn(tree, "[ab].*"), ["a.txt", "b.txt"]);
    assert.deepEqual(globIn(tree, "sub/*.txt"), ["sub/d.txt"]);
    assert.deepEqual(globIn(tree, "**/*.txt"), ["a.txt", "b.txt", "sub/d.txt", "sub/deep/e.txt"]);
    assert.deepEqual(globIn(tree, "etc/*"), [], "a link out is not listed");
    assert.deepEqual(globIn(tree, "nothing*"), []);
  } finally {
    fs.rmSync(base, { recursive: true, force: true });
  }
});

test("sessions: one slot per builder until its gap passes; a full machine waits", async () => {
  const slots = new MachineSlots(1);
  const sessions = new BuilderSessions(slots, 50);
  const said: string[] = [];
  const signal = new AbortController().signal;
  const t1 = await sessions.enter("a", false, (l) => said.push(l), signal);
  const t2 = await sessions.enter("a", false, (l) => said.push(l), signal);
  assert.equal(slots.holders().length, 1, "two commands of one builder share its slot");
  t1.leave();
  t2.leave();
  const waiting = sessions.enter("b", false, (l) => said.push(l), signal);
  assert.match(said[0]!, /^waiting for a build slot: .*\ba\b/);
  const t3 = await waiting;
  assert.deepEqual(
    slots.holders().map((h) => h.label),
    ["b"],
  );
  t3.leave();
  await new Promise((r) => setTimeout(r, 80));
  assert.equal(slots.holders().length, 0, "the session ended after its gap");
});

test("sessions: the shared cache lock is held until the session ends", async () => {
  const sessions = new BuilderSessions(new MachineSlots(2), 30);
  const said: string[] = [];
  const signal = new AbortController().signal;
  const a = await sessions.enter("a", true, (l) => said.push(l), signal);
  a.leave();
  const b = sessions.enter("b", true, (l) => said.push(l), signal);
  assert.deepEqual(said, ["waiting for the shared cache lock, held by builder a"]);
  (await b).leave();
  const aborted = new AbortController();
  const c = await sessions.enter("c", true, () => {}, signal);
  const d = sessions.enter("d", true, () => {}, aborted.signal);
  aborted.abort(new Error("interrupted"));
  await assert.rejects(d, /interrupted/);
  c.leave();
  sessions.closeAll();
});
