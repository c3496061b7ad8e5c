// buildd as a Buildbot worker against a real Buildbot master (Debian's 3.7, started by
// harness/buildbot-master.ts): the worker is started through its entry point in this
// process, builds are forced through the master's REST API, and their results, logs and
// files are read back from the master.
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import crypto from "node:crypto";
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
import {
  startBuildbotWorker,
  type BuildbotWorker,
  type BuildbotWorkerOptions,
} from "../src/buildbot/worker.js";
import { BuilddError } from "../src/errors.js";
import { createScrubber } from "../src/log/scrub.js";
import { processRunner } from "../src/process/runner.js";
import type { BuildGate, GateDecision } from "../src/protocol/gate.js";

const skip = process.env["CI"] === "true" ? false : buildbotMissing();
const root = process.getuid?.() === 0;

const PAYLOAD = Buffer.concat([
  Buffer.from(Array.from({ length: 256 }, (_, i) => i)),
  crypto.randomBytes(70_000),
]);
const sha256 = (b: Buffer): string => crypto.createHash("sha256").update(b).digest("hex");
const PASSWORD = "bb-worker-secret-9";

// A unique `sleep` argument: the test finds the step's processes by it.
const MARKER = `1000.${process.pid}${Math.floor(Math.random() * 1e6)}`;

const BUILDERS = `
  def builder(name, *steps_, **kw):
      c['builders'].append(util.BuilderConfig(
          name=name, workernames=WORKERS, factory=util.BuildFactory(list(steps_)), **kw))

  builder('shell', steps.ShellCommand(name='greet', command=
      'echo hello from buildd; echo to stderr >&2; printf "gr\\\\303\\\\274\\\\303\\\\237e \\\\342\\\\234\\\\223\\\\n"; '
      'echo "pw=${PASSWORD}"; printf "no newline at the end"'))
  builder('lines', steps.ShellCommand(name='seq', command=['seq', '1', '20000']))
  builder('fail', steps.ShellCommand(name='fail', command='echo failing; exit 3'))
  builder('transfer',
      steps.FileDownload(mastersrc='files/payload.bin', workerdest='in/payload.bin', mode=0o640),
      steps.ShellCommand(name='check', command='sha256sum in/payload.bin; stat -c "%U %a" in/payload.bin'),
      steps.ShellCommand(name='make', command='mkdir -p out/sub && cp in/payload.bin out/sub/p.bin && echo hi > out/a.txt'),
      steps.FileUpload(workersrc='in/payload.bin', masterdest='uploads/payload.bin'),
      steps.DirectoryUpload(workersrc='out', masterdest='uploads/out', compress='gz'))
  builder('background', steps.ShellCommand(name='bg',
      command='sleep ${MARKER} & sleep ${MARKER} & echo started; wait'))
  builder('quiet', steps.ShellCommand(name='quiet', command=['sleep', '30'], timeout=1))
  builder('env', steps.ShellCommand(name='env', initialStdin='fed to stdin\\n',
      env={'JOINED': ['a', 'b'], 'LANG': None, 'EXPANDED': 'home=\${HOME}'},
      command='cat; echo "joined=$JOINED lang=\${LANG-unset} $EXPANDED cache=$BUILDD_SHARED_CACHE"'))
  builder('caps', steps.ShellCommand(name='caps', env={'BUILDD_REQUIRES': 'postgresql >= 13'},
      command='echo "port=$PGPORT"'))
  builder('nocaps', steps.ShellCommand(name='nocaps', env={'BUILDD_REQUIRES': 'nosuch'},
      command='echo should not run'))
  builder('esc-abs', steps.FileUpload(name='up', workersrc='/etc/passwd', masterdest='uploads/passwd'))
  builder('esc-link',
      steps.ShellCommand(name='ln', command='ln -sf /etc/passwd link'),
      steps.FileUpload(name='up', workersrc='link', masterdest='uploads/link'))
  builder('esc-dl', steps.FileDownload(name='dl', mastersrc='files/payload.bin',
      workerdest='../../planted'))
  builder('esc-dl-link',
      steps.ShellCommand(name='ln', command='ln -sfn @SECRETS@ d'),
      steps.FileDownload(name='dl', mastersrc='files/payload.bin', workerdest='d/planted'))
  builder('files',
      # mkdir, cpdir, rmdir and stat name paths in the builder's directory, the rest in build/.
      steps.MakeDirectory(name='mkdir', dir='build/made/sub'),
      steps.ShellCommand(name='fill', command='echo one > made/sub/f.txt; echo two > made/g.txt; echo x > made/h.log'),
      steps.CopyDirectory(name='cpdir', src='build/made', dest='build/copied'),
      steps.FileExists(name='stat', file='build/copied/sub/f.txt'),
      steps.MultipleFileUpload(name='glob', workersrcs=['made/*.txt', 'made/sub/*.txt'],
                               masterdest='uploads/multi', glob=True),
      steps.RemoveDirectory(name='rmdir', dir='build/copied'),
      steps.ShellCommand(name='after', command='test ! -e copied && test -f made/sub/f.txt && echo ok'))
  builder('logfile', steps.ShellCommand(name='lf', logfiles={'progress': 'progress.log'},
      command='for i in 1 2 3; do echo "step $i" >> progress.log; done; printf "last" >> progress.log'))
  builder('toobig',
      steps.ShellCommand(name='mk', command='head -c 5000 /dev/zero > big.bin'),
      steps.FileUpload(name='up', workersrc='big.bin', masterdest='uploads/big.bin', maxsize=1000))
  builder('sandbox', steps.ShellCommand(name='probe', command=@PROBE@))
  for name in ['lock-a', 'lock-b']:
      builder(name, steps.ShellCommand(name='locked', env={'BUILDD_SHARED_CACHE_LOCK': 'exclusive'},
          command='date +%s.%N; sleep 1; date +%s.%N'))
`;

