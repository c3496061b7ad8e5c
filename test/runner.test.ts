import { test } from "node:test";
import assert from "node:assert/strict";
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { BuildLog } from "../src/log/buildlog.js";
import { pidNamespaceOf } from "../src/process/pidns.js";
import type { RunSpec } from "../src/process/runner.js";
import { isolationSupport, processRunner } from "../src/process/runner.js";
import { createScrubber } from "../src/log/scrub.js";

const dir = mkdtempSync(join(tmpdir(), "runner-test-"));
test.after(() => rmSync(dir, { recursive: true, force: true }));

let logCount = 0;
function newLog(maxBytes = 1 << 20, secrets: string[] = []): BuildLog {
  return BuildLog.create(join(dir, `log-${++logCount}`), {
    maxBytes,
    scrubber: createScrubber(secrets),
  });
}

function readLog(log: BuildLog): string {
  return readFileSync(log.path, "utf8");
}

/** The log without its "[timestamp]" and "RUN:" lines. */
function output(log: BuildLog): string {
  const text = readLog(log);
  const lines = text.split("\n");
  assert.match(lines[0]!, /^\[\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC\]$/);
  assert.match(lines[1]!, /^RUN: /);
  return lines.slice(2).join("\n");
}

async function run(spec: Omit<RunSpec, "log"> & { log?: BuildLog }) {
  const log = spec.log ?? newLog();
  const result = await processRunner.start({ ...spec, log }).done;
  log.close();
  return { log, result };
}

const markers: string[] = [];
/** A unique `sleep` argument, so the test can find its processes from outside. */
function marker(): string {
  const m = `1000.${process.pid}${String(markers.length).padStart(3, "0")}${Math.floor(Math.random() * 1e6)}`;
  markers.push(m);
  return m;
}
// Whatever a failed test left running must not keep this file's process alive.
test.after(() => killAll(markers.flatMap((m) => processesWith(m))));

/** Living (non-zombie) processes whose command line contains `text`. */
function processesWith(text: string): number[] {
  const pids: number[] = [];
  for (const name of readdirSync("/proc")) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const cmdline = readFileSync(`/proc/${name}/cmdline`, "latin1");
      const stat = readFileSync(`/proc/${name}/stat`, "latin1");
      const state = stat.slice(stat.lastIndexOf(")") + 2, stat.lastIndexOf(")") + 3);
      if (cmdline.includes(text) && state !== "Z") pids.push(Number(name));
    } catch {
      // exited while we looked
    }
  }
  return pids;
}

function sleepersWith(text: string): number[] {
  return processesWith(text).filter((pid) => {
    try {
      return readFileSync(`/proc/${pid}/cmdline`, "latin1").startsWith("sleep\0");
    } catch {
      return false;
    }
  });
}

async function until(check: () => boolean, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) assert.fail("timed out waiting");
    await sleep(20);
  }
}

function killAll(pids: readonly number[]): void {
  for (const pid of pids) {
    try {
      process.kill(pid, "SIGKILL");
    } catch {
      // gone
    }
  }
}

test("PID namespaces are usable here (the rest of this file relies on them)", async () => {
  const iso = await isolationSupport();
  assert.equal(iso.ok, true, iso.detail);
});

test("stdout and stderr land in the log after the RUN line", async () => {
  const { log, result } = await run({ argv: ["sh", "-c", "echo out; echo err >&2"] });
  assert.deepEqual(result, { exitCode: 0, signal: null });
  const lines = readLog(log).split("\n");
  assert.equal(lines[1], `RUN: sh -c 'echo out; echo err >&2'`);
  assert.deepEqual(lines.slice(2).sort(), ["", "err", "out"]);
});

test("exit codes are reported, isolated or not", async () => {
  for (const pid of [true, false]) {
    assert.deepEqual((await run({ argv: ["sh", "-c", "exit 3"], isolation: { pid } })).result, {
      exitCode: 3,
      signal: null,
    });
    assert.equal((await run({ argv: ["false"], isolation: { pid } })).result.exitCode, 1);
  }
  const killed = await run({ argv: ["sh", "-c", "kill -TERM $$"], isolation: { pid: false } });
  assert.deepEqual(killed.result, { exitCode: null, signal: "SIGTERM" });
});

test("commands are spawned by the spawn helper, a process of its own, never by the builder", async () => {
  // Spawning holds whoever does it until the child has exec'd, and a fork from the
  // builder's process made every page the builder wrote afterwards fault once: on the
  // builder, every build step held up status() calls (docs/performance.md).
  const parentOf = (pid: string): string =>
    readFileSync(`/proc/${pid}/stat`, "latin1").split(") ")[1]!.split(" ")[1]!;
  for (const pid of [true, false]) {
    const log = newLog();
    const proc = processRunner.start({ argv: ["sleep", marker()], isolation: { pid }, log });
    const child = String(await proc.pid);
    const parent = parentOf(child);
    assert.notEqual(Number(parent), process.pid, "the builder's process spawned it");
    assert.match(readFileSync(`/proc/${parent}/cmdline`, "latin1"), /spawn-helper/);
    assert.equal(Number(parentOf(parent)), process.pid, "the helper is the builder's child");
    assert.deepEqual(await proc.terminate(0), { survivors: [] });
    assert.equal((await proc.done).exitCode, null, "killed");
    log.close();
  }
});

