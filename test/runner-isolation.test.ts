// The builder's own commands run isolated like build steps: a chroot unpack (tar and the
// decompressor it starts) dies with the build on abort, and a capability probe that
// starts `setsid` children leaves nothing behind when it times out or is cancelled.
// Real processes, real PID namespaces (root); the unpack uses the real bookworm chroot.
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { after, before, describe, test } from "node:test";
import { startTestBuilder, type TestBuilder } from "../harness/builder.js";
import { bookwormChroot, chrootTestsUnavailable } from "../harness/debian.js";
import { eventually, pidsWithMarker, putInCache, waitForState } from "../harness/fixtures.js";
import { startLibrarian, type Librarian } from "../harness/librarian.js";
import { probeCapability } from "../src/capabilities/probe.js";
import { pidNamespaceOf, processesInNamespace } from "../src/process/pidns.js";
import { isolationSupport, processRunner } from "../src/process/runner.js";

const unavailable = chrootTestsUnavailable();
if (unavailable) console.log(`# chroot unpack test skipped: ${unavailable}`);

describe("an abort during a chroot unpack", { skip: unavailable ?? false }, () => {
  let b: TestBuilder;
  let lib: Librarian;
  let chroot: string;

  before(async () => {
    b = await startTestBuilder({ build: { kill_grace: 1, abort_timeout: 30 } });
    lib = await startLibrarian();
    chroot = await putInCache(
      b.client,
      lib,
      fs.readFileSync(await bookwormChroot()),
      "chroot.tar.zst",
    );
  });
  after(async () => {
    await b?.stop();
    await lib?.close();
  });

  test("kills tar and its decompressor, which ran in the build's PID namespace", async () => {
    await b.client.call(
      "build",
      "UNPACK-abort",
      "script",
      chroot,
      {},
      { image_type: "chroot", steps: [{ name: "never", run: ["true"] }] },
    );
    // tar's argv names the cached tarball: its SHA-1 under this builder's cache (other
    // builders on this machine may be unpacking the same chroot).
    const marker = path.join(b.filecache, chroot);
    let tar = 0;
    let inNamespace: number[] = [];
    await eventually(
      "tar and its decompressor are running",
      () => {
        const pids = pidsWithMarker(marker).filter((pid) =>
          fs.readFileSync(`/proc/${pid}/cmdline`, "latin1").startsWith("tar\0"),
        );
        const ns = pids[0] === undefined ? null : pidNamespaceOf(pids[0]);
        if (ns === null) return false;
        tar = pids[0]!;
        inNamespace = processesInNamespace(ns);
        return inNamespace.length >= 2;
      },
      60_000,
    );
    assert.notEqual(pidNamespaceOf(tar), pidNamespaceOf(process.pid), "tar is isolated");
    assert.ok(inNamespace.includes(tar));

    assert.equal(await b.client.call("abort"), "BuilderStatus.ABORTING");
    const s = await waitForState(b.client, "WAITING", 60_000);
    assert.equal(s["build_status"], "BuildStatus.ABORTED");
    const alive = inNamespace.filter((pid) => fs.existsSync(`/proc/${pid}`));
    assert.deepEqual(alive, [], "no process of the unpack is left");
    assert.deepEqual(pidsWithMarker(marker), []);
    await b.client.call("clean");
  });
});

describe("a capability probe that starts setsid children", () => {
  const decl = (probe: string) => ({ name: "thing", version: "1", properties: { probe } });
  const script = (m: string): string =>
    `setsid sleep ${m}1 & setsid sh -c "trap '' TERM; sleep ${m}2" & sleep ${m}3`;

  test("PID namespaces are usable here (the rest of this suite relies on them)", async () => {
    const iso = await isolationSupport();
    assert.equal(iso.ok, true, iso.detail);
  });

  test("leaves no process when it times out", async () => {
    const m = `4263.${process.pid}`;
    const started = pidsWatcher(m);
    const r = await probeCapability(decl(script(m)), {
      timeoutMs: 1000,
      custom: {},
      runner: processRunner,
    });
    assert.deepEqual(r, { available: false, reason: "probe timed out after 1 s" });
    assert.equal(started.seen(), 3, "the probe's three sleepers ran");
    assert.deepEqual(pidsWithMarker(m), []);
  });

  test("leaves no process when the registry cancels it", async () => {
    const m = `4264.${process.pid}`;
    const started = pidsWatcher(m);
    const aborter = new AbortController();
    const probe = probeCapability(decl(script(m)), {
      timeoutMs: 60_000,
      custom: {},
      signal: aborter.signal,
      runner: processRunner,
    });
    await eventually("the probe's children run", () => started.seen() >= 3, 10_000);
    aborter.abort();
    const r = await probe;
    assert.equal(r.available, false);
    assert.deepEqual(pidsWithMarker(m), []);
  });
});

/** Counts, while it runs, the most `sleep` processes with `marker` seen at once. */
function pidsWatcher(marker: string): { seen(): number } {
  let most = 0;
  const look = (): void => {
    const sleepers = pidsWithMarker(marker).filter((pid) => {
      try {
        return fs.readFileSync(`/proc/${pid}/cmdline`, "latin1").startsWith("sleep\0");
      } catch {
        return false;
      }
    });
    most = Math.max(most, sleepers.length);
  };
  const timer = setInterval(look, 20);
  return {
    seen() {
      look();
      if (most >= 3) clearInterval(timer);
      return most;
    },
  };
}
