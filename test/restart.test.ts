// The builder as a real child process, killed with SIGKILL and started again on the same
// directories: nothing the manager was told is lost, nothing of a dead build survives.
import assert from "node:assert/strict";
import { execFile, spawn } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { promisify } from "node:util";
import { describe, test } from "node:test";
import Database from "better-sqlite3";
import { makeBuilderDirs, startBuilderProcess, type BuilderDirs } from "../harness/builder.js";
import {
  cacheListing,
  eventually,
  fetchText,
  httpGet,
  makeTarball,
  pidsWithMarker,
  putInCache,
  sha1,
  status,
} from "../harness/fixtures.js";
import {
  cleanBuilder,
  fetchBuildLog,
  runScriptBuild,
  startScriptBuild,
} from "../harness/scenario.js";
import { suiteLibrarian } from "../harness/suite.js";

describe("restarts (SIGKILL)", () => {
  const lib = suiteLibrarian();
  const tarball = makeTarball({ "data.txt": "payload\n" });

  test("killed while BUILDING: back as WAITING/BUILDERFAIL, log kept, no process left", async () => {
    const dirs: BuilderDirs = makeBuilderDirs();
    let p = await startBuilderProcess(dirs);
    const tree = await putInCache(p.client, lib(), tarball, "restart-building");
    await startScriptBuild(p.client, "RESTART-1", tree, {
      steps: [{ name: "long", run: "echo before-the-crash; setsid sleep 4250.1 & sleep 4250.1" }],
    });
    await eventually("sleepers", () => pidsWithMarker("sleep 4250.1").length >= 2);
    assert.equal(await p.kill("SIGKILL"), "SIGKILL");

    p = await startBuilderProcess(dirs);
    try {
      const s = await status(p.client);
      assert.equal(s["builder_status"], "BuilderStatus.WAITING");
      assert.equal(s["build_status"], "BuildStatus.BUILDERFAIL");
      assert.equal(s["build_id"], "RESTART-1");
      assert.ok(!("filemap" in s));
      await eventually(
        "no process of the dead build",
        () => pidsWithMarker("4250.1").length === 0,
        10_000,
      );
      const log = await fetchBuildLog(p.url);
      assert.match(log, /before-the-crash/);
      assert.match(log, /the builder restarted while this build was running/);
      await cleanBuilder(p.client);
      assert.equal((await status(p.client))["builder_status"], "BuilderStatus.IDLE");
      // The journal keeps the build as history after clean().
      const { stdout } = await promisify(execFile)(process.execPath, [
        "--import",
        "tsx",
        "src/cli.ts",
        "history",
        "--json",
        "--config",
        dirs.configFile,
      ]);
      const [last] = JSON.parse(stdout) as Record<string, string | null>[];
      assert.equal(last?.["build_id"], "RESTART-1");
      assert.equal(last?.["build_type"], "script");
      assert.equal(last?.["build_status"], "BuildStatus.BUILDERFAIL");
      assert.ok(last?.["started"] && last["ended"] && last["cleaned"]);
    } finally {
      await p.kill("SIGTERM");
    }
  });

  test("killed while BUILDING, its processes gone and their namespace number reused: the new owner's processes are left alone", async () => {
    const dirs: BuilderDirs = makeBuilderDirs();
    let p = await startBuilderProcess(dirs);
    const tree = await putInCache(p.client, lib(), tarball, "restart-reused-ns");
    await startScriptBuild(p.client, "RESTART-NS", tree, {
      steps: [{ name: "long", run: "sleep 4250.3" }],
    });
    await eventually("the build's sleeper", () => pidsWithMarker("sleep 4250.3").length > 0);
    const db = new Database(path.join(dirs.statedir, "buildd.sqlite"));
    const row = (): { seq: number; pid_namespace: string | null } =>
      db.prepare("SELECT seq, pid_namespace FROM builds ORDER BY seq DESC LIMIT 1").get() as {
        seq: number;
        pid_namespace: string | null;
      };
    await eventually("the journal records the namespace", () => row().pid_namespace !== null);
    assert.equal(await p.kill("SIGKILL"), "SIGKILL");
    // The build's processes die while no builder runs; another program then owns a PID
    // namespace with the number the journal holds (the kernel reuses freed numbers).
    for (const pid of pidsWithMarker("4250.3")) process.kill(pid, "SIGKILL");
    await eventually("the build's processes are gone", () => pidsWithMarker("4250.3").length === 0);
    const other = spawn("unshare", ["--pid", "--fork", "sleep", "4251.3"], {
      stdio: "ignore",
      detached: true,
    });
    try {
      // The sleeper itself, inside the namespace (not unshare, which names it too).
      const ownNs = fs.readlinkSync("/proc/self/ns/pid");
      const nsOf = (pid: number): string => fs.readlinkSync(`/proc/${pid}/ns/pid`);
      const otherSleeper = (): number | undefined =>
        pidsWithMarker("sleep 4251.3").find((pid) => nsOf(pid) !== ownNs);
      await eventually("the other sleeper", () => otherSleeper() !== undefined);
      const sleeper = otherSleeper()!;
      const otherNs = nsOf(sleeper);
      const { seq, pid_namespace } = row();
      const recorded = JSON.parse(pid_namespace!) as { ns: string };
      assert.notEqual(recorded.ns, otherNs);
      db.prepare("UPDATE builds SET pid_namespace = ? WHERE seq = ?").run(
        JSON.stringify({ ...recorded, ns: otherNs }),
        seq,
      );
      db.close();

      p = await startBuilderProcess(dirs);
      try {
        const s = await status(p.client);
        assert.equal(s["builder_status"], "BuilderStatus.WAITING");
        assert.equal(s["build_status"], "BuildStatus.BUILDERFAIL");
        assert.equal(otherSleeper(), sleeper, "the other namespace's process lives");
        assert.doesNotMatch(p.logText(), /killed leftover processes/);
        await cleanBuilder(p.client);
      } finally {
        await p.kill("SIGTERM");
      }
    } finally {
      if (db.open) db.close();
      if (other.pid !== undefined) process.kill(-other.pid, "SIGKILL");
    }
  });

  test("killed while WAITING: back as WAITING with the same filemap, files still served", async () => {
    const dirs = makeBuilderDirs();
    let p = await startBuilderProcess(dirs);
    const tree = await putInCache(p.client, lib(), tarball, "restart-waiting");
    const before = await runScriptBuild(p.client, "RESTART-2", tree, {
      steps: [{ name: "copy", run: "cp data.txt result.txt" }],
      artifacts: ["result.txt"],
    });
    assert.equal(before["build_status"], "BuildStatus.OK");
    assert.equal(await p.kill("SIGKILL"), "SIGKILL");

    p = await startBuilderProcess(dirs);
    try {
      const s = await status(p.client);
      assert.deepEqual(s, before);
      assert.equal(await fetchText(`${p.url}/filecache/${sha1("payload\n")}`), "payload\n");
      await cleanBuilder(p.client);
    } finally {
      await p.kill("SIGTERM");
    }
  });

  test("killed in the middle of clean(): back IDLE with the clean finished, never WAITING without its files", async () => {
    const dirs = makeBuilderDirs();
    let p = await startBuilderProcess(dirs);
    const tree = await putInCache(p.client, lib(), tarball, "restart-cleaning");
    const waiting = await runScriptBuild(p.client, "RESTART-3", tree, {
      // Many files, so that removing the workspace takes a moment to kill it in.
      steps: [{ name: "many", run: "mkdir d; cd d; seq 1 20000 | xargs touch; echo r > ../r.txt" }],
      artifacts: ["r.txt"],
    });
    const result = (waiting["filemap"] as Record<string, string>)["r.txt"]!;
    const cleaning = p.client.call("clean").catch(() => null);
    // The journal says CLEANING before anything is removed: kill it right then.
    const db = new Database(path.join(dirs.statedir, "buildd.sqlite"), { readonly: true });
    try {
      await eventually(
        "the journal says CLEANING",
        () =>
          (db.prepare("SELECT state FROM builder_state").get() as { state: string }).state ===
          "CLEANING",
        10_000,
      );
    } finally {
      db.close();
    }
    assert.equal(await p.kill("SIGKILL"), "SIGKILL");
    await cleaning;

    p = await startBuilderProcess(dirs);
    try {
      const s = await status(p.client);
      assert.equal(s["builder_status"], "BuilderStatus.IDLE", JSON.stringify(s));
      assert.match(p.logText(), /finishing a clean that was interrupted/);
      assert.ok(!cacheListing(dirs.filecache).includes(result), "the result is removed");
      assert.ok(cacheListing(dirs.filecache).includes(tree), "the input stays");
      assert.deepEqual(fs.readdirSync(path.join(dirs.statedir, "builds")), []);
      assert.equal((await httpGet(`${p.url}/filecache/buildlog`)).status, 404);
    } finally {
      await p.kill("SIGTERM");
    }
  });

  test("killed in the middle of a download: no temporary file, no entry, ensurepresent works", async () => {
    const dirs = makeBuilderDirs();
    let p = await startBuilderProcess(dirs);
    const body = Buffer.alloc(4 * 1024 * 1024, 7);
    const sum = sha1(body);
    const slow = lib().add("/slow-big", body, {
      kind: "slow",
      bytesPerChunk: 64 * 1024,
      intervalMs: 50,
    });
    const call = p.client.call("ensurepresent", sum, slow, "", "").catch(() => null);
    await eventually("a temporary file appears", () =>
      fs.readdirSync(dirs.filecache).some((f) => f.startsWith(".tmp-")),
    );
    assert.equal(await p.kill("SIGKILL"), "SIGKILL");
    await call;

    p = await startBuilderProcess(dirs);
    try {
      assert.deepEqual(cacheListing(dirs.filecache), [], "no temporary file and no entry");
      assert.deepEqual(await p.client.call("ensurepresent", sum, null, null, null), [
        false,
        "No URL",
      ]);
      const fast = lib().add("/fast-big", body);
      assert.deepEqual(await p.client.call("ensurepresent", sum, fast, "", ""), [true, "Download"]);
    } finally {
      await p.kill("SIGTERM");
    }
  });

  test("at start-up the cache directory and its table are reconciled", async () => {
    const dirs = makeBuilderDirs();
    let p = await startBuilderProcess(dirs);
    const kept = await putInCache(p.client, lib(), Buffer.from("kept"), "reconcile-kept");
    const lost = await putInCache(
      p.client,
      lib(),
      Buffer.from("row without a file"),
      "reconcile-lost",
    );
    assert.equal(await p.kill("SIGTERM"), 0);

    const at = (name: string): string => path.join(dirs.filecache, name);
    fs.rmSync(at(lost));
    const handCopied = Buffer.from("copied in by hand");
    fs.writeFileSync(at(sha1(handCopied)), handCopied);
    const liar = sha1("the truth");
    fs.writeFileSync(at(liar), "a lie");
    fs.writeFileSync(at(".tmp-0123456789abcdef"), "partial download");

    p = await startBuilderProcess(dirs);
    try {
      assert.deepEqual(cacheListing(dirs.filecache), [kept, sha1(handCopied)].sort());
      assert.deepEqual(await p.client.call("ensurepresent", sha1(handCopied), null, null, null), [
        true,
        "No URL",
      ]);
      assert.deepEqual(await p.client.call("ensurepresent", lost, null, null, null), [
        false,
        "No URL",
      ]);
      assert.equal((await fetch(`${p.url}/filecache/${liar}`)).status, 404);
      const log = p.logText();
      assert.match(log, /adopting a verified file without a cache entry/);
      assert.match(log, /file content does not match its name: removing/);
      assert.match(log, /cache entry without a file: dropping it/);
      assert.match(log, /removing a temporary file left by an interrupted download/);
    } finally {
      await p.kill("SIGTERM");
    }
  });
});
