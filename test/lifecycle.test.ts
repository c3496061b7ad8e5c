// The build lifecycle through the real server with `script` builds on the host backend:
// build → status → WAITING → results over /filecache → clean; refusals; abort that kills
// everything; timeouts; log limits; credential scrubbing.
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import Database from "better-sqlite3";
import { after, afterEach, before, describe, test } from "node:test";
import { startTestBuilder, type TestBuilder } from "../harness/builder.js";
import {
  cleanBuilder,
  fetchBuildLog,
  returnToIdle,
  runScriptBuild,
  startScenario,
  startScriptBuild,
  type Scenario,
} from "../harness/scenario.js";
import { RpcFault } from "../harness/client.js";
import {
  alive,
  eventually,
  fetchText,
  makeTarball,
  pidsWithMarker,
  putInCache,
  sha1,
  status,
  waitForState,
} from "../harness/fixtures.js";
import type { Librarian } from "../harness/librarian.js";
import type { XmlRpcValue } from "../src/rpc/codec.js";

/** [build] kill_grace of this suite's builder, in ms. */
const KILL_GRACE_MS = 1000;

describe("build lifecycle (script builds on the host)", () => {
  let scenario: Scenario;
  let b: TestBuilder;
  let lib: Librarian;
  let tree: string;

  before(async () => {
    scenario = await startScenario(
      { "src/hello.txt": "hello from the tarball\n", "run.sh": "echo run.sh ran\n" },
      { build: { kill_grace: KILL_GRACE_MS / 1000, abort_timeout: 10 } },
    );
    ({ builder: b, librarian: lib, tree } = scenario);
  });
  after(() => scenario.stop());
  afterEach(() => returnToIdle(b.client));

  const script = (
    steps: { name: string; run: XmlRpcValue }[],
    extra: Record<string, XmlRpcValue> = {},
  ) => ({
    steps,
    ...extra,
  });

  const buildAndWait = (id: string, args: Record<string, XmlRpcValue>) =>
    runScriptBuild(b.client, id, tree, args);
  const cleanUp = () => cleanBuilder(b.client);

  test("info() lists the script build type", async () => {
    const info = (await b.client.call("info")) as XmlRpcValue[];
    assert.ok((info[2] as string[]).includes("script"));
  });

  test("an OK build: steps run in the unpacked workspace, artifacts come back by SHA-1", async () => {
    const s = await buildAndWait(
      "SCRIPT-ok",
      script(
        [
          {
            name: "compile",
            run: ["sh", "-c", "mkdir -p out && tr a-z A-Z < src/hello.txt > out/HELLO.txt"],
          },
          { name: "test", run: 'sh run.sh && echo "$GREETING" > out/env.txt' },
        ],
        { artifacts: ["out/*.txt"], environment: { GREETING: "hi there" } },
      ),
    );
    assert.equal(s["build_status"], "BuildStatus.OK");
    assert.equal(s["build_id"], "SCRIPT-ok");
    assert.equal(s["dependencies"], "");
    const filemap = s["filemap"] as Record<string, string>;
    assert.deepEqual(Object.keys(filemap).sort(), ["out/HELLO.txt", "out/env.txt"]);
    assert.equal(filemap["out/HELLO.txt"], sha1("HELLO FROM THE TARBALL\n"));
    assert.equal(
      await fetchText(`${b.url}/filecache/${filemap["out/HELLO.txt"]}`),
      "HELLO FROM THE TARBALL\n",
    );
    assert.equal(await fetchText(`${b.url}/filecache/${filemap["out/env.txt"]}`), "hi there\n");
    const log = await fetchBuildLog(b.url);
    assert.match(
      log,
      /^\[[^\]]+\]\nRUN: sh -c 'mkdir -p out && tr a-z A-Z < src\/hello.txt > out\/HELLO.txt'\n/m,
    );
    assert.match(
      log,
      /RUN: \/bin\/sh -c 'sh run.sh && echo "\$GREETING" > out\/env.txt'\nrun.sh ran\n/,
    );
    await cleanUp();
    // Results and the log are gone; the input stays.
    assert.equal((await fetch(`${b.url}/filecache/${filemap["out/HELLO.txt"]}`)).status, 404);
    assert.equal((await fetch(`${b.url}/filecache/buildlog`)).status, 404);
    assert.equal((await fetch(`${b.url}/filecache/${tree}`)).status, 200);
    assert.deepEqual(await status(b.client), {
      builder_status: "BuilderStatus.IDLE",
      builder_version: (await status(b.client))["builder_version"] as string,
    });
  });

  test("a failing step is PACKAGEFAIL: later steps do not run, the filemap is present", async () => {
    const s = await buildAndWait(
      "SCRIPT-fail",
      script(
        [
          { name: "make-report", run: "mkdir -p out && echo partial > out/report.txt" },
          { name: "tests", run: "echo 'running tests'; exit 3" },
          { name: "never", run: "echo should-not-run" },
        ],
        { artifacts: ["out/report.txt"] },
      ),
    );
    assert.equal(s["build_status"], "BuildStatus.PACKAGEFAIL");
    assert.deepEqual(s["filemap"], { "out/report.txt": sha1("partial\n") });
    const log = await fetchBuildLog(b.url);
    assert.match(log, /\[buildd\] step "tests" exited with status 3; the build failed/);
    assert.doesNotMatch(log, /should-not-run/);
    await cleanUp();
  });

  test("the build timeout stops a running step: PACKAGEFAIL, the log says why", async () => {
    const s = await buildAndWait(
      "SCRIPT-timeout",
      script([{ name: "hang", run: "sleep 4243.1" }], { timeout: 1 }),
    );
    assert.equal(s["build_status"], "BuildStatus.PACKAGEFAIL");
    assert.match(await fetchBuildLog(b.url), /the build timed out after 1 seconds/);
    assert.deepEqual(pidsWithMarker("4243.1"), []);
    await cleanUp();
  });

  test("status() while BUILDING: build_id, the current step and a base64 log tail", async () => {
    await startScriptBuild(
      b.client,
      "SCRIPT-status",
      tree,
      script([
        { name: "first", run: "echo one" },
        { name: "waiting-step", run: "echo started-waiting; sleep 4244.1" },
      ]),
    );
    await eventually(
      "second step running",
      async () => (await status(b.client))["build_step"] === "waiting-step",
    );
    await eventually("its output in the tail", async () => {
      const s = await status(b.client);
      return Buffer.isBuffer(s["logtail"]) && /^started-waiting$/m.test(s["logtail"].toString());
    });
    const s = await status(b.client);
    assert.equal(s["builder_status"], "BuilderStatus.BUILDING");
    assert.equal(s["build_id"], "SCRIPT-status");
    assert.ok(!("build_status" in s) && !("filemap" in s));
    assert.equal(await b.client.call("abort"), "BuilderStatus.ABORTING");
    const w = await waitForState(b.client, "WAITING");
    assert.equal(w["build_status"], "BuildStatus.ABORTED");
    assert.ok(!("filemap" in w), "no filemap for ABORTED");
    await cleanUp();
  });

  test("build() while BUILDING is refused and leaves the running build untouched", async () => {
    await startScriptBuild(
      b.client,
      "SCRIPT-first",
      tree,
      script([{ name: "long", run: 'trap "" TERM; echo first-build-output; sleep 4245.1' }]),
    );
    // The output on a line of its own: the RUN line echoes the command, so a bare
    // substring would match before the shell has run its trap.
    await eventually("output", async () =>
      /^first-build-output$/m.test(await fetchBuildLog(b.url)),
    );
    const logBefore = await fetchBuildLog(b.url);
    await assert.rejects(
      startScriptBuild(b.client, "SCRIPT-second", tree, script([{ name: "x", run: "true" }])),
      {
        faultCode: 8002,
        faultString:
          'Builder is not IDLE when asked to start building: it is BUILDING build "SCRIPT-first"; call abort() first, or wait for it to finish',
      },
    );
    const s = await status(b.client);
    assert.equal(s["build_id"], "SCRIPT-first");
    assert.equal(s["builder_status"], "BuilderStatus.BUILDING");
    assert.ok((await fetchBuildLog(b.url)).startsWith(logBefore), "log not truncated");
    // abort() twice: the second answers the same and changes nothing. (The step ignores
    // SIGTERM, so the builder stays ABORTING for the kill grace period.)
    assert.equal(await b.client.call("abort"), "BuilderStatus.ABORTING");
    const second = await b.client.call("abort").catch((err: unknown) => err);
    // If the build was already over, the log says how its step ended and how soon.
    if (second !== "BuilderStatus.ABORTING") {
      assert.fail(`second abort(): ${String(second)}; log:\n${await fetchBuildLog(b.url)}`);
    }
    assert.equal((await waitForState(b.client, "WAITING"))["build_status"], "BuildStatus.ABORTED");
    assert.deepEqual(pidsWithMarker("4245.1"), []);
    // It was our ladder that ended it: KILL, once the grace for TERM had run out.
    const ended = /\[buildd\] step "long" (.*), (\d+) ms after the stop/.exec(
      await fetchBuildLog(b.url),
    );
    assert.ok(ended, "the log says how the stopped step ended");
    assert.equal(ended[1], "was killed by SIGKILL");
    assert.ok(Number(ended[2]) >= KILL_GRACE_MS, `killed ${ended[2]} ms after the stop`);
    await cleanUp();
  });

  test("abort kills everything: setsid, TERM traps and double forks included", async () => {
    const marker = "4246.7";
    const run = [
      `setsid sh -c 'trap "" TERM; sleep ${marker}' &`,
      `sh -c '(sleep ${marker} &) ; exit 0'`,
      `(trap "" TERM; sleep ${marker}) &`,
      `trap "" TERM`,
      `echo spawned; sleep ${marker}`,
    ].join("\n");
    await startScriptBuild(b.client, "SCRIPT-abort", tree, script([{ name: "daemons", run }]));
    await eventually(
      "all four sleepers running",
      () => pidsWithMarker(`sleep ${marker}`).length >= 4,
    );
    const pids = pidsWithMarker(marker);
    assert.equal(await b.client.call("abort"), "BuilderStatus.ABORTING");
    const s = await waitForState(b.client, "WAITING");
    assert.equal(s["build_status"], "BuildStatus.ABORTED");
    assert.deepEqual(pids.filter(alive), [], "every process of the build is gone");
    assert.match(await fetchBuildLog(b.url), /ABORTING/);
    await cleanUp();
  });

  test("abort and clean in the wrong states are faults that say why", async () => {
    // The reference's wording first (managers may match on it), then where the builder
    // is and what to do.
    await assert.rejects(b.client.call("abort"), {
      faultCode: 8002,
      faultString:
        "Builder is not BUILDING when asked to abort: it is IDLE; there is no build to abort",
    });
    await assert.rejects(b.client.call("clean"), {
      faultCode: 8002,
      faultString:
        "Builder is not WAITING when asked to clean: it is IDLE; there is no build to clean up",
    });
    await buildAndWait("SCRIPT-w", script([{ name: "ok", run: "true" }]));
    await assert.rejects(b.client.call("abort"), {
      faultCode: 8002,
      faultString:
        'Builder is not BUILDING when asked to abort: it is WAITING with build "SCRIPT-w" (OK), which has already finished; call clean()',
    });
    await assert.rejects(startScriptBuild(b.client, "SCRIPT-x", tree, script([])), {
      faultCode: 8002,
      faultString:
        'Builder is not IDLE when asked to start building: it is WAITING with build "SCRIPT-w" (OK); collect its files and call clean() first',
    });
    await cleanUp();
  });

  test("refusals in the protocol's order, before anything changes", async () => {
    const missing = "0".repeat(40);
    const args = script([{ name: "x", run: "true" }]);
    const [kind, info] = (await b.client.call(
      "build",
      "B",
      "nosuchtype",
      tree,
      {},
      args,
    )) as string[];
    assert.equal(kind, "BuilderStatus.UNKNOWNBUILDER");
    assert.match(info!, /^nosuchtype not in \[.*'script'.*\]$/);
    assert.deepEqual(await startScriptBuild(b.client, "B", missing, args), [
      "BuilderStatus.UNKNOWNSUM",
      `CHROOTSUM -> ${missing}`,
    ]);
    assert.deepEqual(
      await b.client.call("build", "B", "script", tree, { "a.txt": missing }, args),
      ["BuilderStatus.UNKNOWNSUM", `FILESUM -> ${missing}`],
    );
    await assert.rejects(startScriptBuild(b.client, "", tree, args), {
      faultCode: 8002,
      faultString: "build_id must not be empty",
    });
    await assert.rejects(startScriptBuild(b.client, "../../etc", tree, args), (e: unknown) => {
      assert.ok(
        e instanceof RpcFault && /build_id "..\/..\/etc" is not a safe name/.test(e.faultString),
      );
      return true;
    });
    await assert.rejects(
      b.client.call("build", "B", "script", tree, { "../x": tree }, args),
      /filemap name "..\/x" is not a safe file name/,
    );
    await assert.rejects(startScriptBuild(b.client, "B", tree, { steps: [] }), {
      faultCode: 8002,
      faultString: "script build: steps must be a non-empty list of {name, run}",
    });
    await assert.rejects(
      startScriptBuild(b.client, "B", tree, { steps: [{ name: "x", run: 5 }] }),
      {
        faultString: "script build: steps[0].run must be a string or a non-empty list of strings",
      },
    );
    assert.equal((await status(b.client))["builder_status"], "BuilderStatus.IDLE");
  });

  test("log tails of 0, 1, 2048, 2049 and 4096 bytes", async () => {
    for (const n of [0, 1, 2048, 2049, 4096]) {
      const marker = `4247.${n + 1}`;
      await startScriptBuild(
        b.client,
        `TAIL-${n}`,
        tree,
        script([
          {
            name: "emit",
            run: ["sh", "-c", `head -c ${n} /dev/zero | tr '\\0' x; sleep ${marker}`],
          },
        ]),
      );
      await eventually("sleeper", () => pidsWithMarker(`sleep ${marker}`).length > 0);
      // A partial line reaches the log on the next idle flush (a quarter second).
      const getLog = async () =>
        Buffer.from(await (await fetch(`${b.url}/filecache/buildlog`)).arrayBuffer());
      if (n > 0)
        await eventually("the x's in the log", async () => (await getLog()).at(-1) === 0x78);
      const full = await getLog();
      const tail = (await status(b.client))["logtail"] as Buffer;
      assert.ok(Buffer.isBuffer(tail));
      assert.equal(tail.length, Math.min(2048, full.length), `n=${n}`);
      assert.deepEqual(
        tail,
        full.subarray(full.length - tail.length),
        `n=${n}: the last bytes of the log`,
      );
      if (n >= 2048) assert.deepEqual(tail, Buffer.alloc(2048, "x"));
      if (n === 1) assert.equal(tail.at(-1), "x".charCodeAt(0));
      await b.client.call("abort");
      await waitForState(b.client, "WAITING");
      await cleanUp();
    }
  });

  test("credentials are scrubbed from the log, the tail, and the builder's own log", async () => {
    const secretUrl = "http://buildd:s3cr3t-pass@archive.example/ubuntu";
    await startScriptBuild(
      b.client,
      "SCRIPT-scrub",
      tree,
      script(
        [
          {
            name: "leak",
            // The secret also appears literally in the command line: the journal must
            // not keep it there either.
            run: `echo "Get:1 ${secretUrl} focal InRelease"; echo token=$API_TOKEN; test "$API_TOKEN" = tok-123456789 && echo same; sleep 4248.1`,
          },
        ],
        { secrets: { API_TOKEN: "tok-123456789" }, environment: { MIRROR: secretUrl } },
      ),
    );
    // The output line, not the RUN line (which holds "token=$API_TOKEN" too).
    await eventually("output", async () => /^same$/m.test(await fetchBuildLog(b.url)));
    const tail = ((await status(b.client))["logtail"] as Buffer).toString();
    const log = await fetchBuildLog(b.url);
    for (const text of [tail, log]) {
      assert.doesNotMatch(text, /s3cr3t-pass|tok-123456789/);
      assert.match(text, /Get:1 http:\/\/archive.example\/ubuntu focal InRelease/);
      assert.match(text, /token=\*\*\*\*\*\*\*\*/);
    }
    await b.client.call("abort");
    await waitForState(b.client, "WAITING");
    await cleanUp();
    // The journal on disk keeps the build's arguments without the secrets.
    const db = new Database(path.join(b.statedir, "buildd.sqlite"), { readonly: true });
    const rows = db.prepare("SELECT args FROM builds WHERE build_id = ?").all("SCRIPT-scrub") as {
      args: string;
    }[];
    db.close();
    assert.equal(rows.length, 1);
    assert.match(rows[0]!.args, /API_TOKEN/);
    assert.match(rows[0]!.args, /http:\/\/archive\.example\/ubuntu/);
    assert.doesNotMatch(rows[0]!.args, /s3cr3t-pass|tok-123456789/);
    // Not anywhere in the SQLite files either (the WAL holds every version of a row).
    for (const file of fs.readdirSync(b.statedir).filter((f) => f.startsWith("buildd.sqlite"))) {
      const bytes = fs.readFileSync(path.join(b.statedir, file)).toString("latin1");
      assert.ok(!bytes.includes("tok-123456789"), `${file} holds the secret`);
      assert.ok(!bytes.includes("s3cr3t-pass"), `${file} holds the password`);
    }
    // ensurepresent logs its URL: the builder's own log must not show the password.
    await b.client.call(
      "ensurepresent",
      "1".repeat(40),
      `http://user:pw-hidden-42@127.0.0.1:1/x`,
      "",
      "",
    );
    assert.match(b.logText(), /fetching/);
    assert.doesNotMatch(b.logText(), /pw-hidden-42|s3cr3t-pass|tok-123456789/);
  });

  test("a build that writes past the maximum log size is stopped as PACKAGEFAIL", async () => {
    const small = await startTestBuilder({ build: { log_max_size: "64K", kill_grace: 1 } });
    try {
      const t = await putInCache(small.client, lib, makeTarball({ a: "a" }), "small-tree");
      const s = await runScriptBuild(
        small.client,
        "SCRIPT-big",
        t,
        script([{ name: "spam", run: "yes spam-line-4249" }]),
      );
      assert.equal(s["build_status"], "BuildStatus.PACKAGEFAIL");
      const log = await fetchBuildLog(small.url);
      assert.ok(Buffer.byteLength(log) < 64 * 1024 + 1024, `log size ${Buffer.byteLength(log)}`);
      assert.match(log, /exceeded the maximum size/);
      assert.deepEqual(pidsWithMarker("spam-line-4249"), []);
    } finally {
      await small.stop();
    }
  });
});
