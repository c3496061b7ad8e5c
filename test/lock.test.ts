// One builder per state directory and file cache: a second `buildd serve` on the same
// directories refuses at once, names the holder, and leaves the running build alone.
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { describe, test } from "node:test";
import {
  makeBuilderDirs,
  startBuilderExpectingExit,
  startBuilderProcess,
  type BuilderDirs,
} from "../harness/builder.js";
import {
  eventually,
  makeTarball,
  pidsWithMarker,
  putInCache,
  status,
  waitForState,
} from "../harness/fixtures.js";
import { fetchBuildLog, startScriptBuild } from "../harness/scenario.js";
import { suiteLibrarian } from "../harness/suite.js";

/** The same directories, another port: the second builder is a different config file. */
function secondConfig(dirs: BuilderDirs): string {
  const file = path.join(dirs.dir, "second.conf");
  fs.writeFileSync(
    file,
    `[builder]\nbindhost = 127.0.0.1\nbindport = 0\nstatedir = ${dirs.statedir}\nfilecache = ${dirs.filecache}\n`,
  );
  return file;
}

describe("one builder per state directory", () => {
  const lib = suiteLibrarian();

  test("a second start refuses at once, naming the directory and the PID, and changes nothing", async () => {
    const dirs = makeBuilderDirs();
    const first = await startBuilderProcess(dirs);
    try {
      const tree = await putInCache(first.client, lib(), makeTarball({ "a.txt": "a\n" }), "lock");
      await startScriptBuild(first.client, "LOCK-1", tree, {
        steps: [{ name: "long", run: "echo started; sleep 4260.3; echo finished > out.txt" }],
        artifacts: ["out.txt"],
      });
      await eventually("the build runs", () => pidsWithMarker("sleep 4260.3").length > 0);
      const dbBefore = fs.statSync(path.join(dirs.statedir, "buildd.sqlite")).mtimeMs;

      // Same config (same port: would also fail on EADDRINUSE, but must not get that far)
      // and another config on the same directories with a free port.
      for (const configFile of [dirs.configFile, secondConfig(dirs)]) {
        const second = await startBuilderExpectingExit({ ...dirs, configFile });
        assert.notEqual(second.code, 0, second.output);
        assert.match(second.output, new RegExp(`${dirs.statedir}.* is in use`));
        assert.match(second.output, new RegExp(`process ${first.pid}\\b`));
        assert.doesNotMatch(second.output, /leftover|recovered|listening/);
      }

      // The first builder's build was not touched: still running, then OK.
      assert.equal(fs.statSync(path.join(dirs.statedir, "buildd.sqlite")).mtimeMs, dbBefore);
      const s = await status(first.client);
      assert.equal(s["builder_status"], "BuilderStatus.BUILDING");
      assert.ok(pidsWithMarker("sleep 4260.3").length > 0, "the build's process still runs");
      assert.doesNotMatch(first.logText(), /leftover|BUILDERFAIL/);
      await first.client.call("abort");
      assert.equal(
        (await waitForState(first.client, "WAITING"))["build_status"],
        "BuildStatus.ABORTED",
      );
      assert.match(await fetchBuildLog(first.url), /started/);
    } finally {
      await first.kill("SIGKILL");
    }

    // The kernel released the lock with the process: the next start takes over at once.
    const again = await startBuilderProcess(dirs);
    try {
      const s = await status(again.client);
      assert.equal(s["build_status"], "BuildStatus.ABORTED");
    } finally {
      await again.kill("SIGTERM");
      fs.rmSync(dirs.dir, { recursive: true, force: true });
    }
  });

  test("a file cache shared by two state directories is refused too", async () => {
    const dirs = makeBuilderDirs();
    const first = await startBuilderProcess(dirs);
    try {
      const otherState = path.join(dirs.dir, "other-state");
      fs.mkdirSync(otherState);
      const file = path.join(dirs.dir, "shared-cache.conf");
      fs.writeFileSync(
        file,
        `[builder]\nbindhost = 127.0.0.1\nbindport = 0\nstatedir = ${otherState}\nfilecache = ${dirs.filecache}\n`,
      );
      const second = await startBuilderExpectingExit({ ...dirs, configFile: file });
      assert.notEqual(second.code, 0, second.output);
      assert.match(second.output, new RegExp(`filecache ${dirs.filecache} is in use`));
      assert.match(second.output, new RegExp(`process ${first.pid}\\b`));
      // Refused before anything was made in its own state directory.
      assert.deepEqual(
        fs.readdirSync(otherState).filter((f) => !f.startsWith(".buildd.lock")),
        [],
      );
    } finally {
      await first.kill("SIGTERM");
      fs.rmSync(dirs.dir, { recursive: true, force: true });
    }
  });
});
