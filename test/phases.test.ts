// The builder's asynchronous phases, through the real server with a backend factory the
// test controls (the one test seam of startBuilder): a backend that holds clean() or the
// end of a build at a gate, and one whose processes cannot be killed. No root needed.
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import path from "node:path";
import { describe, test } from "node:test";
import Database from "better-sqlite3";
import { startTestBuilder, type TestBuilder } from "../harness/builder.js";
import {
  cacheListing,
  eventually,
  httpGet,
  makeTarball,
  pidsWithMarker,
  putInCache,
  sha1,
  status,
  waitForState,
} from "../harness/fixtures.js";
import {
  cleanBuilder,
  fetchBuildLog,
  runScriptBuild,
  startScriptBuild,
} from "../harness/scenario.js";
import { suiteLibrarian } from "../harness/suite.js";
import type { BackendFactory } from "../src/builder/builder.js";
import { HostBackend } from "../src/backends/host.js";
import type { RunOptions } from "../src/backends/backend.js";
import type { BuildLog } from "../src/log/buildlog.js";
import { processRunner, type RunningProcess } from "../src/process/runner.js";

/** A gate a backend waits at until the test opens it; `reached` says it got there. */
class Gate {
  private open!: () => void;
  private readonly opened = new Promise<void>((r) => (this.open = r));
  reached = false;
  async pass(): Promise<void> {
    this.reached = true;
    await this.opened;
  }
  release(): void {
    this.open();
  }
}

interface Gates {
  beforeStop?: Gate;
  beforeRemove?: Gate;
  /** Processes this backend starts report themselves unkillable (think: D state). */
  unkillable?: RunningProcess[];
}

/** The real host backend, with gates in front of stop() and remove(). */
function gatedHost(gates: Gates): BackendFactory {
  class GatedHost extends HostBackend {
    override async stop(): Promise<void> {
      await gates.beforeStop?.pass();
      return super.stop();
    }
    override async remove(): Promise<void> {
      await gates.beforeRemove?.pass();
      return super.remove();
    }
    override run(argv: readonly string[], log: BuildLog, opts?: RunOptions): RunningProcess {
      const real = super.run(argv, log, opts);
      if (!gates.unkillable) return real;
      gates.unkillable.push(real);
      // Every kill "fails": the real process is left running, as one stuck in the kernel.
      return {
        ...real,
        terminate: async () => ({ survivors: [await real.pid] }),
        killRemaining: (pids) => [...pids],
      };
    }
  }
  return (_kind, workspace) => new GatedHost(workspace, processRunner);
}

