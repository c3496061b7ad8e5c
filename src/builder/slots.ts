// The machine's build slots, shared by both kinds of coordinator (src/protocol/slots.ts
// says who holds one and when). One owner: the composition root makes one MachineSlots
// and hands it to the Launchpad builder and to the Buildbot worker.
//
// A waiter is served first come first served, and synchronously when a slot is released:
// release() hands the slot straight to the oldest waiter, so a tryAcquire() in between
// (a Launchpad build() arriving at that moment) can never take a slot a Buildbot step
// has been waiting for.

import { describeHolder, type SlotHolder, type SlotLease, type Slots } from "../protocol/slots.js";

interface Waiter {
  readonly holder: SlotHolder;
  readonly grant: (lease: SlotLease) => void;
}

export class MachineSlots implements Slots {
  private readonly held: SlotLease[] = [];
  private readonly queue: Waiter[] = [];

  constructor(readonly max: number) {
    if (!Number.isInteger(max) || max < 1) throw new RangeError(`max_builds ${max} is not ≥ 1`);
  }

  tryAcquire(holder: SlotHolder): SlotLease | null {
    if (this.held.length >= this.max || this.queue.length > 0) return null;
    return this.grant(holder);
  }

  acquire(holder: SlotHolder, signal?: AbortSignal): Promise<SlotLease> {
    const now = this.tryAcquire(holder);
    if (now !== null) return Promise.resolve(now);
    signal?.throwIfAborted();
    return new Promise((resolve, reject) => {
      const waiter: Waiter = {
        holder,
        grant: (lease) => {
          signal?.removeEventListener("abort", onAbort);
          resolve(lease);
        },
      };
      const onAbort = (): void => {
        const i = this.queue.indexOf(waiter);
        if (i >= 0) this.queue.splice(i, 1);
        reject(signal!.reason);
      };
      signal?.addEventListener("abort", onAbort, { once: true });
      this.queue.push(waiter);
    });
  }

  holders(): readonly SlotHolder[] {
    return this.held.map((l) => l.holder);
  }

  waiting(): readonly SlotHolder[] {
    return this.queue.map((w) => w.holder);
  }

  describeFull(): string {
    const who = this.held.map((l) => describeHolder(l.holder)).join(", ");
    const queued = this.queue.length > 0 ? `; ${this.queue.length} waiting` : "";
    const all = this.max === 1 ? "the one build slot is" : `all ${this.max} build slots are`;
    return `${all} in use ([buildbot] max_builds = ${this.max}): ${who}${queued}`;
  }

  private grant(holder: SlotHolder): SlotLease {
    let released = false;
    const lease: SlotLease = {
      holder,
      release: () => {
        if (released) return;
        released = true;
        this.held.splice(this.held.indexOf(lease), 1);
        this.serveWaiters();
      },
    };
    this.held.push(lease);
    return lease;
  }

  private serveWaiters(): void {
    while (this.held.length < this.max && this.queue.length > 0) {
      const next = this.queue.shift()!;
      next.grant(this.grant(next.holder));
    }
  }
}
