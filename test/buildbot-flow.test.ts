// Flow control of a step's output against a real Buildbot master: a step that writes far
// faster than the master stores is slowed to the master's pace (updates not acknowledged
// yet are bounded per command, and the child's pipes are paused meanwhile), so the
// worker's memory stays bounded, and the log still arrives whole and in order.
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { after, before, describe, test } from "node:test";
import pino from "pino";
import {
  buildbotMissing,
  RESULTS,
  startBuildbotMaster,
  type BuildbotMaster,
} from "../harness/buildbot-master.js";
import { MachineSlots } from "../src/builder/slots.js";
import { DEFAULT_SETTINGS, UpdateBatcher } from "../src/buildbot/output.js";
import { startBuildbotWorker, type BuildbotWorker } from "../src/buildbot/worker.js";
import { createScrubber } from "../src/log/scrub.js";
import { isolationSupport, processRunner } from "../src/process/runner.js";
import type { BuildGate } from "../src/protocol/gate.js";

const skip = process.env["CI"] === "true" ? false : buildbotMissing();

const MiB = 1024 * 1024;
/** Lines of 1000 bytes the step writes. */
const LINES = Number(process.env["FLOW_LINES"] ?? 48_000);
const LINE = `${"flood ".repeat(166)}${"xyz"}`; // 999 characters and "\n"
/**
 * What buildd's RSS may grow by while the step runs. Measured with 46 MiB written and
 * the master stalled for 5 s: about 25 MiB with flow control (the 4 MiB in flight and
 * the collector's slack), about 70 MiB without, when every byte read waits in memory to
 * be sent (more with more output: 115 MiB for 76 MiB).
 */
const MAX_GROWTH = 50 * MiB;

const BUILDERS = `
  c['logCompressionMethod'] = 'raw'
  c['builders'].append(util.BuilderConfig(name='flood', workernames=WORKERS,
      factory=util.BuildFactory([steps.ShellCommand(name='flood', timeout=2,
          command='echo on stderr >&2; yes "${LINE}" | head -n ${LINES}; echo the end')])))
  c['builders'].append(util.BuilderConfig(name='flood-log', workernames=WORKERS,
      factory=util.BuildFactory([steps.ShellCommand(name='flood-log',
          logfiles={'big': 'big.log'},
          command='yes "${LINE}" | head -n ${LINES / 8} > big.log; echo written')])))
`;

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

const gate: BuildGate = () => ({ env: {}, logLines: [], extraStatus: {}, secrets: [] });

/** A batcher whose sends wait for answer(i) or fail(i); at most `max` unacknowledged. */
function batcher(max: number): {
  updates: UpdateBatcher;
  sent: unknown[][];
  answer: (i: number) => void;
  fail: (i: number) => void;
} {
  const sent: unknown[][] = [];
  const answers: { resolve: () => void; reject: (e: Error) => void }[] = [];
  const updates = new UpdateBatcher(
    (args) => {
      sent.push(args);
      return new Promise<void>((resolve, reject) => answers.push({ resolve, reject }));
    },
    () => ({ ...DEFAULT_SETTINGS, bufferSize: 1000 }),
    max,
  );
  return {
    updates,
    sent,
    answer: (i) => answers[i]!.resolve(),
    fail: (i) => answers[i]!.reject(new Error("connection lost")),
  };
}

const line = (n: number): string => `${String(n).padStart(99, "0")}\n`;
const tick = (): Promise<void> => new Promise((r) => setImmediate(r));

