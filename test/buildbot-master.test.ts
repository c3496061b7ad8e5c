// The Buildbot test scaffolding and the master-side capability helper, checked against
// the real Python buildbot-worker (not buildd): Debian's master starts with its REST API
// (stand-in UI plugin), the worker attaches over msgpack, builds run and their logs read
// back, a FileDownload arrives byte-exact (the update_read_file fix is in effect), and
// contrib/buildbot/buildd_capabilities.py keeps builds off a worker that lacks what they
// require while letting the others run there.
import assert from "node:assert/strict";
import { execFile, execFileSync, spawnSync } from "node:child_process";
import crypto from "node:crypto";
import { after, before, describe, test } from "node:test";
import { promisify } from "node:util";
import {
  buildbotMissing,
  buildbotPython,
  pythonEnv,
  RESULTS,
  startBuildbotMaster,
  type BuildbotMaster,
} from "../harness/buildbot-master.js";
import { startPythonWorker, type PythonWorker } from "../harness/buildbot-python-worker.js";

// Under CI nothing skips: a missing buildbot must fail the run, not hide it.
const skip = process.env["CI"] === "true" ? false : buildbotMissing();

// Every byte value, then enough pseudo-random data for several 16 KiB read chunks.
const PAYLOAD = Buffer.concat([
  Buffer.from(Array.from({ length: 256 }, (_, i) => i)),
  crypto.randomBytes(100_000),
]);
const sha256 = (b: Buffer): string => crypto.createHash("sha256").update(b).digest("hex");

const CAPABILITIES = JSON.stringify({
  postgresql: { version: "15.4", properties: { port: "5433" }, available: true, reason: "" },
  "private-repo": {
    version: null,
    properties: {},
    available: false,
    reason: "deploy key missing",
  },
});

const BUILDERS = `
  import os
  from buildd_capabilities import requires
  PAYLOAD = os.path.abspath('files/payload.bin')  # master.cfg runs in the master's dir

  def builder(name, *steps_, **kw):
      c['builders'].append(util.BuilderConfig(
          name=name, workernames=WORKERS, factory=util.BuildFactory(list(steps_)), **kw))

  builder('shell', steps.ShellCommand(
      command='echo hello from the worker; echo to stderr >&2', name='greet'))
  builder('transfer',
      steps.FileDownload(mastersrc='files/payload.bin', workerdest='payload.bin'),
      steps.ShellCommand(command=['cmp', 'payload.bin', PAYLOAD], name='cmp'),
      steps.ShellCommand(command=['sha256sum', 'payload.bin'], name='sha'),
      steps.FileUpload(workersrc='payload.bin', masterdest='uploads/payload.bin'))
  builder('sleeper', steps.ShellCommand(command=['sleep', '60']))
  for name, needs in [('needs-pg', 'postgresql >= 13'), ('needs-old-pg', 'postgresql << 13'),
                      ('needs-missing', 'nosuch'), ('needs-unavailable', 'private-repo')]:
      need = requires(needs)
      builder(name, steps.ShellCommand(command='echo "requires=$BUILDD_REQUIRES"'),
              canStartBuild=need, env=need.env)
`;

// The master's own update_read_file handler and the scaffolding's, called directly with
// a reader that holds data: upstream answers None (the bug), the replacement the data.
const READ_FILE = `
import json
from buildbot.worker.protocols.manager import msgpack as manager
import buildd_test_master

class Reader:
    def remote_read(self, length):
        return b"data"

class Protocol:
    contains_msg_key = manager.BuildbotWebSocketServerProtocol.contains_msg_key
    def __init__(self):
        self.command_id_to_reader_map = {"1": Reader()}
    def send_response_msg(self, msg, result, is_exception):
        self.answer = result

def answer():
    p = Protocol()
    manager.BuildbotWebSocketServerProtocol.call_update_read_file(
        p, {"command_id": "1", "length": 4, "seq_number": 0})
    return repr(p.answer)

upstream = answer()
buildd_test_master.fix_update_read_file()
print(json.dumps({"upstream": upstream, "fixed": answer()}))
`;