describe("the builder's phases", () => {
  const lib = suiteLibrarian();
  const tarball = makeTarball({ "in.txt": "input\n" });

  async function builderWith(gates: Gates, sections = {}): Promise<TestBuilder> {
    return startTestBuilder(
      { build: { kill_grace: 0.2, abort_timeout: 1 }, ...sections },
      {},
      { backends: gatedHost(gates) },
    );
  }

  test("clean() is one phase: no build() is accepted and no IDLE shown until it is done", async () => {
    const gates: Gates = { beforeRemove: new Gate() };
    const b = await builderWith(gates);
    try {
      const tree = await putInCache(b.client, lib(), tarball, "phases-clean");
      await runScriptBuild(b.client, "CLEAN-1", tree, {
        steps: [{ name: "s", run: "echo result > r.txt" }],
        artifacts: ["r.txt"],
      });
      const cleaning = b.client.call("clean");
      await eventually("clean() reached the workspace removal", () => gates.beforeRemove!.reached);

      // Meanwhile: still WAITING (with no filemap to fetch), build() refused, and the
      // journal already says CLEANING — a crash now would finish the clean at start-up.
      const s = await status(b.client);
      assert.equal(s["builder_status"], "BuilderStatus.WAITING");
      assert.equal(s["build_id"], "CLEAN-1");
      assert.equal(s["cleaning"], true);
      assert.ok(!("filemap" in s));
      await assert.rejects(
        startScriptBuild(b.client, "CLEAN-2", tree, { steps: [{ name: "s", run: "true" }] }),
        {
          faultCode: 8002,
          faultString:
            'Builder is not IDLE when asked to start building: it is cleaning up after build "CLEAN-1"; wait for clean() to return',
        },
      );
      const db = new Database(path.join(b.statedir, "buildd.sqlite"), { readonly: true });
      try {
        const row = db.prepare("SELECT state FROM builder_state").get() as { state: string };
        assert.equal(row.state, "CLEANING");
      } finally {
        db.close();
      }
      // A second clean() joins the first.
      const second = b.client.call("clean");

      gates.beforeRemove!.release();
      assert.equal(await cleaning, "BuilderStatus.IDLE");
      assert.equal(await second, "BuilderStatus.IDLE");
      assert.equal((await status(b.client))["builder_status"], "BuilderStatus.IDLE");

      // And the builder works on: the next build and its clean.
      await runScriptBuild(b.client, "CLEAN-3", tree, { steps: [{ name: "s", run: "true" }] });
      await cleanBuilder(b.client);
    } finally {
      gates.beforeRemove?.release();
      await b.stop();
    }
  });

  test("results are held as they are stored: a download making room cannot evict them", async () => {
    const gates: Gates = { beforeStop: new Gate() };
    // Budget for the tarball, one 30 KiB filler and the 30 KiB result, not for 50 KiB more.
    const b = await builderWith(gates, { cache: { max_size: "72K", min_free: "0" } });
    try {
      const tree = await putInCache(b.client, lib(), tarball, "phases-hold");
      await putInCache(b.client, lib(), randomBytes(30 * 1024), "filler");
      await startScriptBuild(b.client, "HOLD-1", tree, {
        steps: [{ name: "s", run: "head -c 30720 /dev/urandom > result.bin" }],
        artifacts: ["result.bin"],
      });
      // The result is in the cache; the build is not finished yet (its backend stops).
      await eventually("results stored", () => gates.beforeStop!.reached);
      const big = randomBytes(50 * 1024);
      const [present, info] = (await b.client.call(
        "ensurepresent",
        sha1(big),
        lib().add("/big", big),
        "",
        "",
      )) as [boolean, string];
      // Only the filler may go; that is not enough room, so the download is refused.
      assert.equal(present, false);
      assert.match(info, /not enough space/);

      gates.beforeStop!.release();
      const s = await waitForState(b.client, "WAITING");
      assert.equal(s["build_status"], "BuildStatus.OK");
      const filemap = s["filemap"] as Record<string, string>;
      const res = await httpGet(`${b.url}/filecache/${filemap["result.bin"]}`);
      assert.equal(res.status, 200, "the result is still served");
      assert.equal(sha1(res.body), filemap["result.bin"]);
      await cleanBuilder(b.client);
    } finally {
      gates.beforeStop?.release();
      await b.stop();
    }
  });

  test("storing results fails (cache full): BUILDERFAIL, and nothing of them is left", async () => {
    const b = await builderWith({}, { cache: { max_size: "8K", min_free: "0" } });
    try {
      const tree = await putInCache(b.client, lib(), tarball, "phases-full");
      const s = await runScriptBuild(b.client, "FULL-1", tree, {
        steps: [{ name: "s", run: "echo small > a.txt; head -c 65536 /dev/urandom > b.bin" }],
        artifacts: ["a.txt", "b.bin"],
      });
      assert.equal(s["build_status"], "BuildStatus.BUILDERFAIL");
      assert.ok(!("filemap" in s));
      const log = await fetchBuildLog(b.url);
      assert.match(log, /Failed to gather results: not enough space in the file cache/);
      await cleanBuilder(b.client);
      // Only the input is left in the cache: no stored half of the results, no temporary.
      const names = cacheListing(b.filecache);
      assert.deepEqual(names, [tree]);
    } finally {
      await b.stop();
    }
  });

  test("abort with processes that cannot be killed: BUILDERFAIL naming the survivors", async () => {
    const unkillable: RunningProcess[] = [];
    const gates: Gates = { unkillable };
    const b = await builderWith(gates);
    try {
      const tree = await putInCache(b.client, lib(), tarball, "phases-stuck");
      await startScriptBuild(b.client, "STUCK-1", tree, {
        steps: [{ name: "stuck", run: "sleep 4270.9" }],
      });
      await eventually("the step runs", () => pidsWithMarker("sleep 4270.9").length > 0);
      assert.equal(await b.client.call("abort"), "BuilderStatus.ABORTING");
      const s = await waitForState(b.client, "WAITING", 30_000);
      assert.equal(s["build_status"], "BuildStatus.BUILDERFAIL");
      const pid = await unkillable[0]!.pid;
      assert.match(
        await fetchBuildLog(b.url),
        new RegExp(`failed to kill all processes; still alive: ${pid}\\b`),
      );
      await cleanBuilder(b.client);
    } finally {
      // The test's own cleanup, with the real kill the backend pretended could not do.
      for (const proc of unkillable) await proc.terminate(0);
      assert.deepEqual(pidsWithMarker("sleep 4270.9"), []);
      await b.stop();
    }
  });
});