test("updates: over the bound of unacknowledged bytes, sources wait until answers come", async () => {
  const b = batcher(4000);
  assert.equal(b.updates.whenWritable(), null);
  for (let i = 0; i < 40; i++) b.updates.text("stdout", line(i).repeat(10));
  // Each text is over buffer_size: sent at once, unanswered.
  assert.equal(b.sent.length, 40);
  const wait = b.updates.whenWritable();
  assert.ok(wait !== null);
  assert.equal(b.updates.waiting, true);
  let resumed = false;
  void wait.then(() => (resumed = true));
  for (let i = 0; i < 36; i++) b.answer(i);
  await tick();
  assert.equal(resumed, false, "resumed while still over the bound");
  b.answer(36);
  await tick();
  assert.equal(resumed, true);
  assert.equal(b.updates.waiting, false);
  // A lost connection answers with an error: that frees the room too, and drain ends.
  for (let i = 0; i < 10; i++) b.updates.text("stderr", line(i).repeat(10));
  const again = b.updates.whenWritable();
  assert.ok(again !== null);
  for (let i = 37; i < 50; i++) b.fail(i);
  await again;
  await b.updates.drain();
  assert.equal(b.updates.pending, 0);
});

test("updates: discarding (the command given up) lets every waiting source go", async () => {
  const b = batcher(1000);
  b.updates.text("stdout", line(1).repeat(20));
  const wait = b.updates.whenWritable();
  assert.ok(wait !== null);
  b.updates.discard();
  await wait;
});

interface LogJson {
  readonly logid: number;
  readonly slug: string;
  readonly num_lines: number;
}

