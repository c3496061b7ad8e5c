// Backpressure in the runner's streaming path: a sink that says it cannot take more
// (BuildLogStream.whenWritable) stops the reading of the child's pipe, so the child
// blocks on a full pipe; once the sink takes more, everything arrives, whole and in order.
import assert from "node:assert/strict";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { test } from "node:test";
import type { BuildLogStream, OutputSink } from "../src/log/buildlog.js";
import { processRunner } from "../src/process/runner.js";
import { isolationSupport } from "../src/process/runner.js";

const MiB = 1024 * 1024;
const LINE = 1024;
/** Lines the child writes: 64 MiB of numbered lines of 1 KiB. */
const LINES = 64 * 1024;
/** What the sink takes before it says it is full. */
const ROOM = 1 * MiB;

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/**
 * The child: LINES numbered lines of LINE bytes, written 64 at a time to stdout (a
 * blocking write), its progress (bytes written) in `progress` after each write, and a
 * last line to stderr.
 */
const CHILD = `
import os, sys
progress = sys.argv[1]
done = 0
for block in range(${LINES / 64}):
    data = b"".join(b"%08d " % (block * 64 + j) + b"x" * ${LINE - 10} + b"\\n" for j in range(64))
    view = memoryview(data)
    while view:
        n = os.write(1, view)
        view = view[n:]
        done += n
    with open(progress + ".tmp", "w") as f:
        f.write(str(done))
    os.rename(progress + ".tmp", progress)
os.write(2, b"all written\\n")
`;

/** A sink that takes ROOM bytes of stdout, then is full until released; checks the order. */
function limitedSink(): OutputSink & {
  got: () => number;
  lines: () => number;
  stderr: () => string;
  release: () => void;
  errors: string[];
} {
  let got = 0;
  let lines = 0;
  let partial = "";
  let stderr = "";
  let released = false;
  let waiters: (() => void)[] = [];
  const errors: string[] = [];
  const stdout: BuildLogStream = {
    push: (chunk) => {
      got += chunk.length;
      const text = partial + chunk.toString("latin1");
      const parts = text.split("\n");
      partial = parts.pop()!;
      for (const line of parts) {
        const n = Number(line.slice(0, 8));
        if (n !== lines || line.length !== LINE - 1) {
          if (errors.length < 5) errors.push(`line ${lines}: ${line.slice(0, 20)}…`);
        }
        lines++;
      }
    },
    flushIdle: () => {},
    end: () => {},
    whenWritable: () => {
      if (released || got < ROOM) return null;
      return new Promise((resolve) => waiters.push(resolve));
    },
  };
  return {
    path: "limited sink",
    logCommand: () => {},
    write: () => {},
    stream: (which) =>
      which === "stdout"
        ? stdout
        : {
            push: (chunk) => {
              stderr += chunk.toString();
            },
            flushIdle: () => {},
            end: () => {},
          },
    got: () => got,
    lines: () => lines,
    stderr: () => stderr,
    release: () => {
      released = true;
      for (const w of waiters) w();
      waiters = [];
    },
    errors,
  };
}

function progressOf(file: string): number {
  try {
    return Number(fs.readFileSync(file, "utf8"));
  } catch {
    return 0;
  }
}

for (const pid of [false, true]) {
  test(
    `a full sink stops the reading: the child blocks, then all of it arrives in order (${pid ? "isolated" : "not isolated"})`,
    { skip: pid && !(await isolationSupport()).ok && "no PID namespaces here" },
    async () => {
      const dir = fs.mkdtempSync(path.join(os.tmpdir(), "backpressure-"));
      try {
        const progress = path.join(dir, "progress");
        const sink = limitedSink();
        const proc = processRunner.start({
          argv: ["python3", "-c", CHILD, progress],
          log: sink,
          isolation: { pid },
        });
        let settled = false;
        void proc.done.then(() => (settled = true));

        // Wait until the child is stuck: its progress stops moving.
        let last = -1;
        for (let i = 0; ; i++) {
          await sleep(200);
          const now = progressOf(progress);
          if (now === last && now > 0) break;
          last = now;
          assert.ok(i < 100, "the child never stopped writing");
        }
        await sleep(500);
        const stuck = progressOf(progress);
        assert.equal(stuck, last, "the child went on writing while the sink was full");
        assert.equal(settled, false);
        // The sink got a little past ROOM (one chunk); the rest sits in the pipe and in the
        // reader's buffer, a pipe's worth, far below what the child wants to write.
        assert.ok(sink.got() >= ROOM && sink.got() < ROOM + MiB, `sink got ${sink.got()}`);
        assert.ok(stuck < ROOM + 8 * MiB, `the child wrote ${stuck} bytes`);
        assert.ok(stuck >= sink.got() - 64 * 1024, `the child wrote ${stuck} bytes`);
        if (process.env["BACKPRESSURE_DEBUG"]) console.log({ got: sink.got(), stuck });

        sink.release();
        const result = await proc.done;
        assert.deepEqual(result, { exitCode: 0, signal: null });
        assert.deepEqual(sink.errors, []);
        assert.equal(sink.lines(), LINES);
        assert.equal(sink.got(), LINES * LINE);
        assert.equal(sink.stderr(), "all written\n");
      } finally {
        fs.rmSync(dir, { recursive: true, force: true });
      }
    },
  );
}

test("a child paused on a full sink is still killed, and its end is read once the sink takes it", async () => {
  const sink = limitedSink();
  const proc = processRunner.start({
    argv: ["sh", "-c", "yes; sleep 100"],
    log: sink,
  });
  for (let i = 0; sink.got() < ROOM; i++) {
    assert.ok(i < 100, "no output");
    await sleep(50);
  }
  await sleep(300);
  const before = sink.got();
  await sleep(300);
  assert.equal(sink.got(), before, "reading went on while the sink was full");
  const { survivors } = await proc.terminate(0);
  assert.deepEqual(survivors, []);
  // Past the pipes' grace after the exit, a paused pipe is not cut: it is still output.
  await sleep(2500);
  sink.release();
  const result = await proc.done;
  // Killed: by the signal, or PID 1 of its namespace exiting on TERM (143).
  assert.ok(result.signal !== null || result.exitCode === 143, JSON.stringify(result));
  assert.ok(sink.got() > before, "what was left in the pipe was not read");
});
