// unshare's SIGKILL quirk line (tree.ts) comes in several write()s, so the reader can get
// it in pieces: it must still be dropped from the log, and still stand for SIGKILL,
// while output that merely starts like it reaches the log whole.
import assert from "node:assert/strict";
import { test } from "node:test";
import { ProcessTree } from "../src/process/tree.js";

const QUIRK = "unshare: sigprocmask unblock failed: Invalid argument\n";

/** Feed `pieces` through an isolated tree's stderr filter, then release what it held. */
function filtered(pieces: string[]): { text: string; tree: ProcessTree } {
  const tree = new ProcessTree(-1, true, Promise.resolve(null), () => {});
  const out = pieces.map((p) => tree.filterStderr(Buffer.from(p)).toString());
  out.push(tree.releaseStderr().toString());
  return { text: out.join(""), tree };
}

test("the quirk line is dropped wherever the reads split it, and stands for SIGKILL", () => {
  const before = "compiling\n";
  const whole = before + QUIRK;
  for (let cut = 1; cut < whole.length; cut++) {
    for (const pieces of [
      [whole.slice(0, cut), whole.slice(cut)],
      ["unshare: ", "sigprocmask unblock failed: Invalid argument", "\n"],
    ]) {
      const { text, tree } = filtered(pieces);
      const shown = JSON.stringify(pieces);
      assert.equal(text, pieces.join("") === whole ? before : "", shown);
      assert.deepEqual(tree.exitResult(1, undefined), { exitCode: null, signal: "SIGKILL" }, shown);
    }
  }
});

test("output that only starts like the quirk line reaches the log whole, in order", () => {
  const pieces = ["building\nunshare: sig", "nal handling is fine\nunsh"];
  const { text, tree } = filtered(pieces);
  assert.equal(text, pieces.join(""));
  assert.deepEqual(tree.exitResult(1, undefined), { exitCode: 1, signal: null });
});

test("held bytes are released only once they have been held long enough", async () => {
  const tree = new ProcessTree(-1, true, Promise.resolve(null), () => {});
  assert.equal(tree.filterStderr(Buffer.from("progress: unshare")).toString(), "progress: ");
  assert.equal(tree.releaseStderr(200).length, 0, "released at once");
  await new Promise((r) => setTimeout(r, 220));
  assert.equal(tree.releaseStderr(200).toString(), "unshare");
});

test("without isolation nothing is filtered or held", () => {
  const tree = new ProcessTree(-1, false, Promise.resolve(null), () => {});
  assert.equal(tree.filterStderr(Buffer.from(QUIRK)).toString(), QUIRK);
  assert.equal(tree.filterStderr(Buffer.from("unsh")).toString(), "unsh");
});