describe("flow control of output against a real Buildbot master", { skip }, () => {
  let master: BuildbotMaster;
  let worker: BuildbotWorker;
  let top: string;

  before(async () => {
    fs.mkdirSync(".cache", { recursive: true });
    top = fs.mkdtempSync(path.join(path.resolve(".cache"), "bb-flow-"));
    const basedir = path.join(top, "worker");
    fs.mkdirSync(basedir);
    // As `buildd serve` does at start-up (app.ts): the spawn helper is running
    // before the step starts, and what is measured is the step's output alone.
    await isolationSupport();
    master = await startBuildbotMaster({
      workers: [{ name: "bd", password: "flow-pw" }],
      builders: BUILDERS,
    });
    worker = startBuildbotWorker({
      master: { host: "127.0.0.1", port: master.workerPort },
      name: "bd",
      password: "flow-pw",
      basedir,
      info: () => ({ admin: "Test Admin <admin@example.org>", host: "test host" }),
      runner: processRunner,
      sandbox: null,
      buildUser: null,
      scrubber: createScrubber(["flow-pw"]),
      slots: new MachineSlots(1),
      gate,
      sharedCache: null,
      logger: pino({ level: "warn" }),
      reconnect: { minMs: 100, maxMs: 1000 },
      version: "0.1.0-test",
    });
    await master.waitForWorker("bd", true);
  });
  after(async () => {
    await worker?.close();
    await master?.stop();
    if (top) fs.rmSync(top, { recursive: true, force: true });
  });

  /** The master's processes (it leads a process group; its Python does the work). */
  function masterProcesses(): number[] {
    const pids: number[] = [];
    for (const name of fs.readdirSync("/proc")) {
      if (!/^\d+$/.test(name)) continue;
      try {
        if (fs.readFileSync(`/proc/${name}/cmdline`, "latin1").includes(master.dir)) {
          pids.push(Number(name));
        }
      } catch {
        // gone
      }
    }
    return pids;
  }

  /**
   * Run a build while sampling our RSS, the master stopped (SIGSTOP) for `stallMs` soon
   * after the step started: a master that stores nothing for a while, as a busy one on a
   * slow disk would. Its result, the step's logs, the RSS growth.
   */
  async function flood(
    builder: string,
    stallMs: number,
  ): Promise<{
    results: number;
    buildId: number;
    step: number;
    logs: LogJson[];
    growth: number;
    stallGrowth: number;
    seconds: number;
  }> {
    const base = process.memoryUsage().rss;
    let peak = base;
    let stallBase: number;
    let stallPeak = 0;
    const sampler = setInterval(() => {
      const rss = process.memoryUsage().rss;
      peak = Math.max(peak, rss);
      stallPeak = Math.max(stallPeak, rss);
    }, 50);
    const began = performance.now();
    try {
      const forced = await master.forceBuild(builder);
      await master.waitForBuildStart(forced.buildrequestId);
      await sleep(1000);
      const stopped = masterProcesses();
      assert.ok(stopped.length > 0, "the master's processes were not found");
      for (const pid of stopped) process.kill(pid, "SIGSTOP");
      stallBase = process.memoryUsage().rss;
      stallPeak = stallBase;
      try {
        await sleep(stallMs);
      } finally {
        for (const pid of stopped) process.kill(pid, "SIGCONT");
      }
      const { results, build } = await master.waitForBuild(forced.buildrequestId, 120_000);
      const buildId = build!.buildid;
      const step = (await master.steps(buildId)).find((s) => s.name === builder);
      const { logs } = await master.api<{ logs: LogJson[] }>(
        `builds/${buildId}/steps/${step!.number}/logs`,
      );
      return {
        results,
        buildId,
        step: step!.number,
        logs,
        growth: peak - base,
        stallGrowth: stallPeak - stallBase,
        seconds: (performance.now() - began) / 1000,
      };
    } finally {
      clearInterval(sampler);
    }
  }

  /** The stored lines [offset, offset + limit) of a log, each with its stream marker. */
  async function lines(logid: number, offset: number, limit: number): Promise<string[]> {
    const { logchunks } = await master.api<{ logchunks: { content: string }[] }>(
      `logs/${logid}/contents?offset=${offset}&limit=${limit}`,
    );
    return logchunks
      .map((c) => c.content)
      .join("")
      .split("\n")
      .filter((l) => l !== "");
  }

  test(`a step writing ${Math.round((LINES * 1000) / MiB)} MiB: SUCCESS, every line stored, buildd's memory bounded`, async () => {
    const run = await flood("flood", 5000);
    if (process.env["FLOW_DEBUG"]) {
      console.log({
        growthMiB: run.growth / MiB,
        stallGrowthMiB: run.stallGrowth / MiB,
        seconds: run.seconds,
      });
    }
    assert.equal(run.results, RESULTS.SUCCESS);
    const stdio = run.logs.find((l) => l.slug === "stdio")!;
    // The header's lines, the output's, and the master's "program finished" lines.
    const tail = await lines(stdio.logid, stdio.num_lines - 6, 6);
    if (process.env["FLOW_DEBUG"])
      console.log(
        stdio,
        tail.map((l) => l.slice(0, 30)),
      );
    // stdout and stderr are two pipes: which one is read first is not known.
    const head = await lines(stdio.logid, 0, 1000);
    const outLines = head.findIndex((l) => l === `o${LINE}`);
    assert.ok(outLines > 0, "no output line near the start");
    const stderrAt = head.indexOf("eon stderr");
    assert.ok(stderrAt > 0, "no stderr line near the start");
    assert.equal(tail.filter((l) => l === "othe end").length, 1, tail.join("\n"));
    // Every line between the header and the end is the step's.
    const end = tail.findIndex((l) => l === "othe end");
    const lastOutput = stdio.num_lines - 6 + end - 1;
    const stored = lastOutput - outLines + 1 - (stderrAt > outLines ? 1 : 0);
    assert.equal(stored, LINES, `${stdio.num_lines} lines stored`);
    assert.deepEqual(await lines(stdio.logid, lastOutput, 1), [`o${LINE}`]);
    assert.ok(
      run.growth < MAX_GROWTH,
      `buildd's RSS grew by ${(run.growth / MiB).toFixed(1)} MiB while the step ran`,
    );
  });

  test("a large logfile is read no faster than the master stores it", async () => {
    const run = await flood("flood-log", 3000);
    if (process.env["FLOW_DEBUG"]) {
      console.log({ logfileGrowthMiB: run.growth / MiB, seconds: run.seconds });
    }
    assert.equal(run.results, RESULTS.SUCCESS);
    const big = run.logs.find((l) => l.slug === "big")!;
    assert.equal(big.num_lines, LINES / 8);
    assert.deepEqual(await lines(big.logid, big.num_lines - 1, 1), [`o${LINE}`]);
    assert.ok(
      run.growth < MAX_GROWTH,
      `buildd's RSS grew by ${(run.growth / MiB).toFixed(1)} MiB while the step ran`,
    );
  });
});
