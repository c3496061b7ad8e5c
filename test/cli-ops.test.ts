// The commands an operator points at a running builder: status, logs (--follow), drain
// and undrain, and history from its journal. Each runs as a real child process against
// a real builder; output is a pipe.
import assert from "node:assert/strict";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { after, before, describe, test } from "node:test";
import { startTestBuilder, type TestBuilder } from "../harness/builder.js";
import { RpcFault } from "../harness/client.js";
import {
  eventually,
  fetchText,
  makeTarball,
  putInCache,
  status,
  waitForState,
} from "../harness/fixtures.js";
import { startLibrarian, type Librarian } from "../harness/librarian.js";
import { buildd } from "./cli-run.js";

describe("buildd status, logs, drain", () => {
  let b: TestBuilder;
  let lib: Librarian;
  let tree: string;
  before(async () => {
    b = await startTestBuilder();
    lib = await startLibrarian();
    tree = await putInCache(b.client, lib, makeTarball({ README: "a tree\n" }), "ops-tree");
  });
  after(async () => {
    await b?.stop();
    await lib?.close();
  });

  test("status of an idle builder; logs says there is no log", async () => {
    const r = await buildd(["status", "--url", b.url]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, new RegExp(`^builder +${b.url}$`, "m"));
    assert.match(r.stdout, /^state +IDLE$/m);
    assert.match(r.stdout, /^version +\S+ \(protocol 1\.0, \S+, builds .*script/m);
    assert.match(r.stdout, /^cache +.* entries; .* free \(reserve /m);
    const logs = await buildd(["logs", "--url", b.url]);
    assert.equal(logs.code, 1);
    assert.match(logs.stderr, /has no build log: it is IDLE/);
  });

  test("a running build: status shows the step and the log tail; logs --follow prints it to the end", async () => {
    await b.client.call(
      "build",
      "OPS-1",
      "script",
      tree,
      {},
      {
        steps: [
          { name: "first", run: "echo first-step-output" },
          { name: "long", run: "echo long-step-started; sleep 60" },
        ],
      },
    );
    await eventually("the long step runs", async () =>
      /^long-step-started$/m.test(await fetchText(`${b.url}/filecache/buildlog`)),
    );
    const s = await buildd(["status", "--url", b.url]);
    assert.equal(s.code, 0, s.stderr);
    assert.match(s.stdout, /^state +BUILDING$/m);
    assert.match(s.stdout, /^build +OPS-1$/m);
    assert.match(s.stdout, /^step +long$/m);
    assert.match(s.stdout, /^long-step-started$/m, "the log tail");

    const once = await buildd(["logs", "--url", b.url]);
    assert.equal(once.code, 0, once.stderr);
    assert.match(once.stdout, /^first-step-output$/m);

    // --follow keeps going while the build runs, and ends with it (here: aborted).
    const following = buildd(["logs", "--follow", "--url", b.url]);
    await new Promise((r) => setTimeout(r, 1500));
    assert.equal(await b.client.call("abort"), "BuilderStatus.ABORTING");
    const followed = await following;
    assert.equal(followed.code, 0, followed.stderr);
    assert.match(followed.stdout, /^first-step-output$/m);
    const final = await waitForState(b.client, "WAITING");
    assert.equal(final["build_status"], "BuildStatus.ABORTED");
    assert.equal(
      followed.stdout,
      await fetchText(`${b.url}/filecache/buildlog`),
      "the whole log, once",
    );

    const waiting = await buildd(["status", "--url", b.url]);
    assert.match(waiting.stdout, /^state +WAITING$/m);
    assert.match(waiting.stdout, /^result +ABORTED$/m);
    await b.client.call("clean");
  });

  test("drain refuses new builds until undrain; status says so", async () => {
    const d = await buildd(["drain", "--url", b.url]);
    assert.equal(d.code, 0, d.stderr);
    assert.match(d.stdout, /^draining .*: build\(\) is refused until buildd undrain$/m);
    assert.match((await buildd(["status", "--url", b.url])).stdout, /^state +IDLE \(draining/m);
    await assert.rejects(
      b.client.call("build", "OPS-2", "script", tree, {}, { steps: [{ name: "x", run: "true" }] }),
      (err: RpcFault) => /draining/.test(err.faultString),
    );
    const u = await buildd(["undrain", "--url", b.url]);
    assert.equal(u.code, 0, u.stderr);
    assert.match(u.stdout, /takes builds again/);
    assert.deepEqual(
      await b.client.call(
        "build",
        "OPS-2",
        "script",
        tree,
        {},
        { steps: [{ name: "x", run: "true" }] },
      ),
      ["BuilderStatus.BUILDING", "OPS-2"],
    );
    await waitForState(b.client, "WAITING");
    await b.client.call("clean");
  });

  test("drain --wait returns once the running build has ended", async () => {
    // The build runs until the test releases it, so drain surely meets it running.
    const gate = fs.mkdtempSync(path.join(os.tmpdir(), "buildd-cli-gate-"));
    fs.chmodSync(gate, 0o755);
    const release = path.join(gate, "release");
    await b.client.call(
      "build",
      "OPS-3",
      "script",
      tree,
      {},
      {
        // Named in the environment: a step's private /tmp keeps what the build names.
        steps: [{ name: "held", run: 'while [ ! -e "$GATE" ]; do sleep 0.1; done' }],
        environment: { GATE: release },
      },
    );
    const draining = buildd(["drain", "--wait", "--url", b.url]);
    await eventually("the builder drains", async () => {
      const api = (await (await fetch(`${b.url}/api/v1/status`)).json()) as { draining: boolean };
      return api.draining;
    });
    assert.equal((await status(b.client))["builder_status"], "BuilderStatus.BUILDING");
    fs.writeFileSync(release, "");
    const d = await draining;
    assert.equal(d.code, 0, d.stderr);
    assert.match(d.stdout, /build OPS-3 runs on/);
    assert.match(d.stdout, /no build is running \(the builder is WAITING\)/);
    assert.equal((await status(b.client))["build_status"], "BuildStatus.OK");
    await b.client.call("clean");
    assert.equal((await buildd(["undrain", "--url", b.url])).code, 0);
  });

  test("a builder that is not there: a message saying what to check", async () => {
    const r = await buildd(["status", "--url", "http://127.0.0.1:1"]);
    assert.equal(r.code, 1);
    assert.match(
      r.stderr,
      /cannot reach the builder at http:\/\/127\.0\.0\.1:1 \(ECONNREFUSED\): is `buildd serve` running there\?/,
    );
  });

  test("history: start, end, duration, result, type and id of each build, newest first", async () => {
    const r = await buildd(["history", "--config", b.configFile]);
    assert.equal(r.code, 0, r.stderr);
    const lines = r.stdout.trimEnd().split("\n");
    assert.match(lines[0]!, /^STARTED +ENDED +DURATION +RESULT +TYPE +BUILD ID$/);
    const time = "\\d{4}-\\d\\d-\\d\\d \\d\\d:\\d\\d:\\d\\dZ";
    const row = (result: string, id: string): RegExp =>
      new RegExp(`^${time} +${time} +\\d+(ms|s|m\\d\\ds) +${result} +script +${id}$`);
    assert.match(lines[1]!, row("OK", "OPS-3"));
    assert.match(lines[2]!, row("OK", "OPS-2"));
    assert.match(lines[3]!, row("ABORTED", "OPS-1"));
    const two = await buildd(["history", "--config", b.configFile, "--limit", "2", "--json"]);
    const json = JSON.parse(two.stdout) as { build_id: string; duration_seconds: number }[];
    assert.deepEqual(
      json.map((j) => j.build_id),
      ["OPS-3", "OPS-2"],
    );
    assert.ok(json.every((j) => typeof j.duration_seconds === "number" && j.duration_seconds >= 0));
  });

  test("history refuses a bad --limit and creates nothing where it is run", async () => {
    const elsewhere = fs.mkdtempSync(path.join(os.tmpdir(), "buildd-cli-cwd-"));
    for (const limit of ["0", "lots", "-3", "2.5", "10001"]) {
      const r = await buildd(["history", "--config", b.configFile, "--limit", limit], {
        cwd: elsewhere,
      });
      assert.equal(r.code, 2, `--limit ${limit}: ${r.stderr}`);
      assert.equal(
        r.stderr.trim(),
        `buildd: --limit must be a whole number from 1 to 10000, not ${JSON.stringify(limit)}`,
      );
    }
    const ok = await buildd(["history", "--config", b.configFile], { cwd: elsewhere });
    assert.equal(ok.code, 0, ok.stderr);
    assert.deepEqual(fs.readdirSync(elsewhere), [], "no stray ./var where it was run");
  });
});