describe("a real Buildbot master with the Python worker", { skip }, () => {
  let master: BuildbotMaster;
  let worker: PythonWorker;
  let readFile: Promise<{ stdout: string }>;

  before(async () => {
    // Beside the master's start-up: importing buildbot takes seconds.
    readFile = promisify(execFile)(buildbotPython(), ["-c", READ_FILE], {
      env: pythonEnv(),
    });
    const began = performance.now();
    master = await startBuildbotMaster({
      workers: [{ name: "py", password: "py-secret", maxBuilds: 2 }],
      builders: BUILDERS,
      files: { "files/payload.bin": PAYLOAD },
    });
    console.log(
      `master: ${Math.round(performance.now() - began)} ms with create-master, ` +
        `${Math.round(master.startupMs)} ms from spawn to both ports answering`,
    );
    worker = await startPythonWorker({
      masterPort: master.workerPort,
      name: "py",
      password: "py-secret",
      info: { capabilities: CAPABILITIES },
    });
  });
  after(async () => {
    await worker?.stop();
    await master?.stop();
  });

  test("the REST API answers and the Python worker attaches over msgpack", async () => {
    const w = await master.waitForWorker("py", true);
    assert.equal(w.connected_to.length, 1);
    assert.match(worker.log(), /BuildbotWebSocketClientFactory/, "the msgpack client");
    assert.match(master.masterLog(), /update_read_file now answers with the data read/);
    const root = await (await fetch(`${master.wwwUrl}/`)).text();
    assert.match(root, /REST API/, "the stand-in plugin serves a page of its own");
  });

  test("a forced ShellCommand build succeeds; its stdio log reads back", async () => {
    const forced = await master.forceBuild("shell");
    const { results, build } = await master.waitForBuild(forced.buildrequestId);
    assert.equal(results, RESULTS.SUCCESS, master.masterLog().slice(-8000));
    const steps = await master.steps(build!.buildid);
    const greet = steps.find((s) => s.name === "greet")!;
    const text = await master.logText(build!.buildid, greet.number);
    assert.match(text, /^hello from the worker$/m);
    assert.match(text, /^to stderr$/m);
    assert.match(text, /program finished with exit code 0/);
    const stored = await master.logContent(build!.buildid, greet.number);
    assert.match(stored, /^ohello from the worker\n/m, "stdout lines carry the marker o");
    assert.match(stored, /^eto stderr\n/m, "stderr lines carry the marker e");
  });

  test("upstream answers update_read_file with None; the scaffolding's fix, with the data", async () => {
    const { stdout } = await readFile;
    assert.deepEqual(JSON.parse(stdout), { upstream: "None", fixed: "b'data'" });
  });

  test("a FileDownload arrives byte-exact and a FileUpload comes back the same", async () => {
    const forced = await master.forceBuild("transfer");
    const { results, build } = await master.waitForBuild(forced.buildrequestId);
    const steps = await master.steps(build!.buildid);
    assert.equal(results, RESULTS.SUCCESS, JSON.stringify(steps.map((s) => s.state_string)));
    const sha = steps.find((s) => s.name === "sha")!;
    assert.match(await master.logText(build!.buildid, sha.number), new RegExp(sha256(PAYLOAD)));
    assert.ok(master.masterFile("uploads/payload.bin").equals(PAYLOAD));
  });

  test("requires(): a build runs only where the worker's capabilities satisfy it", async () => {
    const refused = ["needs-old-pg", "needs-missing", "needs-unavailable"];
    const held = [];
    for (const name of refused) held.push(await master.forceBuild(name));
    const pg = await master.forceBuild("needs-pg");
    const { results, build } = await master.waitForBuild(pg.buildrequestId);
    assert.equal(results, RESULTS.SUCCESS);
    const log = await master.logText(build!.buildid, 1);
    assert.match(log, /^requires=postgresql >= 13$/m, "BUILDD_REQUIRES reaches the step");

    // The master asked the helper about each refused builder and was told no, why in its log.
    const reasons = [
      /builder needs-old-pg does not start on worker py: postgresql 15.4 does not satisfy postgresql << 13/,
      /builder needs-missing does not start on worker py: no capability nosuch/,
      /builder needs-unavailable does not start on worker py: private-repo is unavailable: deploy key missing/,
    ];
    const deadline = Date.now() + 10_000;
    while (!reasons.every((r) => r.test(master.masterLog())) && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 100));
    }
    for (const r of reasons) assert.match(master.masterLog(), r);
    for (const forced of held) {
      assert.deepEqual(await master.builds(forced.buildrequestId), [], "no build started");
      await master.cancelBuildRequest(forced.buildrequestId);
      assert.equal((await master.waitForBuild(forced.buildrequestId)).results, RESULTS.CANCELLED);
    }
  });

  test("stopBuild() interrupts a running build: CANCELLED", async () => {
    const forced = await master.forceBuild("sleeper");
    const started = await master.waitForBuildStart(forced.buildrequestId);
    // Wait for the step to be running on the worker, then stop it.
    const deadline = Date.now() + 10_000;
    while (Date.now() < deadline) {
      const steps = await master.steps(started.buildid);
      if (steps.some((s) => !s.complete && s.name === "shell")) break;
      await new Promise((r) => setTimeout(r, 100));
    }
    await master.stopBuild(started.buildid);
    const { results } = await master.waitForBuild(forced.buildrequestId, 20_000);
    assert.equal(results, RESULTS.CANCELLED);
  });

  test("restart(): same ports, same database; the worker comes back", async () => {
    const { workerPort, wwwUrl } = master;
    const before = (await master.api<{ builds: unknown[] }>("builds")).builds.length;
    await master.restart();
    assert.equal(master.workerPort, workerPort);
    assert.equal(master.wwwUrl, wwwUrl);
    assert.equal((await master.api<{ builds: unknown[] }>("builds")).builds.length, before);
    await master.waitForWorker("py", true, 20_000);
    const forced = await master.forceBuild("shell");
    assert.equal((await master.waitForBuild(forced.buildrequestId)).results, RESULTS.SUCCESS);
  });
});

