// The main thread's side of the spawn thread (spawn-thread.ts): one worker thread for
// the builder's life, and one Job per command it runs. `buildd serve` starts it before
// the program loads (bin/buildd.js) and the builder again as it starts (app.ts, for
// builders started in-process); anything else starts it with its first command.
//
// The thread keeps the process alive only while a command runs (it is unref'd when
// idle), as a child process of the main thread did. If the thread itself fails, every
// job it had is settled as lost, saying why, and its holder kills what it started
// (stream.ts, capture.ts: the kill ladder needs no thread); the next command starts a
// new thread.

import { Worker } from "node:worker_threads";
import type { NamespaceIdentity } from "./pidns.js";
import type { Isolation } from "./spec.js";
import type {
  FromThread,
  IsolationSupport,
  JobOptions,
  Settled,
  ToThread,
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

/** One running command, as the main thread holds it. */
export interface Job {
  /** The chunk given to data() on this pipe is dealt with: the thread reads on. */
  resume(fd: 1 | 2): void;
  /** Close the pipes the command left open (tree.ts decides when). */
  cut(): void;
  /**
   * The PID namespace it runs in, as the spawn thread found it; null when not isolated,
   * or when it ended (or the thread was lost) before one was found.
   */
  readonly namespace: Promise<NamespaceIdentity | null>;
}

/** A job as the thread's messages reach it: its events and where its namespace goes. */
interface HeldJob {
  readonly events: JobEvents;
  readonly namespaceFound: (namespace: NamespaceIdentity | null) => void;
}

// When the builder runs from the sources (tests, through tsx), the thread must load
// TypeScript too, and Node 20 does not hand a worker the loader the main thread was
// started with: the thread registers tsx itself before it imports its entry. The built
// program (dist/, bundled with dist/spawn-thread.js beside dist/cli.js) runs plain JS.
const FROM_SOURCE = import.meta.url.endsWith(".ts");
const ENTRY = new URL(FROM_SOURCE ? "./spawn-thread.ts" : "./spawn-thread.js", import.meta.url);

function startWorker(): Worker {
  if (!FROM_SOURCE) return new Worker(ENTRY);
  const tsx = import.meta.resolve("tsx/esm/api");
  const boot =
    `import(${JSON.stringify(tsx)}).then((tsx) => { tsx.register(); ` +
    `return import(${JSON.stringify(ENTRY.href)}); });`;
  return new Worker(boot, { eval: true });
}

class SpawnThread {
  private readonly worker: Worker;
  private readonly jobs = new Map<number, HeldJob>();
  private nextId = 1;
  private lost: string | null = null;
  readonly ready: Promise<IsolationSupport>;
  private readonly rejectReady: (e: Error) => void;

  constructor(private readonly onLost: () => void) {
    this.worker = startWorker();
    this.worker.unref();
    let resolveReady!: (s: IsolationSupport) => void;
    let rejectReady!: (e: Error) => void;
    this.ready = new Promise((resolve, reject) => {
      resolveReady = resolve;
      rejectReady = reject;
    });
    this.ready.catch(() => {}); // handled by each command that waits for it
    this.worker.on("message", (m: FromThread) => {
      if (m.ev === "ready") {
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
    this.worker.on("error", (e) => this.fail(e.message));
    this.worker.on("exit", (code) => this.fail(`it exited with code ${code}`));
  }

  private fail(why: string): void {
    if (this.lost !== null) return;
    this.lost = why;
    this.onLost();
    this.rejectReady(new Error(why));
    const message = `the thread that runs commands stopped: ${why}`;
    for (const [id, { events, namespaceFound }] of [...this.jobs]) {
      this.end(id);
      namespaceFound(null);
      events.settled({ exitCode: undefined, signal: undefined, message, lost: true });
    }
  }

  start(request: JobRequest, events: JobEvents): Job {
    // Never a lost thread: spawnThread() replaces one the moment it is lost.
    const id = this.nextId++;
    if (this.jobs.size === 0) this.worker.ref();
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

  /** End the thread as a failure would: its jobs are settled as lost (fail()). */
  async stop(why: string): Promise<void> {
    this.fail(why);
    await this.worker.terminate();
  }

  private end(id: number): void {
    if (this.jobs.delete(id) && this.jobs.size === 0) this.worker.unref();
  }

  /** A job's resume() or cut() after the thread was lost goes nowhere: the job is over. */
  private post(message: ToThread): void {
    if (this.lost === null) this.worker.postMessage(message);
  }
}

let thread: SpawnThread | undefined;

/** The spawn thread, started on first use and again after it failed. */
export function spawnThread(): SpawnThread {
  thread ??= new SpawnThread(() => {
    thread = undefined;
  });
  return thread;
}

/** Start the spawn thread now rather than on the first command (a builder starting up). */
export function startSpawnThread(): void {
  spawnThread().ready.catch(() => {}); // a failure is reported to the first command
}

/**
 * Stop the spawn thread as if it had failed, saying why: what it ran is killed and
 * reported as not finished, and the next command starts a new thread. Nothing in the
 * builder stops it on purpose; this is how the lost-thread path is tested
 * (test/spawn-thread.test.ts), since no outside signal can end one thread alone.
 */
export async function stopSpawnThread(why: string): Promise<void> {
  await thread?.stop(why);
}

/** Whether PID namespaces work here, as the spawn thread found when it started. */
export async function isolationSupport(): Promise<IsolationSupport> {
  return spawnThread().ready;
}

const NOT_ASKED: IsolationSupport = Object.freeze({ ok: false, detail: "no PID namespace asked" });

/**
 * What commandLine() must know to isolate a command this way: without a PID namespace
 * nothing (it does not look), so such a command does not wait for the thread's probe.
 */
export function supportFor(isolation: Isolation | undefined): Promise<IsolationSupport> {
  return isolation?.pid === false ? Promise.resolve(NOT_ASKED) : isolationSupport();
}
