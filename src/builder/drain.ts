// Drain: the operator's "finish what you are doing, then take nothing new". A draining
// builder keeps serving status(), files and the build it runs; only build() is refused,
// with a fault that says why. The flag is journaled, so a builder restarted while
// draining (a reboot during maintenance) still refuses builds until undrained.

import { illegalState } from "../errors.js";
import type { Journal } from "./journal.js";

export const DRAINING_REFUSAL =
  "Builder is draining: it finishes its current build and takes no new ones; send the build to another builder";

export class Drain {
  private since: number | null;

  constructor(private readonly journal: Journal) {
    this.since = journal.drainingSince();
  }

  get draining(): boolean {
    return this.since !== null;
  }

  /** Epoch milliseconds when draining began, or null. */
  get drainingSince(): number | null {
    return this.since;
  }

  drain(): void {
    this.journal.setDraining(true);
    this.since = this.journal.drainingSince();
  }

  undrain(): void {
    this.journal.setDraining(false);
    this.since = null;
  }

  /** build()'s check: throws the refusal while draining. */
  refuseIfDraining(): void {
    if (this.since !== null) throw illegalState(DRAINING_REFUSAL);
  }
}
