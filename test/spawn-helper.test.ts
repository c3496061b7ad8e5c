// The spawn helper (src/process/spawner.ts), a process of its own, starts every command
// and relays its output. If it dies while commands run, nothing would ever report their
// end: each must be killed, with everything it started, and reported as not finished,
// and the next command must run through a new helper. Otherwise a build would stay
// BUILDING for ever.
import assert from "node:assert/strict";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { after, test } from "node:test";
import { BuildLog } from "../src/log/buildlog.js";
import { createScrubber } from "../src/log/scrub.js";
import { isAlive } from "../src/process/pidns.js";
import { processRunner } from "../src/process/runner.js";

const dir = fs.mkdtempSync(path.join(os.tmpdir(), "buildd-spawn-helper-"));
after(() => fs.rmSync(dir, { recursive: true, force: true }));

function freshLog(name: string): BuildLog {
  return BuildLog.create(path.join(dir, name), { maxBytes: 1 << 20, scrubber: createScrubber([]) });
}

/** The spawn helper: this process's child running spawn-helper.ts. */
function helperPid(): number {
  const children = fs
    .readdirSync(`/proc/${process.pid}/task`)
    .flatMap((tid) =>
      fs.readFileSync(`/proc/${process.pid}/task/${tid}/children`, "utf8").split(" "),
    )
    .filter((p) => p !== "");
  const helpers = children.filter((pid) => {
    try {
      return fs.readFileSync(`/proc/${pid}/cmdline`, "utf8").includes("spawn-helper");
    } catch {
      return false;
    }
  });
  assert.equal(helpers.length, 1, `one spawn helper among ${children.join(", ")}`);
  return Number(helpers[0]);
}

/** The pids of `sleep` processes whose argument is `marker` (a number no one else uses). */
function sleepers(marker: string): number[] {
  return fs
    .readdirSync("/proc")
    .filter((e) => /^\d+$/.test(e))
    .filter((pid) => {
      try {
        return fs.readFileSync(`/proc/${pid}/cmdline`, "utf8") === `sleep\0${marker}\0`;
      } catch {
        return false;
      }
    })
    .map(Number)
    .filter(isAlive);
}

async function until(cond: () => boolean, ms: number): Promise<boolean> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) return false;
    await new Promise((r) => setTimeout(r, 20));
  }
  return true;
}

test("commands running when the spawn helper dies are killed and reported unfinished", async () => {
  const streamMarker = `${600 + process.pid}`;
  const groupMarker = `${800 + process.pid}`;
  const captureMarker = `${700 + process.pid}`;
  const log = freshLog("stream.log");
  // A streamed step whose command starts a grandchild, in a PID namespace and (where
  // the kernel's parent-death signal cannot help) in a plain process group; and a
  // captured command.
  const step = processRunner.start({
    argv: ["sh", "-c", `echo started; sleep ${streamMarker} & wait`],
    log,
  });
  const groupStep = processRunner.start({
    argv: ["sh", "-c", `sleep ${groupMarker} & wait`],
    log: freshLog("group.log"),
    isolation: { pid: false },
  });
  const captured = processRunner.capture({ argv: ["sleep", captureMarker] });
  const markers = [streamMarker, groupMarker, captureMarker];
  // Should the test fail, what it started is not left behind.
  after(() => markers.flatMap(sleepers).forEach((pid) => process.kill(pid, "SIGKILL")));
  assert.ok((await step.pid) > 0, "the step was spawned");
  assert.ok(
    await until(() => markers.every((m) => sleepers(m).length === 1), 5000),
    "every sleep is running",
  );

  const helper = helperPid();
  process.kill(helper, "SIGKILL");

  assert.deepEqual(await step.done, { exitCode: null, signal: null }, "the step did not finish");
  assert.deepEqual(await groupStep.done, { exitCode: null, signal: null });
  const r = await captured;
  assert.equal(r.exitCode, null);
  assert.match(r.error ?? "", /the process that runs commands stopped: it was killed by SIGKILL/);
  assert.ok(
    await until(() => markers.every((m) => sleepers(m).length === 0), 5000),
    "nothing the commands started is left running",
  );
  const text = fs.readFileSync(log.path, "utf8");
  assert.match(text, /started\n/);
  assert.match(
    text,
    /\[buildd\] sh: the process that runs commands stopped: it was killed by SIGKILL; killing what it started/,
  );

  // The next command gets a new helper.
  const again = await processRunner.capture({ argv: ["echo", "again"] });
  assert.equal(again.error, null);
  assert.equal(again.stdout, "again\n");
  assert.notEqual(helperPid(), helper);
});
