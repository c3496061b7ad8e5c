// SIGTERM with work in flight: no new builds, a running build gets its grace, then it is
// stopped as BUILDERFAIL with a line saying why; downloads stop; the journal is closed
// only after all of that — never under live writes.
import assert from "node:assert/strict";
import fs from "node:fs";
import { randomBytes } from "node:crypto";
import { describe, test } from "node:test";
import { makeBuilderDirs, startBuilderProcess } from "../harness/builder.js";
import {
  cacheListing,
  eventually,
  httpGet,
  makeTarball,
  pidsWithMarker,
  putInCache,
  sha1,
  status,
} from "../harness/fixtures.js";
import { cleanBuilder, fetchBuildLog, startScriptBuild } from "../harness/scenario.js";
import { suiteLibrarian } from "../harness/suite.js";

describe("shutdown (SIGTERM)", () => {
  const lib = suiteLibrarian();
  const tarball = makeTarball({ "in.txt": "input\n" });

  test("a build that outlasts [build] shutdown_grace is stopped as BUILDERFAIL, saying why", async () => {
    const dirs = makeBuilderDirs({ build: { shutdown_grace: 1, kill_grace: 0.5 } });
    let p = await startBuilderProcess(dirs);
    const tree = await putInCache(p.client, lib(), tarball, "shutdown-long");
    await startScriptBuild(p.client, "SHUT-1", tree, {
      steps: [{ name: "long", run: "echo working; setsid sleep 4280.1 & sleep 4280.1" }],
    });
    await eventually("the build runs", () => pidsWithMarker("sleep 4280.1").length >= 2);
    // One SIGTERM: a second one would end the grace at once.
    const exited = p.kill("SIGTERM");
    // During the grace the builder still answers, and still builds.
    await new Promise((r) => setTimeout(r, 300));
    assert.equal((await status(p.client))["builder_status"], "BuilderStatus.BUILDING");
    assert.equal(await exited, 0, p.logText());
    assert.doesNotMatch(p.logText(), /database connection is not open|unhandled|TypeError/i);
    assert.deepEqual(pidsWithMarker("4280.1"), [], "no process of the build is left");

    p = await startBuilderProcess(dirs);
    try {
      const s = await status(p.client);
      assert.equal(s["builder_status"], "BuilderStatus.WAITING");
      assert.equal(s["build_status"], "BuildStatus.BUILDERFAIL");
      const log = await fetchBuildLog(p.url);
      assert.match(log, /working/);
      assert.match(
        log,
        /the builder is shutting down and the build did not finish within its grace of 1 s \(\[build\] shutdown_grace\)/,
      );
      assert.doesNotMatch(log, /the builder restarted while this build was running/);
      await cleanBuilder(p.client);
    } finally {
      await p.kill("SIGTERM");
      fs.rmSync(dirs.dir, { recursive: true, force: true });
    }
  });

  test("a second SIGTERM ends the grace at once, and the log says so", async () => {
    const dirs = makeBuilderDirs({ build: { shutdown_grace: 600, kill_grace: 0.5 } });
    let p = await startBuilderProcess(dirs);
    const tree = await putInCache(p.client, lib(), tarball, "shutdown-twice");
    await startScriptBuild(p.client, "SHUT-3", tree, {
      steps: [{ name: "long", run: "sleep 4280.3" }],
    });
    await eventually("the build runs", () => pidsWithMarker("sleep 4280.3").length > 0);
    const exited = p.kill("SIGTERM");
    await eventually("the first signal was taken", () =>
      /stopping: no new builds/.test(p.logText()),
    );
    p.child.kill("SIGTERM");
    assert.equal(await exited, 0, p.logText());
    p = await startBuilderProcess(dirs);
    try {
      assert.equal((await status(p.client))["build_status"], "BuildStatus.BUILDERFAIL");
      assert.match(
        await fetchBuildLog(p.url),
        /the builder was told to stop again \(a second SIGTERM or SIGINT\) before the build finished/,
      );
    } finally {
      await p.kill("SIGTERM");
      fs.rmSync(dirs.dir, { recursive: true, force: true });
    }
  });

  test("a build that ends within the grace finishes normally and is served after the restart", async () => {
    const dirs = makeBuilderDirs({ build: { shutdown_grace: 30 } });
    let p = await startBuilderProcess(dirs);
    const tree = await putInCache(p.client, lib(), tarball, "shutdown-short");
    await startScriptBuild(p.client, "SHUT-2", tree, {
      steps: [{ name: "short", run: "sleep 1.5; echo done > out.txt" }],
      artifacts: ["out.txt"],
    });
    // One SIGTERM (kill() sends it): a second would end the grace at once.
    assert.equal(await p.kill("SIGTERM"), 0, p.logText());

    p = await startBuilderProcess(dirs);
    try {
      const s = await status(p.client);
      assert.equal(s["build_status"], "BuildStatus.OK");
      const sum = (s["filemap"] as Record<string, string>)["out.txt"]!;
      const res = await httpGet(`${p.url}/filecache/${sum}`);
      assert.equal(res.body.toString(), "done\n");
      await cleanBuilder(p.client);
    } finally {
      await p.kill("SIGTERM");
      fs.rmSync(dirs.dir, { recursive: true, force: true });
    }
  });

  test("downloads still running when the grace ends are stopped and leave nothing behind", async () => {
    const dirs = makeBuilderDirs({ build: { shutdown_grace: 0.5 } });
    let p = await startBuilderProcess(dirs);
    const body = randomBytes(256 * 1024);
    const url = lib().add("/slow-at-shutdown", body, {
      kind: "slow",
      bytesPerChunk: 1024,
      intervalMs: 50,
    });
    const call = p.client.call("ensurepresent", sha1(body), url, "", "");
    await eventually("the download started", () =>
      fs.readdirSync(dirs.filecache).some((n) => n.startsWith(".tmp-")),
    );
    const stoppedAt = Date.now();
    const exited = p.kill("SIGTERM");
    // During the grace, a download that is not already running is refused with a reason.
    await new Promise((r) => setTimeout(r, 100));
    const other = randomBytes(100);
    assert.deepEqual(
      await p.client.call("ensurepresent", sha1(other), lib().add("/other", other), "", ""),
      [false, "Error accessing Librarian: the builder is shutting down; not downloading"],
    );
    const [present, info] = (await call) as [boolean, string];
    assert.equal(present, false);
    assert.match(info, /^Error accessing Librarian: .*aborted/);
    assert.equal(await exited, 0, p.logText());
    assert.ok(Date.now() - stoppedAt < 10_000, "the download did not hold up the shutdown");
    assert.deepEqual(cacheListing(dirs.filecache), []);

    p = await startBuilderProcess(dirs);
    try {
      assert.deepEqual(await putInCache(p.client, lib(), body, "after-shutdown"), sha1(body));
    } finally {
      await p.kill("SIGTERM");
      fs.rmSync(dirs.dir, { recursive: true, force: true });
    }
  });
});