test("the command is PID 1 of its own namespace, with a minimal environment", async () => {
  process.env.BUILDD_RUNNER_TEST_LEAK = "leaked";
  try {
    const { log } = await run({ argv: ["sh", "-c", 'echo "pid=$$"; env | sort'] });
    const out = output(log);
    assert.match(out, /^pid=1\n/);
    assert.match(out, /^PATH=\/usr\/local\/sbin:/m);
    assert.match(out, /^LANG=C.UTF-8$/m);
    assert.doesNotMatch(out, /BUILDD_RUNNER_TEST_LEAK/);
    const custom = await run({
      argv: ["sh", "-c", 'echo "$FOO"'],
      env: { PATH: "/usr/bin:/bin", FOO: "bar" },
    });
    assert.equal(output(custom.log), "bar\n");
  } finally {
    delete process.env.BUILDD_RUNNER_TEST_LEAK;
  }
});

test("wrap and isolation go around the command; logArgv replaces the RUN line", async () => {
  const { log } = await run({
    argv: ["sh", "-c", 'echo "$FOO"; cat /proc/net/dev'],
    wrap: ["env", "FOO=wrapped"],
    isolation: { network: true },
    logArgv: ["shown", "instead"],
  });
  const text = readLog(log);
  assert.equal(text.split("\n")[1], "RUN: shown instead");
  const out = output(log);
  assert.match(out, /^wrapped\n/);
  // A fresh network namespace has only the loopback interface.
  const interfaces = out.split("\n").filter((l) => /^\s*\w+:/.test(l));
  assert.deepEqual(
    interfaces.map((l) => l.trim().split(":")[0]),
    ["lo"],
  );
});

test("a credential the child prints, split across writes, never reaches the log", async () => {
  const script =
    'a=s3cr; b=3tpw; printf "Get http://u:$a"; sleep 0.6; printf "$b@host/x\\n"; ' +
    'printf "token %s%s end\\n" hunter 22';
  const { log } = await run({ argv: ["sh", "-c", script], log: newLog(1 << 20, ["hunter22"]) });
  assert.equal(output(log), "Get http://host/x\ntoken ******** end\n");
  assert.doesNotMatch(readLog(log), /s3cr3tpw|hunter22/);
});

test("a partial line shows up in the log while the command still runs", async () => {
  const log = newLog();
  const proc = processRunner.start({ argv: ["sh", "-c", "printf 'progress 45%%'; sleep 5"], log });
  let settled = false;
  void proc.done.then(() => (settled = true));
  await until(() => readLog(log).endsWith("progress 45%"), 2000);
  assert.equal(settled, false);
  assert.deepEqual(await proc.terminate(200), { survivors: [] });
  await proc.done;
  log.close();
});

test("terminate() kills the whole tree: setsid, double fork, ignored SIGTERM", async () => {
  const [m1, m2, m3] = [marker(), marker(), marker()];
  const script =
    `setsid sh -c "trap '' TERM; sleep ${m1}" & ` +
    `(sh -c "sleep ${m2} &"); ` +
    `trap '' TERM; sleep ${m3}`;
  const log = newLog();
  const proc = processRunner.start({ argv: ["sh", "-c", script], log });
  await until(() => [m1, m2, m3].every((m) => sleepersWith(m).length === 1), 5000);
  const pids = [m1, m2, m3].flatMap((m) => processesWith(m));
  assert.ok(pids.length >= 4, `found ${pids.join(",")}`);
  // They run in another PID namespace than ours.
  assert.notEqual(pidNamespaceOf(sleepersWith(m1)[0]!), pidNamespaceOf(process.pid));

  const started = Date.now();
  const { survivors } = await proc.terminate(500);
  const took = Date.now() - started;
  assert.deepEqual(survivors, []);
  for (const pid of pids)
    assert.equal(existsSync(`/proc/${pid}`), false, `pid ${pid} still exists`);
  assert.equal(existsSync(`/proc/${await proc.pid}`), false, "unshare still exists");
  assert.ok(took >= 450 && took < 4000, `terminate took ${took} ms`);
  assert.deepEqual(await proc.done, { exitCode: null, signal: "SIGKILL" });
  log.close();
  assert.doesNotMatch(readLog(log), /sigprocmask/);
});

test("terminate() ends early when everything obeys SIGTERM", async () => {
  const m = marker();
  const log = newLog();
  const proc = processRunner.start({
    argv: ["sh", "-c", `trap 'exit 7' TERM; sleep ${m} & wait`],
    log,
  });
  await until(() => sleepersWith(m).length === 1, 5000);
  const started = Date.now();
  assert.deepEqual(await proc.terminate(5000), { survivors: [] });
  assert.ok(Date.now() - started < 2000, "did not wait out the grace period");
  assert.deepEqual(await proc.done, { exitCode: 7, signal: null });
  assert.deepEqual(processesWith(m), []);
  log.close();
});

