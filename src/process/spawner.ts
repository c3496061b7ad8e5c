// The builder's side of the spawn helper (spawn-helper.ts): one small Node process for
// the builder's life, started with child_process.fork, and one Job per command it runs.
// `buildd serve` starts it before the program loads (bin/buildd.js) and the builder again
// as it starts (app.ts, for builders started in-process); anything else starts it with
// its first command.
//
// Why a process and not a thread of the builder: Node (libuv 1.46) spawns with fork(),
// and a fork marks every writable page of the forking process copy-on-write, so that
// afterwards each page the builder writes to faults once, on whichever of its threads
// writes it, whichever thread forked. Spawning from a thread of the builder, that was
// about 14,000 page faults in the builder per half second of a build of short steps,
// 100-300 with the helper (docs/performance.md, "Spawning from a process of its own").
//
// The helper keeps the builder alive only while a command runs (it is unref'd when idle).
// If it fails, every job it had is settled as lost, saying why, and its holder kills
// what it started (stream.ts, capture.ts: the kill ladder is /proc and kill(2), from
// here); the next command starts a new helper.

import { fork, type ChildProcess } from "node:child_process";
import type { NamespaceIdentity } from "./pidns.js";
import type { Isolation } from "./spec.js";
import type {
  FromHelper,
  IsolationSupport,
  JobOptions,
  Settled,
  ToHelper,
} from "./spawn-messages.js";

/** What a job is told, in order: spawned, then output and the exit, then settled once. */
export interface JobEvents {
  spawned(pid: number | undefined): void;
  data?(fd: 1 | 2, chunk: Buffer): void;
  exit(): void;
  settled(result: Settled): void;
}

export interface JobRequest {
  readonly command: readonly string[];
  readonly options: JobOptions;
  readonly kind: "stream" | "capture";
  readonly maxBuffer?: number;
  /** The command line makes it PID 1 of its own namespace (isolation.ts). */
  readonly isolated: boolean;
}

/** One running command, as the builder holds it. */
export interface Job {
  /** The chunk given to data() on this pipe is dealt with: the helper reads on. */
  resume(fd: 1 | 2): void;
  /** Close the pipes the command left open (tree.ts decides when). */
  cut(): void;
  /**
   * The PID namespace it runs in, as the spawn helper found it; null when not isolated,
   * or when it ended (or the helper was lost) before one was found.
   */
  readonly namespace: Promise<NamespaceIdentity | null>;
}

/** A job as the helper's messages reach it: its events and where its namespace goes. */
interface HeldJob {
  readonly events: JobEvents;
  readonly namespaceFound: (namespace: NamespaceIdentity | null) => void;
}

// From the sources (tests, through tsx) the helper loads TypeScript with tsx, as the
// builder did; the built program (dist/, with dist/spawn-helper.js beside dist/cli.js)
// runs plain JS. No other flag of the builder's is handed on (an --inspect port would
// clash).
const FROM_SOURCE = import.meta.url.endsWith(".ts");
const ENTRY = new URL(FROM_SOURCE ? "./spawn-helper.ts" : "./spawn-helper.js", import.meta.url);

function startProcess(): ChildProcess {
  return fork(ENTRY, [], {
    execArgv: FROM_SOURCE ? ["--import", "tsx"] : [],
    // Buffers and Uint8Arrays cross as they are, not as JSON.
    serialization: "advanced",
    // Its own messages (a crash) go where the builder's go.
    stdio: ["ignore", "inherit", "inherit", "ipc"],
  });
}

class SpawnHelper {
  private readonly child: ChildProcess;
  private readonly jobs = new Map<number, HeldJob>();
  private nextId = 1;
  private lost: string | null = null;
  /** It said it is ready: from now on it is held only while it has jobs. */
  private started = false;
  readonly ready: Promise<IsolationSupport>;
  private readonly rejectReady: (e: Error) => void;

