// Fault injection through the real server: the builder runs as a child process and is
// SIGKILLed at random instants of download / build / WAITING / clean cycles, then started
// again on the same directories; after every restart the invariants of
// harness/fault-cycles.ts must hold (verified cache, no temporaries, WAITING serves its
// files, a running build comes back BUILDERFAIL, no process of a build survives).
//
// About a minute here; `npm run soak` runs the same cycles for longer. The seed is printed;
// BUILDD_FAULT_SEED=<seed> replays a run's choices.
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { chooseSeed, PHASES, runFaultCycles } from "../harness/fault-cycles.js";
import { startLibrarian, type Librarian } from "../harness/librarian.js";

describe("SIGKILL at random instants", () => {
  let lib: Librarian;
  before(async () => {
    lib = await startLibrarian();
  });
  after(() => lib.close());

  test("every restart finds the cache verified, its promises kept and no build process", async (t) => {
    const seed = chooseSeed();
    t.diagnostic(`fault injection seed ${seed} (replay: BUILDD_FAULT_SEED=${seed})`);
    const figures = await runFaultCycles({
      seed,
      maxKills: 40,
      maxMs: 50_000,
      librarian: lib,
      log: (line) => t.diagnostic(line),
    });
    const kills = PHASES.map((p) => `${p} ${figures.kills[p]}`).join(", ");
    t.diagnostic(
      `${figures.cycles} cycles, ${figures.restarts} restarts, kills: ${kills}, ` +
        `${figures.completed} cycles without a kill, ${(figures.ms / 1000).toFixed(1)} s`,
    );
    // Each kill was followed by a restart whose invariants were checked: without kills
    // this test would prove nothing.
    assert.ok(figures.restarts >= 5, `only ${figures.restarts} restarts (seed ${seed})`);
    assert.equal(
      figures.restarts,
      PHASES.reduce((n, p) => n + figures.kills[p], 0),
    );
  });
});
