// Finished builds by type and result, and how long they ran, since start-up: fed by the
// journal as each build's end is committed (a build recovered as BUILDERFAIL included),
// read by /metrics.

import { HistogramTally, Tally } from "../protocol/tally.js";
import type { BuildRecord } from "./journal.js";

/** Seconds: from a no-op script to a large package build. */
export const BUILD_DURATION_BUCKETS = [
  1, 5, 15, 30, 60, 120, 300, 600, 1200, 1800, 3600, 7200, 14400, 28800,
] as const;

const short = (result: string): string => result.replace(/^BuildStatus\./, "");

export class BuildStats {
  /** Labels: [type, result] (result without its "BuildStatus." prefix). */
  readonly builds = new Tally();
  /** Labels: [type]. */
  readonly duration = new HistogramTally(BUILD_DURATION_BUCKETS);

  readonly record = (r: BuildRecord): void => {
    this.builds.inc([r.buildType, short(r.buildStatus ?? "unknown")]);
    if (r.endedAt !== null) this.duration.observe([r.buildType], (r.endedAt - r.startedAt) / 1000);
  };
}
