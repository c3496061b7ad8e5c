// How the two kinds of coordinator share one machine. `[buildbot] max_builds` slots in
// all: a Launchpad build holds one from build() until its processes have ended, a
// Buildbot builder holds one while its steps run (see src/buildbot/sessions.ts). The
// owner is src/builder/slots.ts; both edges hold it through this port.

export type SlotKind = "launchpad" | "buildbot";

export interface SlotHolder {
  readonly kind: SlotKind;
  /** What holds it, for messages and the page: a build id, a Buildbot builder's name. */
  readonly label: string;
}

export interface SlotLease {
  readonly holder: SlotHolder;
  /** Give the slot back; safe to call more than once. */
  release(): void;
}

export interface Slots {
  /** How many builds may run at once, of both kinds together. */
  readonly max: number;
  /** A slot now, or null when all are held (the caller refuses, with describeFull()). */
  tryAcquire(holder: SlotHolder): SlotLease | null;
  /**
   * A slot as soon as one is free, first come first served. Rejects with the signal's
   * reason if it aborts first.
   */
  acquire(holder: SlotHolder, signal?: AbortSignal): Promise<SlotLease>;
  /** Who holds the slots now, oldest first. */
  holders(): readonly SlotHolder[];
  /** Waiting for a slot, oldest first. */
  waiting(): readonly SlotHolder[];
  /** One sentence saying that the machine is full and who holds it. */
  describeFull(): string;
}

/** A holder as a person reads it: `Launchpad build "B-1"`, `Buildbot builder "tests"`. */
export function describeHolder(h: SlotHolder): string {
  return h.kind === "launchpad"
    ? `Launchpad build ${JSON.stringify(h.label)}`
    : `Buildbot builder ${JSON.stringify(h.label)}`;
}