// The helper's version comparison against dpkg itself, and its grammar: no master needed.
const PAIRS: [string, string][] = [
  ["1.0", "1.0"],
  ["1.0", "1.0-0"],
  ["1.0", "1.1"],
  ["1.9", "1.10"],
  ["1.0~rc1", "1.0"],
  ["1.0~~", "1.0~"],
  ["1.0~", "1.0"],
  ["1.0", "1.0+b1"],
  ["1.0a", "1.0"],
  ["1.0a", "1.0+"],
  ["1.0.", "1.0+"],
  ["1:0.1", "2.0"],
  ["2:1.0", "10:0.1"],
  ["0:1.0", "1.0"],
  ["15.4", "13"],
  ["13", "13.0"],
  ["007", "7"],
  ["1.0-1", "1.0-1ubuntu1"],
  ["1.0-1", "1.0-1.1"],
  ["1.0-10", "1.0-9"],
  ["1.2-3-4", "1.2-3-10"],
  ["4.1~rc1", "4.1~beta2"],
  ["1.0-a", "1.0-A"],
  ["1.0+dfsg-2~bpo12+1", "1.0+dfsg-2"],
  ["9.1", "9.10"],
  ["1.0.0", "1.0"],
];

const PYTHON = `
import json, sys
import buildd_capabilities as caps
pairs = json.loads(sys.argv[1])
out = {"cmp": [(caps.compare_versions(a, b) > 0) - (caps.compare_versions(a, b) < 0) for a, b in pairs]}
have = {"pg": {"version": "15.4", "available": True}, "plain": {"version": None},
        "off": {"version": "2", "available": False, "reason": "down"}}
checks = ["pg", "pg >= 15", "pg > 15.4", "pg < 16", "pg<<15.4", "pg = 15.4", "pg >> 15.4~",
          "pg <= 15.3", "plain", "plain >= 1", "off", "nosuch", "pg >= 13, plain"]
out["ok"] = [caps.requires(t).check(have)[0] for t in checks]
out["env"] = caps.requires("pg >= 13", "plain").env
out["strict"] = str(caps.parse_requirement("pg<16"))
bad = []
for t in ["", "pg >=", "pg >= x1", "-pg", "pg 15", "pg => 15", "a,,b"]:
    try:
        caps.requires(t)
    except ValueError as e:
        bad.append(str(e))
out["bad"] = bad
print(json.dumps(out))
`;

describe("buildd_capabilities without a master", () => {
  test("versions compare as dpkg compares them", () => {
    const dpkg = PAIRS.map(([a, b]) => {
      const lt = spawnSync("dpkg", ["--compare-versions", a, "lt", b]).status === 0;
      const eq = spawnSync("dpkg", ["--compare-versions", a, "eq", b]).status === 0;
      return lt ? -1 : eq ? 0 : 1;
    });
    const out = JSON.parse(
      execFileSync(buildbotPython(), ["-c", PYTHON, JSON.stringify(PAIRS)], {
        env: pythonEnv(),
        encoding: "utf8",
      }),
    ) as { cmp: number[]; ok: boolean[]; env: unknown; strict: string; bad: string[] };
    assert.deepEqual(
      PAIRS.map((p, i) => `${p.join(" vs ")}: ${out.cmp[i]}`),
      PAIRS.map((p, i) => `${p.join(" vs ")}: ${dpkg[i]}`),
    );
    assert.deepEqual(out.ok, [
      true, // pg
      true, // pg >= 15
      false, // pg > 15.4 (strict)
      true, // pg < 16 (strict)
      false, // pg << 15.4
      true, // pg = 15.4
      true, // pg >> 15.4~
      false, // pg <= 15.3
      true, // plain
      false, // plain >= 1: no version to compare
      false, // off: unavailable
      false, // nosuch
      true, // "pg >= 13, plain": both
    ]);
    assert.deepEqual(out.env, { BUILDD_REQUIRES: "pg >= 13, plain" });
    assert.equal(out.strict, "pg << 16");
    assert.equal(out.bad.length, 7, out.bad.join("\n"));
  });
});
