// buildd as a Buildbot worker the way an operator runs it: `buildd create-worker DIR
// 127.0.0.1:PORT NAME PASSWORD` (the real command), then `buildd serve --config
// DIR/buildd.conf` as a child process, against a real Buildbot master (Debian's 3.7,
// harness/buildbot-master.ts). What is checked is what an operator would see: the
// master's worker list and build results, buildd's /api/v1 answers, its status page, its
// metrics and its own log, and the Launchpad side (XML-RPC) working beside the Buildbot
// side on the same machine's build slots. The protocol itself (output shapes, transfers,
// stops, paths) is test/buildbot-worker.test.ts's, through the worker's entry point.
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { after, before, describe, test } from "node:test";
import {
  buildbotMissing,
  removeDir,
  RESULTS,
  startBuildbotMaster,
  tempDir,
  type BuildbotMaster,
} from "../harness/buildbot-master.js";
import {
  buildbotStatus,
  startWorkerDir,
  type ServedWorker,
  type SlotsApi,
} from "../harness/buildbot-worker-dir.js";
import { RpcFault } from "../harness/client.js";
import { eventually, makeTarball, pidsWithMarker, putInCache } from "../harness/fixtures.js";
import { startLibrarian, type Librarian } from "../harness/librarian.js";
import type { XmlRpcStruct } from "../src/rpc/codec.js";

// Under CI nothing skips: a missing buildbot must fail the run, not hide it.
const skip = process.env["CI"] === "true" ? false : buildbotMissing();
const root = process.getuid?.() === 0;

const MAIN = { name: "serve-main", password: "main-worker-pw-71" };
const FULL = { name: "serve-full", password: "full-worker-pw-72" };
const WRONG = { name: "serve-wrong", password: "wrong-worker-pw-73" };
const TERM = { name: "serve-term", password: "term-worker-pw-74" };
/** On the command line of the processes the SIGTERM test's step leaves behind. */
const TERM_MARKER = "buildd-serve-term-9137";

// A step that says it started (a file in $GATE) and waits until the test releases it
// (another file there): two of them both started prove that two builds overlap.
const BUILDERS = `
  def builder(name, workers, *steps_, **kw):
      c['builders'].append(util.BuilderConfig(
          name=name, workernames=workers, factory=util.BuildFactory(list(steps_)), **kw))

  def gated(label):
      return steps.ShellCommand(name='gated', env={'GATE': util.Property('gate')}, command=
          f'touch "$GATE/started-{label}"; echo "{label} started"; i=0; '
          f'while [ ! -e "$GATE/release-{label}" ]; do sleep 0.05; i=$((i+1)); '
          f'if [ $i -gt 1200 ]; then echo never released; exit 9; fi; done; echo "{label} released"')

  builder('whoami', ['serve-main'], steps.ShellCommand(name='who',
      command='echo "user=$(id -un)"; echo "cache=$BUILDD_SHARED_CACHE"'))
  builder('gated-main', ['serve-main'], gated('bb-main'))
  builder('gated-full', ['serve-full'], gated('bb-full'))
  builder('after-lp', ['serve-full'], steps.ShellCommand(name='after',
      command='echo ran after the launchpad build'))
  builder('left-behind', ['serve-term'], steps.ShellCommand(name='bg',
      command='(sh -c "sleep 300; :" ${TERM_MARKER} &) ; setsid sh -c "sleep 301; :" ${TERM_MARKER} & '
              'echo background started; sh -c "sleep 302; :" ${TERM_MARKER}'))
  for name in ['lock-a', 'lock-b']:
      builder(name, ['serve-main'], steps.ShellCommand(name='locked',
          env={'BUILDD_SHARED_CACHE_LOCK': 'exclusive'},
          command=f'date +%s.%N > "$BUILDD_SHARED_CACHE/{name}"; sleep 1; '
                  f'date +%s.%N >> "$BUILDD_SHARED_CACHE/{name}"; echo done'))
`;

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

