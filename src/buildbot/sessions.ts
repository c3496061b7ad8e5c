// Build sessions: how a Buildbot builder holds one of the machine's build slots (shared
// with the Launchpad side through the Slots port), and the shared cache's lock.
//
// The protocol has no "build starts" or "build ends" for a worker: the master just sends
// a build's commands one after the other. So a builder's session starts with its first
// command and ends when none of its commands has run for IDLE_GAP_MS after the last one
// completed. A build's next step follows within milliseconds of the last (the master
// answers `complete` and starts the next command at once; the longest gap measured
// between the steps of a build here was well under a second, taken by the master writing
// logs to its database), while a new build of the same builder only comes after the
// master's scheduler and build-request handling. 5 s covers a loaded master without
// keeping a slot long after a build.
//
// A command that finds no free slot waits — the master has already committed the build to
// us and would otherwise fail it — and its first header line says so and who holds the
// slots. A step asking for the shared cache exclusively (env BUILDD_SHARED_CACHE_LOCK=
// exclusive) makes its session take the cache lock, which it keeps until the session
// ends, so two builds that ask for it never overlap.

import type { SlotLease, Slots } from "../protocol/slots.js";

export const IDLE_GAP_MS = 5000;

/** The env variable and value by which a step asks for the shared cache to itself. */
export const CACHE_LOCK_VARIABLE = "BUILDD_SHARED_CACHE_LOCK";
export const CACHE_LOCK_EXCLUSIVE = "exclusive";

interface Session {
  readonly builder: string;
  lease: SlotLease | null;
  acquiring: Promise<SlotLease> | null;
  running: number;
  idle: NodeJS.Timeout | undefined;
  cacheLock: boolean;
}

/** One command's hold on its builder's session; leave() when the command completed. */
export interface Ticket {
  leave(): void;
}

export class BuilderSessions {
  private readonly sessions = new Map<string, Session>();
  private cacheHolder: string | null = null;
  private readonly cacheQueue: { builder: string; grant: () => void }[] = [];

  constructor(
    private readonly slots: Slots,
    private readonly idleGapMs = IDLE_GAP_MS,
  ) {}

  /**
   * Wait until a command of `builder` may run: its session holds a slot (and the cache
   * lock, when `cacheLock`). `say` gets one line for each wait, before it begins. Rejects
   * with the signal's reason when it aborts while waiting.
   */
  async enter(
    builder: string,
    cacheLock: boolean,
    say: (line: string) => void,
    signal: AbortSignal,
  ): Promise<Ticket> {
    let s = this.sessions.get(builder);
    if (s === undefined) {
      s = { builder, lease: null, acquiring: null, running: 0, idle: undefined, cacheLock: false };
      this.sessions.set(builder, s);
    }
    const session = s;
    clearTimeout(session.idle);
    session.idle = undefined;
    session.running++;
    let left = false;
    const ticket: Ticket = {
      leave: () => {
        if (left) return;
        left = true;
        session.running--;
        if (session.running === 0) {
          session.idle = setTimeout(() => this.end(session), this.idleGapMs);
        }
      },
    };
    try {
      if (session.lease === null) {
        if (session.acquiring === null) {
          const holder = { kind: "buildbot", label: builder } as const;
          const now = this.slots.tryAcquire(holder);
          if (now !== null) session.lease = now;
          else {
            say(`waiting for a build slot: ${this.slots.describeFull()}`);
            session.acquiring = this.slots.acquire(holder, signal);
          }
        } else {
          say(`waiting for a build slot (another command of builder ${builder} waits too)`);
        }
        if (session.lease === null) {
          try {
            session.lease = await session.acquiring!;
          } finally {
            session.acquiring = null;
          }
        }
      }
      if (cacheLock && !session.cacheLock) await this.lockCache(session, say, signal);
      return ticket;
    } catch (err) {
      ticket.leave();
      throw err;
    }
  }

  /** Builders holding a session now. */
  active(): string[] {
    return [...this.sessions.keys()];
  }

  /** End every session now (the worker stops). */
  closeAll(): void {
    for (const s of [...this.sessions.values()]) this.end(s);
  }

  private end(s: Session): void {
    if (this.sessions.get(s.builder) !== s || s.running > 0) return;
    clearTimeout(s.idle);
    this.sessions.delete(s.builder);
    s.lease?.release();
    s.lease = null;
    if (s.cacheLock) this.unlockCache(s);
  }

  private lockCache(s: Session, say: (line: string) => void, signal: AbortSignal): Promise<void> {
    if (this.cacheHolder === null) {
      this.cacheHolder = s.builder;
      s.cacheLock = true;
      return Promise.resolve();
    }
    say(`waiting for the shared cache lock, held by builder ${this.cacheHolder}`);
    return new Promise((resolve, reject) => {
      const entry = {
        builder: s.builder,
        grant: () => {
          signal.removeEventListener("abort", onAbort);
          s.cacheLock = true;
          resolve();
        },
      };
      const onAbort = (): void => {
        const i = this.cacheQueue.indexOf(entry);
        if (i !== -1) this.cacheQueue.splice(i, 1);
        reject(signal.reason instanceof Error ? signal.reason : new Error("interrupted"));
      };
      if (signal.aborted) {
        onAbort();
        return;
      }
      signal.addEventListener("abort", onAbort, { once: true });
      this.cacheQueue.push(entry);
    });
  }

  private unlockCache(s: Session): void {
    s.cacheLock = false;
    if (this.cacheHolder !== s.builder) return;
    const next = this.cacheQueue.shift();
    this.cacheHolder = next?.builder ?? null;
    next?.grant();
  }
}
