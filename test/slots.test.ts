// The machine's build slots, which the Launchpad side and the Buildbot side share
// (src/builder/slots.ts): first the owner's rules, then what an operator sees of them
// through the real server while a Launchpad build runs. The Buildbot side's use of them
// is in the Buildbot tests, against a real master.
import assert from "node:assert/strict";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { after, before, describe, test } from "node:test";
import { MachineSlots } from "../src/builder/slots.js";
import { eventually } from "../harness/fixtures.js";
import { startScenario, startScriptBuild, type Scenario } from "../harness/scenario.js";

describe("MachineSlots", () => {
  test("first come first served: a release hands the slot to the oldest waiter at once", async () => {
    const slots = new MachineSlots(1);
    const lp = slots.tryAcquire({ kind: "launchpad", label: "LP-1" });
    assert.ok(lp);
    assert.equal(slots.tryAcquire({ kind: "launchpad", label: "LP-2" }), null);
    const order: string[] = [];
    const a = slots.acquire({ kind: "buildbot", label: "a" }).then((l) => (order.push("a"), l));
    const b = slots.acquire({ kind: "buildbot", label: "b" }).then((l) => (order.push("b"), l));
    assert.deepEqual(
      slots.waiting().map((h) => h.label),
      ["a", "b"],
    );
    assert.match(
      slots.describeFull(),
      /^the one build slot is in use \(\[buildbot\] max_builds = 1\): Launchpad build "LP-1"; 2 waiting$/,
    );
    lp.release();
    // Released to a waiter: a build() arriving now cannot jump the queue.
    assert.equal(slots.tryAcquire({ kind: "launchpad", label: "LP-3" }), null);
    const la = await a;
    assert.deepEqual(slots.holders(), [{ kind: "buildbot", label: "a" }]);
    la.release();
    la.release(); // twice is harmless
    (await b).release();
    assert.deepEqual(order, ["a", "b"]);
    assert.equal(slots.holders().length, 0);
  });

  test("a waiter whose signal aborts leaves the queue with the signal's reason", async () => {
    const slots = new MachineSlots(2);
    const held = [
      slots.tryAcquire({ kind: "buildbot", label: "x" }),
      slots.tryAcquire({ kind: "buildbot", label: "y" }),
    ];
    assert.match(slots.describeFull(), /^all 2 build slots are in use/);
    const ac = new AbortController();
    const waiting = slots.acquire({ kind: "buildbot", label: "z" }, ac.signal);
    ac.abort(new Error("interrupted by the master"));
    await assert.rejects(waiting, /interrupted by the master/);
    assert.equal(slots.waiting().length, 0);
    held[0]!.release();
    assert.ok(slots.tryAcquire({ kind: "launchpad", label: "L" }), "the freed slot is free");
  });
});

describe("the slots a Launchpad build holds, as an operator sees them", () => {
  let s: Scenario;
  let gate: string;
  before(async () => {
    s = await startScenario({ "wait.sh": 'while [ ! -e "$GATE" ]; do sleep 0.05; done\n' });
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "buildd-slots-gate-"));
    fs.chmodSync(dir, 0o755);
    gate = path.join(dir, "open");
  });
  after(async () => {
    fs.writeFileSync(gate, "");
    await s?.stop();
  });

  const json = async (p: string): Promise<unknown> => (await fetch(`${s.builder.url}${p}`)).json();
  const heldMetric = async (): Promise<string> => {
    const text = await (await fetch(`${s.builder.url}/metrics`)).text();
    return text
      .split("\n")
      .filter((l) => l.startsWith("buildd_build_slots"))
      .join("\n");
  };

  test("held from build() until the build ends, on /api/v1/slots, /metrics and the page", async () => {
    assert.deepEqual(await json("/api/v1/slots"), { max: 1, held: [], waiting: [] });
    assert.deepEqual(await json("/api/v1/buildbot"), { buildbot: null });
    await startScriptBuild(s.builder.client, "SLOT-1", s.tree, {
      steps: [{ name: "wait", run: "sh wait.sh" }],
      environment: { GATE: gate },
    });
    assert.deepEqual(await json("/api/v1/slots"), {
      max: 1,
      held: [{ kind: "launchpad", label: "SLOT-1" }],
      waiting: [],
    });
    const metrics = await heldMetric();
    assert.match(metrics, /^buildd_build_slots 1$/m);
    assert.match(metrics, /^buildd_build_slots_held\{kind="launchpad"\} 1$/m);
    assert.match(metrics, /^buildd_build_slots_held\{kind="buildbot"\} 0$/m);
    const page = await (await fetch(s.builder.url)).text();
    assert.match(
      page,
      /1 of 1 in use: Launchpad build &quot;SLOT-1&quot;|1 of 1 in use: Launchpad build "SLOT-1"/,
    );
    assert.match(page, /No Buildbot master is configured/);
    fs.writeFileSync(gate, "");
    await eventually(
      "the slot given back",
      async () => ((await json("/api/v1/slots")) as { held: unknown[] }).held.length === 0,
    );
    // WAITING: the build's files wait for clean(), but the machine is free.
    assert.match(await heldMetric(), /^buildd_build_slots_held\{kind="launchpad"\} 0$/m);
  });
});