describe("buildd serve from a create-worker directory, under a real master", { skip }, () => {
  let master: BuildbotMaster;
  let main: ServedWorker;
  let full: ServedWorker;
  let wrong: ServedWorker;
  let wrongStartedAt = 0;
  let librarian: Librarian;
  let gate: string;
  const trees = new Map<ServedWorker, string>();

  before(async () => {
    gate = tempDir("buildd-gate-");
    fs.chmodSync(gate, 0o777); // the build user writes its "started" files here
    master = await startBuildbotMaster({
      workers: [
        { name: MAIN.name, password: MAIN.password, maxBuilds: 2 },
        { name: FULL.name, password: FULL.password, maxBuilds: 1 },
        { name: WRONG.name, password: "the-right-password" },
        { name: TERM.name, password: TERM.password },
      ],
      builders: BUILDERS,
    });
    const port = master.workerPort;
    const quickReconnect = { buildbot: { reconnect_max: 2 } };
    wrongStartedAt = Date.now();
    [main, full, wrong, librarian] = await Promise.all([
      startWorkerDir({
        masterPort: port,
        ...MAIN,
        maxBuilds: 2,
        admin: "Build Ops <ops@example.org>",
        host: "rack 4, slot 2",
        set: quickReconnect,
      }),
      startWorkerDir({ masterPort: port, ...FULL, maxBuilds: 1, set: quickReconnect }),
      startWorkerDir({ masterPort: port, ...WRONG }),
      startLibrarian(),
    ]);
    const tarball = makeTarball({ README: "a project\n" });
    for (const w of [main, full]) trees.set(w, await putInCache(w.client, librarian, tarball));
    await Promise.all([
      master.waitForWorker(MAIN.name, true),
      master.waitForWorker(FULL.name, true),
    ]);
  });
  after(async () => {
    await Promise.all([main?.stop(), full?.stop(), wrong?.stop()]);
    await librarian?.close();
    await master?.stop();
    if (gate) removeDir(gate);
  });

  const release = (label: string): void =>
    fs.writeFileSync(path.join(gate, `release-${label}`), "");
  const started = (label: string): boolean => fs.existsSync(path.join(gate, `started-${label}`));

  /** A Launchpad `script` build whose one step waits at the gate under `label`. */
  function gatedLaunchpadBuild(w: ServedWorker, id: string, label: string): Promise<unknown> {
    return w.client.call(
      "build",
      id,
      "script",
      trees.get(w)!,
      {},
      {
        steps: [
          {
            name: "gated",
            run:
              `touch "$GATE/started-${label}"; echo "${label} started"; ` +
              `while [ ! -e "$GATE/release-${label}" ]; do sleep 0.05; done; echo "${label} released"`,
          },
        ],
        environment: { GATE: gate },
      },
    );
  }

  async function lpStatus(w: ServedWorker): Promise<XmlRpcStruct> {
    return (await w.client.call("status")) as XmlRpcStruct;
  }

  async function waitForLpState(w: ServedWorker, state: string): Promise<XmlRpcStruct> {
    let last: XmlRpcStruct = {};
    await eventually(`Launchpad side ${state}`, async () => {
      last = await lpStatus(w);
      return last["builder_status"] === `BuilderStatus.${state}`;
    });
    return last;
  }

  async function slots(w: ServedWorker): Promise<SlotsApi> {
    return w.json<SlotsApi>("/api/v1/slots");
  }

  /** Until no Buildbot session holds a slot (a builder keeps its own a few seconds). */
  async function slotsFree(w: ServedWorker): Promise<void> {
    await eventually(
      "every build slot free",
      async () => (await slots(w)).held.length === 0,
      20_000,
    );
  }

  const stepLog = (buildId: number, name: string): Promise<string> => master.stepLog(buildId, name);

  // Over msgpack a 3.7 master sends no set_builder_list: it lists the base directory and
  // makes the builders' directories, and that is what the worker has to go by.
  test("/api/v1/buildbot lists the master's builders for it before any build", async () => {
    let builders: readonly string[] = [];
    await eventually(
      "the master's builders in /api/v1/buildbot",
      async () => {
        builders = (await buildbotStatus(main)).builders;
        return builders.length >= 4;
      },
      5000,
    ).catch(() => undefined);
    assert.deepEqual(
      [...builders].sort(),
      ["gated-main", "lock-a", "lock-b", "whoami"],
      "the builders whose workernames list serve-main",
    );
  });

  test("create-worker, serve: attached with its facts; a build runs as the build user", async () => {
    assert.match(main.created, /start the worker: {2}buildd serve --config /);
    assert.equal((fs.statSync(main.secretsFile).mode & 0o777).toString(8), "600");

    const [w] = (await master.workers()).filter((x) => x.name === MAIN.name);
    assert.equal(w!.connected_to.length, 1, "the master lists it connected");
    assert.equal(w!.workerinfo["admin"], "Build Ops <ops@example.org>");
    assert.equal(w!.workerinfo["host"], "rack 4, slot 2");

    // /api/v1 needs the XML-RPC side's credentials, from secrets.conf.
    assert.equal((await fetch(`${main.url}/api/v1/buildbot`)).status, 401);
    const st = await buildbotStatus(main);
    assert.equal(st.state, "connected");
    assert.equal(st.name, MAIN.name);
    assert.equal(st.master, `127.0.0.1:${master.workerPort}`);
    assert.equal(st.last_error, null);
    assert.equal(st.connects, 1);

    const forced = await master.forceBuild("whoami");
    const { results, build } = await master.waitForBuild(forced.buildrequestId);
    const text = await stepLog(build!.buildid, "who");
    assert.equal(results, RESULTS.SUCCESS, text);
    if (root) assert.match(text, /^user=buildd$/m, "steps run as the unprivileged build user");
    assert.match(text, new RegExp(`^cache=${main.dir}/var/shared-cache$`, "m"));
    assert.ok(fs.existsSync(path.join(main.dir, "var/buildbot/whoami")), "its builder directory");

    // Neither password shows in buildd's log, its page or the master's log.
    const page = (await main.get("/")).text;
    for (const secret of [MAIN.password, main.credentials.password]) {
      assert.ok(!main.logText().includes(secret), "a password in buildd's log");
      assert.ok(!page.includes(secret), "a password on the status page");
      assert.ok(!master.masterLog().includes(secret), "a password in the master's log");
    }
  });

  test("both protocols at once: a Launchpad build and a Buildbot build share the slots", async () => {
    await slotsFree(main);
    const forced = await master.forceBuild("gated-main", { gate });
    assert.deepEqual(await gatedLaunchpadBuild(main, "lp-both-1", "lp-main"), [
      "BuilderStatus.BUILDING",
      "lp-both-1",
    ]);
    await eventually("both builds at their gates", () => started("lp-main") && started("bb-main"));

    // Both hold a slot now, one of each kind, and say so.
    const held = (await slots(main)).held.map((h) => `${h.kind}:${h.label}`).sort();
    assert.deepEqual(held, ["buildbot:gated-main", "launchpad:lp-both-1"]);
    const metrics = (await main.get("/metrics")).text;
    assert.match(metrics, /^buildd_build_slots 2$/m);
    assert.match(metrics, /^buildd_build_slots_held\{kind="launchpad"\} 1$/m);
    assert.match(metrics, /^buildd_build_slots_held\{kind="buildbot"\} 1$/m);
    const lp = await lpStatus(main);
    assert.equal(lp["builder_status"], "BuilderStatus.BUILDING");
    assert.equal(lp["build_step"], "gated");

    release("lp-main");
    release("bb-main");
    const done = await waitForLpState(main, "WAITING");
    assert.equal(done["build_status"], "BuildStatus.OK");
    const log = await main.get("/filecache/buildlog");
    assert.equal(log.status, 200);
    assert.match(log.text, /^lp-main started$/m);
    assert.match(log.text, /^lp-main released$/m);
    assert.equal(await main.client.call("clean"), "BuilderStatus.IDLE");

    const { results, build } = await master.waitForBuild(forced.buildrequestId);
    const text = await stepLog(build!.buildid, "gated");
    assert.equal(results, RESULTS.SUCCESS, text);
    assert.match(text, /^bb-main started$/m);
    assert.match(text, /^bb-main released$/m);
  });

  test("a full machine: build() is refused while a Buildbot step runs; a step waits for a Launchpad build", async () => {
    // A Buildbot build holds the one slot: build() is refused, saying who holds it.
    await slotsFree(full);
    const forced = await master.forceBuild("gated-full", { gate });
    await eventually("the Buildbot step at its gate", () => started("bb-full"));
    await assert.rejects(gatedLaunchpadBuild(full, "lp-full-1", "lp-refused"), (e: unknown) => {
      assert.ok(e instanceof RpcFault, String(e));
      assert.match(e.faultString, /Builder is full/);
      assert.match(e.faultString, /max_builds = 1/);
      assert.match(e.faultString, /Buildbot builder "gated-full"/);
      return true;
    });
    assert.equal((await lpStatus(full))["builder_status"], "BuilderStatus.IDLE");
    release("bb-full");
    const first = await master.waitForBuild(forced.buildrequestId);
    assert.equal(first.results, RESULTS.SUCCESS);

    // A Launchpad build holds it: the next Buildbot step waits, then runs after it.
    await slotsFree(full);
    assert.deepEqual(await gatedLaunchpadBuild(full, "lp-full-2", "lp-full"), [
      "BuilderStatus.BUILDING",
      "lp-full-2",
    ]);
    await eventually("the Launchpad step at its gate", () => started("lp-full"));
    const waiting = await master.forceBuild("after-lp");
    await eventually("the Buildbot step waits for the slot", async () => {
      const s = await slots(full);
      return s.waiting.some((w) => w.kind === "buildbot" && w.label === "after-lp");
    });
    assert.deepEqual(
      (await slots(full)).held.map((h) => `${h.kind}:${h.label}`),
      ["launchpad:lp-full-2"],
    );
    const build = await master.waitForBuildStart(waiting.buildrequestId);
    await sleep(500);
    assert.equal(
      (await master.api<{ builds: { complete: boolean }[] }>(`builds/${build.buildid}`)).builds[0]!
        .complete,
      false,
    );
    release("lp-full");
    assert.equal((await waitForLpState(full, "WAITING"))["build_status"], "BuildStatus.OK");
    const { results } = await master.waitForBuild(waiting.buildrequestId);
    const text = await stepLog(build.buildid, "after");
    assert.equal(results, RESULTS.SUCCESS, text);
    const head = text.split("\n").slice(0, 3).join("\n");
    assert.match(head, /waiting for a build slot/, text);
    assert.match(head, /lp-full-2/, "it names the Launchpad build that holds the slot");
    assert.match(text, /^ran after the launchpad build$/m);
    assert.equal(await full.client.call("clean"), "BuilderStatus.IDLE");
  });

  test("a wrong password: not attached, one 401 per attempt in buildd's log, shown in /api and on /", async (t) => {
    await sleep(Math.max(0, wrongStartedAt + 4000 - Date.now()));
    const [w] = (await master.workers()).filter((x) => x.name === WRONG.name);
    assert.equal(w?.connected_to.length ?? 0, 0, "the master does not list it connected");

    const st = await buildbotStatus(wrong);
    assert.notEqual(st.state, "connected");
    assert.match(st.last_error ?? "", /401 Unauthorized/);
    assert.equal(st.connects, 0);

    // buildd's own log (JSON lines on stdout): one line per failed attempt, each saying
    // 401 Unauthorized, spaced at least as far apart as the wait it announced.
    const elapsedS = (Date.now() - wrongStartedAt) / 1000;
    const lines = wrong
      .logText()
      .split("\n")
      .filter((l) => l.startsWith("{") && l.includes("401 Unauthorized"))
      .map((l) => JSON.parse(l) as { time: number; retryInMs: number; msg: string });
    assert.ok(lines.length >= 2, `it keeps trying: ${lines.length} attempts in ${elapsedS} s`);
    // Waits of at least 0.5, 1, 2, 4… s: k attempts need 0.5·(2^(k-1) − 1) s.
    const most = Math.floor(Math.log2(2 * elapsedS + 1)) + 1;
    t.diagnostic(
      `${lines.length} failed attempts logged in ${elapsedS.toFixed(1)} s (at most ${most})`,
    );
    assert.ok(lines.length <= most, `${lines.length} lines in ${elapsedS} s: a flood`);
    for (let i = 1; i < lines.length; i++) {
      const gap = lines[i]!.time - lines[i - 1]!.time;
      assert.ok(gap >= lines[i - 1]!.retryInMs - 50, `attempt ${i} came ${gap} ms after the last`);
      assert.ok(lines[i]!.retryInMs >= lines[i - 1]!.retryInMs * 0.5, "the waits grow");
    }
    for (const l of lines) assert.match(l.msg, /could not connect to the master: 401 Unauthorized/);

    const page = await wrong.get("/");
    assert.equal(page.status, 200);
    assert.match(page.text, /id="buildbot-state"[^>]*>(connecting|disconnected)</);
    assert.match(page.text, /id="buildbot-error"[^>]*>401 Unauthorized</);
    assert.doesNotMatch(page.text, new RegExp(WRONG.password), "the password is not shown");

    // The Launchpad side answers meanwhile.
    assert.deepEqual(await wrong.client.call("echo", "still here"), ["still here"]);
    assert.equal((await lpStatus(wrong))["builder_status"], "BuilderStatus.IDLE");
  });

  test("the shared cache lock through serve: exclusive holders never overlap", async () => {
    await slotsFree(main);
    const forced = [await master.forceBuild("lock-a"), await master.forceBuild("lock-b")];
    const done = await Promise.all(forced.map((f) => master.waitForBuild(f.buildrequestId)));
    const logs = await Promise.all(done.map((d) => stepLog(d.build!.buildid, "locked")));
    for (const [i, d] of done.entries()) assert.equal(d.results, RESULTS.SUCCESS, logs[i]);
    const spans = ["lock-a", "lock-b"].map((n) =>
      fs
        .readFileSync(path.join(main.dir, "var/shared-cache", n), "utf8")
        .trim()
        .split("\n")
        .map(Number),
    );
    const [x, y] = [...spans].sort((p, q) => p[0]! - q[0]!);
    assert.ok(x![1]! <= y![0]!, `${JSON.stringify(spans)} overlap`);
    assert.ok(
      logs.some((l) => /waiting for the shared cache lock, held by builder lock-[ab]/.test(l)),
      logs.join("\n---\n"),
    );
  });

  test("SIGTERM during a Buildbot step: buildd stops at once, kills the step's whole tree, the master retries", async () => {
    const term = await startWorkerDir({ masterPort: master.workerPort, ...TERM });
    try {
      await master.waitForWorker(TERM.name, true);
      const forced = await master.forceBuild("left-behind");
      const build = await master.waitForBuildStart(forced.buildrequestId);
      await eventually(
        "the step and its background processes run",
        () => pidsWithMarker(TERM_MARKER).length >= 3,
      );
      const t0 = Date.now();
      const exit = await term.proc.kill("SIGTERM", 15_000);
      assert.equal(exit, 0, `buildd serve exits by itself, cleanly:\n${term.logText()}`);
      assert.ok(Date.now() - t0 < 10_000, `stopped in ${Date.now() - t0} ms`);
      await eventually(
        "no process of the step is left",
        () => pidsWithMarker(TERM_MARKER).length === 0,
        5000,
      );
      await master.waitForWorker(TERM.name, false);
      // The worker went away mid-build: Buildbot's answer is to retry it elsewhere.
      const ended = await master.waitForBuildEnd(build.buildid);
      assert.ok(
        ([RESULTS.RETRY, RESULTS.EXCEPTION, RESULTS.CANCELLED] as number[]).includes(
          ended.results ?? -1,
        ),
        `the build ended ${String(ended.results)}`,
      );
      await master.cancelBuildRequest(forced.buildrequestId);
    } finally {
      await term.stop();
    }
  });

  test("the master restarts: buildd reconnects and the next build succeeds", async () => {
    const before = (await buildbotStatus(main)).connects;
    await master.restart();
    await master.waitForWorker(MAIN.name, true, 30_000);
    await eventually("buildd counts the new connection", async () => {
      const st = await buildbotStatus(main);
      return st.state === "connected" && st.connects > before;
    });
    const forced = await master.forceBuild("whoami");
    const { results, build } = await master.waitForBuild(forced.buildrequestId);
    assert.equal(results, RESULTS.SUCCESS, await stepLog(build!.buildid, "who"));
    assert.equal((await lpStatus(main))["builder_status"], "BuilderStatus.IDLE");
  });
});
