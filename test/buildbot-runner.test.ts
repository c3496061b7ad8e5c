// The runner changes the Buildbot worker relies on: a command's stdout and stderr reach
// an output sink apart (the master shows them as two streams), and a command can be given
// its stdin (a step's initial_stdin), also through the sandbox prologue, whose background
// job would otherwise read /dev/null.
import { test } from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import type { BuildLogStream, OutputSink } from "../src/log/buildlog.js";
import { processRunner } from "../src/process/runner.js";
import { sandboxWrap } from "../src/backends/sandbox.js";

interface Got {
  stdout: string;
  stderr: string;
  said: string;
}

/** A sink that keeps what each stream got. */
function recordingSink(): OutputSink & { got: Got } {
  const got: Got = { stdout: "", stderr: "", said: "" };
  return {
    path: "test sink",
    got,
    logCommand: () => {},
    write: (text) => {
      got.said += text.toString();
    },
    stream: (which): BuildLogStream => ({
      push: (chunk) => {
        got[which] += chunk.toString();
      },
      flushIdle: () => {},
      end: () => {},
    }),
  };
}

test("stdout and stderr reach the sink apart; stdin is written then closed", async () => {
  const sink = recordingSink();
  const r = await processRunner.start({
    argv: ["sh", "-c", "cat; echo to-err >&2; echo to-out"],
    log: sink,
    stdin: "from stdin\n",
  }).done;
  assert.equal(r.exitCode, 0);
  assert.equal(sink.got.stdout, "from stdin\nto-out\n");
  assert.equal(sink.got.stderr, "to-err\n");
});

test("without stdin a command reads end of file at once", async () => {
  const sink = recordingSink();
  const r = await processRunner.start({ argv: ["sh", "-c", "cat; echo end"], log: sink }).done;
  assert.equal(r.exitCode, 0);
  assert.equal(sink.got.stdout, "end\n");
});

test(
  "stdin reaches a sandboxed step",
  { skip: process.getuid?.() !== 0 && "needs root" },
  async () => {
    const ws = fs.mkdtempSync(path.join(path.resolve(".cache"), "bb-runner-"));
    const state = path.dirname(ws);
    try {
      const sink = recordingSink();
      const r = await processRunner.start({
        argv: ["sh", "-c", "id -u; cat"],
        log: sink,
        stdin: Buffer.from("bytes in\n"),
        cwd: ws,
        wrap: sandboxWrap({ user: "nobody", gid: 65534, statedir: state, hidden: [] }, ws, []),
        isolation: { mount: true },
      }).done;
      assert.equal(r.exitCode, 0, sink.got.stderr + sink.got.said);
      assert.equal(sink.got.stdout, "65534\nbytes in\n");
    } finally {
      fs.rmSync(ws, { recursive: true, force: true });
    }
  },
);