/** Living processes whose command line contains `text`. */
function processesWith(text: string): number[] {
  const pids: number[] = [];
  for (const name of fs.readdirSync("/proc")) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const cmdline = fs.readFileSync(`/proc/${name}/cmdline`, "latin1");
      const stat = fs.readFileSync(`/proc/${name}/stat`, "latin1");
      if (cmdline.includes(text) && !/\) Z /.test(stat)) pids.push(Number(name));
    } catch {
      // gone
    }
  }
  return pids;
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

function buildUser(): { uid: number; gid: number; user: string } | null {
  if (!root) return null;
  const user = "buildd";
  try {
    execFileSync("id", ["-u", user]);
  } catch {
    execFileSync("useradd", ["--system", "--no-create-home", "--shell", "/usr/sbin/nologin", user]);
  }
  const uid = Number(execFileSync("id", ["-u", user]).toString().trim());
  const gid = Number(execFileSync("id", ["-g", user]).toString().trim());
  return { uid, gid, user };
}

// Asked for every shell step; a step that requires nothing gets nothing.
const gate: BuildGate = (args): GateDecision => {
  const reqs = args["build_requires"] as string[];
  if (reqs.length === 0) return { env: {}, logLines: [], extraStatus: {}, secrets: [] };
  if (reqs.every((r) => r.startsWith("postgresql"))) {
    return {
      env: { PGPORT: "5433" },
      logLines: ["[buildd] capability postgresql 15"],
      extraStatus: {},
      secrets: [],
    };
  }
  throw new BuilddError("BUILDD_ERR_REQUIREMENTS", `no capability ${reqs.join(", ")}`);
};