test("a command that exits by itself leaves nothing behind", async () => {
  const m = marker();
  const { log, result } = await run({
    argv: ["sh", "-c", `setsid sleep ${m} & sleep ${m} & echo started`],
  });
  assert.equal(result.exitCode, 0);
  assert.equal(output(log), "started\n");
  assert.deepEqual(processesWith(m), []);
});

test("without isolation the process group is killed, but a setsid leftover survives (weaker)", async () => {
  const m1 = marker();
  const m2 = marker();
  const log = newLog();
  const proc = processRunner.start({
    argv: ["sh", "-c", `setsid sleep ${m2} >/dev/null 2>&1 & sleep ${m1} & wait`],
    log,
    isolation: { pid: false },
  });
  try {
    await until(() => sleepersWith(m1).length === 1 && sleepersWith(m2).length === 1, 5000);
    assert.deepEqual(await proc.terminate(500), { survivors: [] });
    assert.deepEqual(await proc.done, { exitCode: null, signal: "SIGTERM" });
    assert.deepEqual(sleepersWith(m1), []);
    assert.equal(sleepersWith(m2).length, 1, "the setsid'd process escaped the group kill");
  } finally {
    log.close();
  }
});

test("done settles 2 s after exit even if a leftover holds the pipes (no isolation)", async () => {
  const m = marker();
  const started = Date.now();
  const { log, result } = await run({
    argv: ["sh", "-c", `setsid sleep ${m} & echo bye`],
    isolation: { pid: false },
  });
  const took = Date.now() - started;
  assert.equal(result.exitCode, 0);
  assert.ok(took >= 1900 && took < 5000, `done took ${took} ms`);
  assert.equal(output(log), "bye\n");
});

test("spawn failures resolve with 127 and a log line", async () => {
  const badCwd = await run({ argv: ["true"], cwd: join(dir, "does-not-exist") });
  assert.deepEqual(badCwd.result, { exitCode: 127, signal: null });
  assert.match(output(badCwd.log), /^\[buildd\] failed to start /m);

  const noSuch = await run({ argv: ["no-such-command-buildd"], isolation: { pid: false } });
  assert.deepEqual(noSuch.result, { exitCode: 127, signal: null });
  assert.match(output(noSuch.log), /failed to start no-such-command-buildd/);

  const nul = await run({ argv: ["echo", "a\0b"] });
  assert.deepEqual(nul.result, { exitCode: 127, signal: null });
  assert.match(output(nul.log), /^\[buildd\] failed to start /m);

  const inside = await run({ argv: ["no-such-command-buildd"] });
  assert.equal(inside.result.exitCode, 127);
  assert.match(output(inside.log), /no-such-command-buildd: No such file or directory/);
});

test("a log that exceeds its limit stops the build", async () => {
  const log = newLog(10_000);
  const proc = processRunner.start({
    argv: ["sh", "-c", "trap '' TERM; while :; do echo aaaaaaaaaaaaaaa; done"],
    log,
  });
  const terminated = new Promise<{ survivors: number[] }>((resolve) =>
    log.onExceeded(() => resolve(proc.terminate(300))),
  );
  assert.deepEqual(await terminated, { survivors: [] });
  assert.equal((await proc.done).signal, "SIGKILL");
  log.close();
  const text = readLog(log);
  const notice =
    "\n[buildd] build log exceeded the maximum size of 10000 bytes; stopping the build\n";
  assert.ok(text.endsWith(notice));
  assert.equal(Buffer.byteLength(text), 10_000 + notice.length);
});

test("capture() hands back stdout, stderr and both interleaved, with the exit code", async () => {
  const r = await processRunner.capture({
    argv: ["sh", "-c", 'echo "pid=$$"; echo oops >&2; echo two; exit 3'],
  });
  assert.deepEqual(
    { ...r, output: r.output.split("\n").sort() },
    {
      exitCode: 3,
      signal: null,
      stdout: "pid=1\ntwo\n",
      stderr: "oops\n",
      output: ["", "oops", "pid=1", "two"],
      timedOut: false,
      canceled: false,
      error: null,
    },
  );
});

test("capture() says why a command did not run to its end, isolated or not", async () => {
  for (const pid of [true, false]) {
    const missing = await processRunner.capture({
      argv: ["no-such-command-buildd"],
      isolation: { pid },
    });
    assert.equal(missing.exitCode, null);
    assert.match(missing.error ?? "", /no-such-command-buildd/);
  }
  const big = await processRunner.capture({
    argv: ["sh", "-c", "head -c 5000 /dev/zero | tr '\\0' x"],
    maxBytes: 1000,
  });
  assert.equal(big.error, "its output exceeded 1000 characters");
  assert.equal(big.stdout.length, 1000);
  const m = marker();
  const slow = await processRunner.capture({
    argv: ["sh", "-c", `setsid sleep ${m} & sleep ${m}`],
    timeoutMs: 300,
  });
  assert.equal(slow.timedOut, true);
  assert.deepEqual(processesWith(m), []);
});
