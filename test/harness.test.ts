// The child-process harness itself: it must start a builder whatever its log level, and
// say clearly what happened when a start fails or does not fail as expected.
import assert from "node:assert/strict";
import fs from "node:fs";
import { describe, test } from "node:test";
import {
  makeBuilderDirs,
  startBuilderExpectingExit,
  startBuilderProcess,
} from "../harness/builder.js";
import { START_SCRIPT } from "../harness/dist.js";
import { alive } from "../harness/fixtures.js";
import { listeningAddresses } from "../harness/listening.js";

describe("harness: builders as child processes", () => {
  test("a builder that logs nothing below error is found, by the port it listens on", async () => {
    const dirs = makeBuilderDirs({ log: { level: "error" } });
    const p = await startBuilderProcess(dirs);
    try {
      assert.equal(p.pid, p.child.pid);
      assert.deepEqual(await p.client.call("echo", "up"), ["up"]);
      const port = Number(new URL(p.url).port);
      assert.ok(port > 0, p.url);
      assert.ok(listeningAddresses(p.pid).some((a) => a.port === port));
      assert.doesNotMatch(p.logText(), /listening/);
    } finally {
      assert.equal(await p.kill("SIGKILL"), "SIGKILL");
    }
    assert.equal(alive(p.pid), false);
    fs.rmSync(dirs.dir, { recursive: true, force: true });
  });

  test("entry dist runs the built program as npm start does, and is found the same way", async () => {
    const dirs = makeBuilderDirs({ log: { level: "warn" } });
    const p = await startBuilderProcess(dirs, { entry: "dist", detached: true });
    try {
      const argv = fs.readFileSync(`/proc/${p.pid}/cmdline`, "utf8").split("\0");
      assert.deepEqual(argv.slice(1, 5), [START_SCRIPT, "serve", "--config", dirs.configFile]);
      assert.ok(p.startupMs > 0);
      assert.deepEqual(await p.client.call("echo", "built"), ["built"]);
    } finally {
      // Detached: it leads its own process group, and is still stopped by its pid.
      assert.equal(await p.kill("SIGTERM", 10_000), 0);
    }
    assert.equal(alive(p.pid), false);
    fs.rmSync(dirs.dir, { recursive: true, force: true });
  });

  test("a start that fails rejects with the builder's own words", async () => {
    const dirs = makeBuilderDirs({ builder: { bindport: "http" } });
    await assert.rejects(
      startBuilderProcess(dirs),
      /builder exited with status 2 during start-up:\n[^]*\[builder\] bindport/,
    );
    fs.rmSync(dirs.dir, { recursive: true, force: true });
  });

  test("a start expected to exit reports its status and output", async () => {
    const dirs = makeBuilderDirs({ builder: { bindport: "http" } });
    const r = await startBuilderExpectingExit(dirs);
    assert.equal(r.code, 2);
    assert.equal(r.signal, null);
    assert.match(r.output, /configuration error: .*\[builder\] bindport/);
    assert.ok(r.ms > 0);
    fs.rmSync(dirs.dir, { recursive: true, force: true });
  });

  test("a start expected to exit that keeps running is killed, and the call rejects saying so", async () => {
    const dirs = makeBuilderDirs();
    await assert.rejects(
      startBuilderExpectingExit(dirs, { timeoutMs: 8000 }),
      /expected to exit but was still running after 8000 ms( \(listening on [^)]*\))?; killed it/,
    );
    fs.rmSync(dirs.dir, { recursive: true, force: true });
  });
});
