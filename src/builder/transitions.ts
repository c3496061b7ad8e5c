// The builder's transitions, in one table over its phases, and what a refused one says:
// the reference's wording first (managers may match on it), then where the builder is
// and what the caller can do.

import { BuilderStatus, type BuilderPhase } from "../protocol/states.js";
import type { BuildRecord } from "./journal.js";

export const TRANSITIONS = {
  start: {
    from: [BuilderStatus.IDLE],
    to: BuilderStatus.BUILDING,
    refusal: "Builder is not IDLE when asked to start building",
  },
  abort: {
    from: [BuilderStatus.BUILDING],
    to: BuilderStatus.ABORTING,
    refusal: "Builder is not BUILDING when asked to abort",
  },
  finish: {
    from: [BuilderStatus.BUILDING, BuilderStatus.ABORTING],
    to: BuilderStatus.WAITING,
    refusal: "Builder is not BUILDING or ABORTING when a build finished",
  },
  clean: {
    from: [BuilderStatus.WAITING],
    to: "CLEANING",
    refusal: "Builder is not WAITING when asked to clean",
  },
  cleaned: {
    from: ["CLEANING"],
    to: BuilderStatus.IDLE,
    refusal: "Builder is not CLEANING when a clean finished",
  },
} as const satisfies Record<
  string,
  { from: readonly BuilderPhase[]; to: BuilderPhase; refusal: string }
>;
export type Transition = keyof typeof TRANSITIONS;

const short = (s: string): string => s.replace("BuilderStatus.", "").replace("BuildStatus.", "");

/** Where the builder is and what the caller can do, for a refused transition. */
export function situation(
  t: Transition,
  phase: BuilderPhase,
  rec: BuildRecord | null,
  cleanFailure: string | null,
): string {
  const id = rec ? `build ${JSON.stringify(rec.buildId)}` : "";
  const result = rec?.buildStatus ? ` (${short(rec.buildStatus)})` : "";
  switch (phase) {
    case BuilderStatus.IDLE:
      return t === "abort"
        ? "it is IDLE; there is no build to abort"
        : "it is IDLE; there is no build to clean up";
    case BuilderStatus.BUILDING:
      return t === "start"
        ? `it is BUILDING ${id}; call abort() first, or wait for it to finish`
        : `it is BUILDING ${id}; call abort() first, then clean() once it is WAITING`;
    case BuilderStatus.ABORTING:
      return `it is ABORTING ${id}; wait until it is WAITING, then call clean()`;
    case BuilderStatus.WAITING:
      return t === "start"
        ? `it is WAITING with ${id}${result}; collect its files and call clean() first`
        : `it is WAITING with ${id}${result}, which has already finished; call clean()`;
    case "CLEANING":
      return cleanFailure
        ? `cleaning up after ${id} failed (${cleanFailure}); call clean() again`
        : `it is cleaning up after ${id}; wait for clean() to return`;
  }
}