  constructor(private readonly onLost: () => void) {
    // Held while it starts: whoever waits for `ready` must not see the loop run dry.
    this.child = startProcess();
    let resolveReady!: (s: IsolationSupport) => void;
    let rejectReady!: (e: Error) => void;
    this.ready = new Promise((resolve, reject) => {
      resolveReady = resolve;
      rejectReady = reject;
    });
    this.ready.catch(() => {}); // handled by each command that waits for it
    this.child.on("message", (m: FromHelper) => {
      if (m.ev === "ready") {
        this.started = true;
        if (this.jobs.size === 0) this.unref();
        resolveReady(m.isolation);
        return;
      }
      const job = this.jobs.get(m.id);
      if (!job) return;
      const { events } = job;
      switch (m.ev) {
        case "spawned":
          events.spawned(m.pid);
          return;
        case "namespace":
          job.namespaceFound(m.namespace);
          return;
        case "data":
          events.data?.(m.fd, Buffer.from(m.chunk.buffer, m.chunk.byteOffset, m.chunk.byteLength));
          return;
        case "exit":
          events.exit();
          return;
        case "settled":
          this.end(m.id);
          job.namespaceFound(null);
          events.settled(m.result);
          return;
      }
    });
    this.rejectReady = rejectReady;
    this.child.on("error", (e) => this.fail(e.message));
    this.child.on("exit", (code, signal) =>
      this.fail(signal ? `it was killed by ${signal}` : `it exited with code ${code}`),
    );
  }

  private fail(why: string): void {
    if (this.lost !== null) return;
    this.lost = why;
    this.onLost();
    this.rejectReady(new Error(why));
    const message = `the process that runs commands stopped: ${why}`;
    for (const [id, { events, namespaceFound }] of [...this.jobs]) {
      this.end(id);
      namespaceFound(null);
      events.settled({ exitCode: undefined, signal: undefined, message, lost: true });
    }
  }

  start(request: JobRequest, events: JobEvents): Job {
    // Never a lost helper: spawnHelper() replaces one the moment it is lost.
    const id = this.nextId++;
    if (this.jobs.size === 0) this.ref();
    let namespaceFound!: (namespace: NamespaceIdentity | null) => void;
    const namespace = request.isolated
      ? new Promise<NamespaceIdentity | null>((resolve) => (namespaceFound = resolve))
      : Promise.resolve(null);
    this.jobs.set(id, { events, namespaceFound: request.isolated ? namespaceFound : () => {} });
    this.post({ op: "start", id, ...request });
    return {
      resume: (fd) => this.post({ op: "resume", id, fd }),
      cut: () => this.post({ op: "cut", id }),
      namespace,
    };
  }

  /** The helper's process id (its CPU and its commands' are accounted to it: bench/). */
  get pid(): number | undefined {
    return this.child.pid;
  }

  /** The helper and its channel hold the builder's event loop open only while it has work. */
  private ref(): void {
    this.child.ref();
    this.child.channel?.ref();
  }

  private unref(): void {
    this.child.unref();
    this.child.channel?.unref();
  }

  private end(id: number): void {
    if (this.jobs.delete(id) && this.jobs.size === 0 && this.started) this.unref();
  }

  /** A job's resume() or cut() after the helper was lost goes nowhere: the job is over. */
  private post(message: ToHelper): void {
    if (this.lost === null && this.child.connected) this.child.send(message);
  }
}

let helper: SpawnHelper | undefined;

/** The spawn helper, started on first use and again after it failed. */
export function spawnHelper(): SpawnHelper {
  helper ??= new SpawnHelper(() => {
    helper = undefined;
  });
  return helper;
}

/** Start the spawn helper now rather than on the first command (a builder starting up). */
export function startSpawnHelper(): void {
  spawnHelper().ready.catch(() => {}); // a failure is reported to the first command
}

/** The running spawn helper's process id, once it has started (its commands' parent). */
export async function spawnHelperPid(): Promise<number | undefined> {
  const current = spawnHelper();
  await current.ready;
  return current.pid;
}

/** Whether PID namespaces work here, as the spawn helper found when it started. */
export async function isolationSupport(): Promise<IsolationSupport> {
  return spawnHelper().ready;
}

const NOT_ASKED: IsolationSupport = Object.freeze({ ok: false, detail: "no PID namespace asked" });

/**
 * What commandLine() must know to isolate a command this way: without a PID namespace
 * nothing (it does not look), so such a command does not wait for the helper's probe.
 */
export function supportFor(isolation: Isolation | undefined): Promise<IsolationSupport> {
  return isolation?.pid === false ? Promise.resolve(NOT_ASKED) : isolationSupport();
}
