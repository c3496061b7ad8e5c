// soak: the fault-injection cycles of test/faults.test.ts for longer. The builder runs as
// a child process from the built dist/ (as `npm start` runs it) and is SIGKILLed at
// random instants of download / build / WAITING / clean cycles; after every restart the
// invariants of harness/fault-cycles.ts are checked.
// The first broken invariant stops the run with exit status 1 and says what broke.
//
//   npm run soak                           # 10 minutes or 1000 kills, whichever comes first
//   npm run soak -- --minutes 60 --kills 5000
//   BUILDD_FAULT_SEED=123 npm run soak     # replay a run's choices
//
// It prints its figures (cycles, kills per phase, restarts, time); nothing here is a
// timing target.

import { parseArgs } from "node:util";
import {
  chooseSeed,
  FaultFound,
  PHASES,
  runFaultCycles,
  type FaultFigures,
} from "../harness/fault-cycles.js";
import { startLibrarian } from "../harness/librarian.js";

function positive(name: string, text: string): number {
  const n = Number(text);
  if (!Number.isFinite(n) || n <= 0) throw new Error(`--${name} must be a positive number`);
  return n;
}

function printFigures(f: FaultFigures): void {
  const elapsedMs = f.ms;
  const kills = PHASES.reduce((n, p) => n + f.kills[p], 0);
  console.log(`seed:      ${f.seed}`);
  console.log(`cycles:    ${f.cycles} (${f.completed} without a kill)`);
  console.log(`kills:     ${kills} (${PHASES.map((p) => `${p} ${f.kills[p]}`).join(", ")})`);
  console.log(`restarts:  ${f.restarts}`);
  console.log(`time:      ${(elapsedMs / 1000).toFixed(1)} s`);
  if (kills > 0) console.log(`per kill:  ${(elapsedMs / kills / 1000).toFixed(2)} s`);
}

async function main(): Promise<number> {
  const { values } = parseArgs({
    options: {
      minutes: { type: "string", default: process.env["BUILDD_SOAK_MINUTES"] ?? "10" },
      kills: { type: "string", default: process.env["BUILDD_SOAK_KILLS"] ?? "1000" },
      quiet: { type: "boolean", default: false },
    },
  });
  const minutes = positive("minutes", values.minutes);
  const maxKills = positive("kills", values.kills);
  const seed = chooseSeed();
  console.log(`soak: seed ${seed} (replay: BUILDD_FAULT_SEED=${seed})`);
  console.log(`soak: up to ${minutes} min or ${maxKills} kills`);
  const librarian = await startLibrarian();
  try {
    const figures = await runFaultCycles({
      seed,
      maxKills,
      maxMs: minutes * 60_000,
      librarian,
      // The program that ships, as `npm start` runs it.
      entry: "dist",
      ...(values.quiet ? {} : { log: (line: string) => console.log(line) }),
    });
    printFigures(figures);
    console.log("soak: every invariant held after every restart");
    return 0;
  } catch (err) {
    console.error(`soak: ${err instanceof Error ? err.message : String(err)}`);
    if (err instanceof FaultFound && err.figures) printFigures(err.figures);
    return 1;
  } finally {
    await librarian.close();
  }
}

process.exitCode = await main();