describe("buildd as a worker of a real Buildbot master", { skip }, () => {
  let master: BuildbotMaster;
  let worker: BuildbotWorker;
  let top: string;
  let basedir: string;
  const logs: string[] = [];
  const slots = new MachineSlots(2);

  function options(over: Partial<BuildbotWorkerOptions> = {}): BuildbotWorkerOptions {
    const user = buildUser();
    const logger = pino({ level: "debug" }, { write: (s: string) => void logs.push(s) });
    return {
      master: { host: "127.0.0.1", port: master.workerPort },
      name: "bd",
      password: PASSWORD,
      basedir,
      info: () => ({
        admin: "Test Admin <admin@example.org>",
        host: "test host",
        capabilities: "{}",
      }),
      runner: processRunner,
      sandbox: user && {
        user: user.user,
        gid: user.gid,
        statedir: path.join(top, "state"),
        hidden: [path.join(top, "secrets")],
      },
      buildUser: user && { uid: user.uid, gid: user.gid },
      scrubber: createScrubber([PASSWORD]),
      slots,
      sessionGapMs: 300,
      gate,
      sharedCache: path.join(top, "shared"),
      logger,
      reconnect: { minMs: 100, maxMs: 1000 },
      version: "0.1.0-test",
      ...over,
    };
  }

  before(async () => {
    fs.mkdirSync(".cache", { recursive: true });
    top = fs.mkdtempSync(path.join(path.resolve(".cache"), "bb-worker-"));
    basedir = path.join(top, "worker");
    for (const d of ["worker", "state", "shared", "secrets"]) fs.mkdirSync(path.join(top, d));
    fs.writeFileSync(path.join(top, "secrets", "s"), "top secret\n");
    fs.chmodSync(top, 0o755);
    // The shared cache is the build user's to write in (buildd serve makes it so).
    const user = buildUser();
    if (user) fs.chownSync(path.join(top, "shared"), user.uid, user.gid);
    master = await startBuildbotMaster({
      workers: [{ name: "bd", password: PASSWORD }],
      builders: BUILDERS.replace("@SECRETS@", path.join(top, "secrets")).replace(
        "@PROBE@",
        JSON.stringify(probeCommand()),
      ),
      files: { "files/payload.bin": PAYLOAD },
    });
    worker = startBuildbotWorker(options());
    await master.waitForWorker("bd", true);
  });
  after(async () => {
    await worker?.close();
    await master?.stop();
    if (top) fs.rmSync(top, { recursive: true, force: true });
  });

  /** What a sandboxed step tries to see; each line is shown after a "$ " line. */
  function probeCommand(): string {
    fs.mkdirSync(path.join(top, "state", "journal-dir"));
    const probes = [
      `ls -A ${basedir}`,
      `cat ${path.join(top, "secrets", "s")}`,
      `ls -A ${path.join(top, "state")}`,
      `ls -A ${path.join(basedir, "shell")}`,
    ].map((c) => `echo "$ ${c}"; ${c} 2>&1`);
    return [
      ...probes,
      'echo "$"',
      "id -un",
      'touch "$BUILDD_SHARED_CACHE/written" && echo cache-ok',
    ].join("; ");
  }

  async function build(builder: string): Promise<{
    results: number;
    id: number;
    log: (step: string) => Promise<string>;
    content: (step: string) => Promise<string>;
  }> {
    const forced = await master.forceBuild(builder);
    const { results, build } = await master.waitForBuild(forced.buildrequestId);
    const id = build!.buildid;
    const steps = await master.steps(id);
    const step = (name: string): number => steps.find((s) => s.name === name)!.number;
    return {
      results,
      id,
      log: async (name) => master.logText(id, step(name)),
      content: async (name) => master.logContent(id, step(name)),
    };
  }

  test("attached: the master has our worker info", async () => {
    const [w] = (await master.workers()).filter((x) => x.name === "bd");
    assert.equal(w!.workerinfo["admin"], "Test Admin <admin@example.org>");
    assert.equal(w!.workerinfo["version"], "0.1.0-test");
    assert.equal(worker.status().state, "connected");
  });

  test("ShellCommand: UTF-8, stderr, a partial last line, secrets scrubbed", async () => {
    const b = await build("shell");
    const text = await b.log("greet");
    assert.equal(b.results, RESULTS.SUCCESS, text);
    assert.match(text, /^hello from buildd$/m);
    assert.match(text, /^to stderr$/m);
    assert.match(text, /^grüße ✓$/m);
    assert.match(text, /^no newline at the end$/m);
    assert.match(text, /^pw=\*{8}$/m);
    assert.doesNotMatch(text, new RegExp(PASSWORD));
    assert.match(text, /program finished with exit code 0/);
    const stored = await b.content("greet");
    assert.match(stored, /^eto stderr\n/m);
  });

  test("20,000 lines arrive in order", async () => {
    const b = await build("lines");
    assert.equal(b.results, RESULTS.SUCCESS);
    const lines = (await b.log("seq")).split("\n").filter((l) => /^\d+$/.test(l));
    assert.equal(lines.length, 20000);
    assert.ok(lines.every((l, i) => l === String(i + 1)));
  });

  test("a failing step fails the build", async () => {
    const b = await build("fail");
    assert.equal(b.results, RESULTS.FAILURE);
    assert.match(await b.log("fail"), /program finished with exit code 3/);
  });

  test("FileDownload, FileUpload, DirectoryUpload: byte-exact", async () => {
    const b = await build("transfer");
    const check = await b.log("check");
    assert.equal(b.results, RESULTS.SUCCESS, check);
    assert.match(check, new RegExp(sha256(PAYLOAD)));
    if (root) assert.match(check, /^buildd 640$/m);
    assert.ok(master.masterFile("uploads/payload.bin").equals(PAYLOAD));
    assert.ok(master.masterFile("uploads/out/sub/p.bin").equals(PAYLOAD));
    assert.equal(master.masterFile("uploads/out/a.txt").toString(), "hi\n");
  });

  test("a step's environment: lists joined, None removes, ${name} expands; stdin is fed", async () => {
    const b = await build("env");
    const text = await b.log("env");
    assert.equal(b.results, RESULTS.SUCCESS, text);
    assert.match(text, /^fed to stdin$/m);
    const home = path.join(basedir, "env");
    assert.match(
      text,
      new RegExp(`^joined=a:b lang=unset home=${home} cache=${path.join(top, "shared")}$`, "m"),
    );
  });

  test("capabilities: BUILDD_REQUIRES through the gate; refused → FAILURE saying why", async () => {
    const ok = await build("caps");
    const text = await ok.log("caps");
    assert.equal(ok.results, RESULTS.SUCCESS, text);
    assert.match(text, /^port=5433$/m);
    assert.match(text, /\[buildd\] capability postgresql 15/);
    const refused = await build("nocaps");
    assert.equal(refused.results, RESULTS.FAILURE);
    const why = await refused.log("nocaps");
    assert.match(why, /no capability nosuch/);
    assert.doesNotMatch(why, /^should not run$/m);
  });

  test("a step quiet past its timeout is killed, and says so", async () => {
    const b = await build("quiet");
    assert.equal(b.results, RESULTS.FAILURE);
    assert.match(await b.log("quiet"), /command timed out: 1 seconds without output/);
  });

  test("stopped through the REST API: CANCELLED within seconds, no process left", async () => {
    const forced = await master.forceBuild("background");
    const started = await master.waitForBuildStart(forced.buildrequestId);
    for (let i = 0; processesWith(MARKER).length < 2; i++) {
      assert.ok(i < 200, "the step's processes did not start");
      await sleep(50);
    }
    const t0 = performance.now();
    await master.stopBuild(started.buildid, "test stops it");
    const { results } = await master.waitForBuild(forced.buildrequestId);
    assert.equal(results, RESULTS.CANCELLED);
    assert.ok(performance.now() - t0 < 10_000, "cancelled within seconds");
    assert.deepEqual(processesWith(MARKER), []);
  });

  test("paths outside the builder's directory are refused, saying why", async () => {
    const abs = await build("esc-abs");
    assert.equal(abs.results, RESULTS.FAILURE);
    assert.match(await abs.log("up"), /\/etc\/passwd is outside the builder's directory/);
    const link = await build("esc-link");
    assert.equal(link.results, RESULTS.FAILURE);
    assert.match(await link.log("up"), /is a symbolic link to "\/etc\/passwd", outside/);
    const dl = await build("esc-dl");
    assert.equal(dl.results, RESULTS.FAILURE);
    assert.match(await dl.log("dl"), /leads out of the workspace/);
    assert.equal(fs.existsSync(path.join(basedir, "planted")), false);
    const dlLink = await build("esc-dl-link");
    assert.equal(dlLink.results, RESULTS.FAILURE);
    assert.match(await dlLink.log("dl"), /is a symbolic link to .*, outside/);
    assert.deepEqual(fs.readdirSync(path.join(top, "secrets")), ["s"]);
  });

  test("no free slot: the step waits, says who holds the slots, then runs", async () => {
    // Earlier builds' sessions end within their gap; then both slots are the test's.
    const held = await Promise.all(
      [1, 2].map((n) => slots.acquire({ kind: "launchpad", label: `lp-${n}` })),
    );
    const forced = await master.forceBuild("shell");
    await master.waitForBuildStart(forced.buildrequestId);
    // Its command has arrived and waits for a slot.
    for (let i = 0; !worker.status().running.some((r) => r.builder === "shell"); i++) {
      assert.ok(i < 400, "the build's command did not arrive");
      await sleep(25);
    }
    await sleep(200);
    assert.equal(slots.waiting()[0]?.label, "shell", "the step waits for a slot");
    for (const lease of held) lease.release();
    const { results, build: b } = await master.waitForBuild(forced.buildrequestId);
    assert.equal(results, RESULTS.SUCCESS);
    const steps = await master.steps(b!.buildid);
    const text = await master.logText(b!.buildid, steps.find((s) => s.name === "greet")!.number);
    assert.match(text, /waiting for a build slot: .*lp-1/);
  });

  test("the shared cache lock: two builds that ask for it never overlap", async () => {
    const a = await master.forceBuild("lock-a");
    const b = await master.forceBuild("lock-b");
    const done = await Promise.all([a, b].map((f) => master.waitForBuild(f.buildrequestId)));
    const spans: number[][] = [];
    let waited = "";
    for (const d of done) {
      assert.equal(d.results, RESULTS.SUCCESS);
      const steps = await master.steps(d.build!.buildid);
      const text = await master.logText(
        d.build!.buildid,
        steps.find((s) => s.name === "locked")!.number,
      );
      spans.push(
        text
          .split("\n")
          .filter((l) => /^\d+\.\d+$/.test(l))
          .map(Number),
      );
      if (/waiting for the shared cache lock, held by builder lock-/.test(text)) waited = text;
    }
    assert.ok(waited !== "", "one of them waited for the lock");
    const [x, y] = spans.sort((p, q) => p[0]! - q[0]!);
    assert.ok(x![1]! <= y![0]!, `${JSON.stringify(spans)} overlap`);
  });

  test(
    "sandboxed: a step sees only its builder directory and the shared cache",
    { skip: !root && "needs root" },
    async () => {
      const b = await build("sandbox");
      const text = await b.log("probe");
      assert.equal(b.results, RESULTS.SUCCESS, text);
      // The basedir shows only this builder's directory; the rest is covered or hidden.
      assert.match(text, /^\$ ls -A .*worker\nsandbox\n\$/m);
      assert.doesNotMatch(text, /top secret/);
      assert.doesNotMatch(text, /journal-dir/);
      assert.match(text, /^buildd$/m);
      assert.match(text, /^cache-ok$/m);
      assert.ok(fs.existsSync(path.join(top, "shared", "written")));
    },
  );

  test("mkdir, cpdir, stat, glob, rmdir in a real build", async () => {
    const b = await build("files");
    const states = (await master.steps(b.id)).map((s) => `${s.name}: ${s.state_string}`);
    assert.equal(b.results, RESULTS.SUCCESS, states.join("\n"));
    assert.match(await b.log("after"), /^ok$/m);
    assert.equal(master.masterFile("uploads/multi/g.txt").toString(), "two\n");
    assert.equal(master.masterFile("uploads/multi/f.txt").toString(), "one\n");
    if (root) {
      const st = fs.statSync(path.join(basedir, "files", "build", "made", "sub"));
      assert.equal(
        st.uid,
        buildUser()!.uid,
        "a directory the master made belongs to the build user",
      );
    }
  });

  test("logfiles: a file the step writes is its own log", async () => {
    const b = await build("logfile");
    assert.equal(b.results, RESULTS.SUCCESS);
    const steps = await master.steps(b.id);
    const text = await master.logText(b.id, steps.find((s) => s.name === "lf")!.number, "progress");
    assert.equal(text, "step 1\nstep 2\nstep 3\nlast");
  });

  test("an upload past maxsize fails and leaves nothing on the master", async () => {
    const b = await build("toobig");
    assert.equal(b.results, RESULTS.FAILURE);
    assert.match(await b.log("up"), /5000 bytes, more than the 1000 allowed/);
    assert.throws(() => master.masterFile("uploads/big.bin"));
  });

  test("a wrong password: not connected, the status says 401 Unauthorized", async () => {
    const wrong = startBuildbotWorker(options({ password: "not-the-password" }));
    try {
      await wrong.when("disconnected");
      const st = wrong.status();
      assert.equal(st.lastError, "401 Unauthorized");
      assert.ok(st.nextAttemptAt !== null && st.nextAttemptAt > Date.now() - 1000);
      assert.equal(st.connects, 0);
    } finally {
      await wrong.close();
    }
    assert.equal(wrong.status().state, "stopped");
  });

  test("the master restarts: the worker reconnects and the next build succeeds", async () => {
    const before = worker.status().connects;
    await master.restart();
    await master.waitForWorker("bd", true);
    const b = await build("shell");
    assert.equal(b.results, RESULTS.SUCCESS);
    assert.ok(worker.status().connects > before);
    assert.equal(worker.status().state, "connected");
  });
});
