// The port between the builder and whatever decides whether a build may start here and
// what it gets (today: the worker's capabilities). The builder calls it inside build(),
// before anything changes; it throws a BuilddError to refuse.

import type { Struct } from "./values.js";

export interface GateDecision {
  /** Environment every step of the build gets. */
  readonly env: Record<string, string>;
  /** Lines written at the top of the build log. */
  readonly logLines: string[];
  /** Keys added to status() for this build. */
  readonly extraStatus: Struct;
  /** Values to scrub from the build log and the journal (e.g. a service's password). */
  readonly secrets: string[];
}

export type BuildGate = (args: Struct) => GateDecision;
