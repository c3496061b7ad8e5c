// What the builder and the spawn helper (spawn-helper.ts) say to each other. Plain data
// only: everything here crosses the IPC channel by structured clone (Node's "advanced"
// serialization; a Buffer arrives as a Uint8Array).
//
// The spawn helper does only what has to happen where a process is spawned, and what
// would otherwise block the builder: the spawn itself, owning its pipes, reporting the
// exit, and finding the PID namespace a command runs in (polling /proc). Everything that
// decides — the log, the kill ladder, the quirk filter — stays in the builder (tree.ts,
// stream.ts, capture.ts), so that what a command does is decided in one place.

import type { NamespaceIdentity } from "./pidns.js";

/** Whether PID namespaces work here, probed once by the spawn helper when it starts. */
export interface IsolationSupport {
  ok: boolean;
  /** Absolute path of unshare when ok; why not otherwise. */
  detail: string;
}

/** The execa options a job may carry: all of them plain data. */
export interface JobOptions {
  readonly cwd: string | undefined;
  readonly env: Record<string, string>;
  /** Written to stdin, which is then closed; without it stdin is ignored. */
  readonly input?: string | Uint8Array;
}

export type ToHelper =
  /**
   * Spawn `command`. "stream": output is relayed chunk by chunk, each pipe paused until
   * the builder resumes it. "capture": output is buffered up to maxBuffer and comes
   * back with the result.
   */
  | {
      readonly op: "start";
      readonly id: number;
      readonly command: readonly string[];
      readonly options: JobOptions;
      readonly kind: "stream" | "capture";
      readonly maxBuffer?: number;
      /** The command line makes the command PID 1 of a namespace: report which one. */
      readonly isolated: boolean;
    }
  /** The chunk relayed last on this pipe is in the log: read on. */
  | { readonly op: "resume"; readonly id: number; readonly fd: 1 | 2 }
  /** The command exited but something still holds its pipes: stop waiting for them. */
  | { readonly op: "cut"; readonly id: number };

/** How a command ended, as execa reports it (undefined exit and signal: it never ran). */
export interface Settled {
  readonly exitCode: number | undefined;
  readonly signal: string | undefined;
  /** Why it could not be started or did not finish, in execa's words. */
  readonly message: string | undefined;
  /** capture only: the buffered output, and whether it hit maxBuffer. */
  readonly stdout?: string;
  readonly stderr?: string;
  readonly all?: string;
  readonly isMaxBuffer?: boolean;
  /**
   * Set by the builder when the spawn helper stopped with the command still its:
   * nothing will report how the command ends, so whoever holds it kills it.
   */
  readonly lost?: true;
}

export type FromHelper =
  | { readonly ev: "ready"; readonly isolation: IsolationSupport }
  /** Spawned, as this pid; or not (pid undefined), and "settled" follows. */
  | { readonly ev: "spawned"; readonly id: number; readonly pid: number | undefined }
  /**
   * Isolated jobs: the namespace the command runs in, once its PID 1 is found (null if it
   * never was: it failed or exited first). Comes after "spawned", before "settled".
   */
  | { readonly ev: "namespace"; readonly id: number; readonly namespace: NamespaceIdentity | null }
  /** Output (stream jobs); the pipe stays paused until "resume". */
  | { readonly ev: "data"; readonly id: number; readonly fd: 1 | 2; readonly chunk: Uint8Array }
  /** The process exited; its pipes may still be open. */
  | { readonly ev: "exit"; readonly id: number }
  /** Exited and its pipes are closed (or were cut): the job is over in the helper. */
  | { readonly ev: "settled"; readonly id: number; readonly result: Settled };
