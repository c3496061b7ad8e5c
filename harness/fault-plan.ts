// What a fault-injection run is asked for and reports, and the seeded choices it makes
// (harness/fault-cycles.ts runs it): the parts test/faults.test.ts and bench/soak.ts
// name, apart from the cycle engine itself.

import type { Entry } from "./builder.js";
import type { Librarian } from "./librarian.js";

export const PHASES = ["download", "build", "waiting", "clean"] as const;
export type Phase = (typeof PHASES)[number];

/** A small, fast, seedable PRNG (mulberry32): the same seed gives the same choices. */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** The seed from BUILDD_FAULT_SEED, or a fresh one. */
export function chooseSeed(env: NodeJS.ProcessEnv = process.env): number {
  const given = env["BUILDD_FAULT_SEED"];
  if (given !== undefined && given !== "") {
    const n = Number(given);
    if (!Number.isSafeInteger(n) || n < 0) {
      throw new Error(`BUILDD_FAULT_SEED must be a whole number, got ${JSON.stringify(given)}`);
    }
    return n;
  }
  return Math.floor(Math.random() * 2 ** 31);
}

export interface FaultRunOptions {
  readonly seed: number;
  /** Stop after this many kills... */
  readonly maxKills: number;
  /** ...or once this much time has passed (the cycle under way is finished). */
  readonly maxMs: number;
  readonly librarian: Librarian;
  /** Progress lines (one per kill). */
  readonly log?: (line: string) => void;
  /** Run the builder from the sources (tests, the default) or the built dist/ (soak). */
  readonly entry?: Entry;
}

export interface FaultFigures {
  readonly seed: number;
  cycles: number;
  restarts: number;
  readonly kills: Record<Phase, number>;
  /** Cycles that ran to the end without a kill. */
  completed: number;
  ms: number;
}
