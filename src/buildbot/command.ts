// What every command from the master gets to work with, and what it owes the master: its
// updates (header, output, rc), then `elapsed`, then `complete` — after the master
// acknowledged every update, so the step's logs are whole when the step ends.
//
// Expected failures (a refused path, a missing file, a refused capability) are a header
// line saying what was wrong and a non-zero rc: the step fails and says why. Only a fault
// of ours reaches `complete` as an error (the master marks the step EXCEPTION).

import type { Logger } from "pino";
import { TreePathError } from "../backends/inroot.js";
import type { HostSandbox } from "../backends/sandbox.js";
import { BuilddError } from "../errors.js";
import { createScrubber, type Scrubber } from "../log/scrub.js";
import type { BuildGate } from "../protocol/gate.js";
import type { ProcessRunner } from "../process/runner.js";
import { LineSplitter, UpdateBatcher, type OutputSettings } from "./output.js";
import { PathRefused, type WorkerDirs } from "./paths.js";
import { WireError, type WireMap } from "./wire.js";

/** What the worker hands every command (fixed for the worker's life). */
export interface CommandDeps {
  readonly runner: ProcessRunner;
  readonly dirs: WorkerDirs;
  readonly sandbox: HostSandbox | null;
  readonly gate: BuildGate;
  /** The directory every shell step gets as BUILDD_SHARED_CACHE; null: none. */
  readonly sharedCache: string | null;
  /** The environment steps start from (what get_worker_info reports as environ). */
  readonly environ: Readonly<Record<string, string>>;
  readonly scrubber: Scrubber;
  readonly logger: Logger;
}

/** An expected failure: the step fails with this message as its header line. */
export class CommandFailed extends Error {
  constructor(
    message: string,
    readonly rc = 1,
  ) {
    super(message);
  }
}

export class CommandContext {
  readonly updates: UpdateBatcher;
  private readonly headerLines: LineSplitter;
  private readonly abort = new AbortController();
  private why: string | null = null;
  private secretsScrubber: Scrubber | null = null;

  constructor(
    readonly id: string,
    readonly name: string,
    readonly builder: string | null,
    readonly args: WireMap,
    readonly deps: CommandDeps,
    readonly settings: () => OutputSettings,
    private readonly send: (op: string, fields: WireMap) => Promise<unknown>,
  ) {
    this.updates = new UpdateBatcher((args) => this.request("update", { args }), settings);
    this.headerLines = new LineSplitter(settings());
  }

  /** Interrupted by the master, or the connection is gone. */
  get signal(): AbortSignal {
    return this.abort.signal;
  }

  get interrupted(): string | null {
    return this.why;
  }

  interrupt(why: string): void {
    if (this.why !== null) return;
    this.why = why;
    this.abort.abort(new Error(why));
  }

  /** What this command's text is scrubbed with: the worker's secrets and its own. */
  get scrubber(): Scrubber {
    return this.secretsScrubber ?? this.deps.scrubber;
  }

  /** Secrets of this command (a capability's password, obfuscated words), scrubbed too. */
  addSecrets(secrets: readonly string[]): void {
    if (secrets.length === 0) return;
    this.secretsScrubber = createScrubber([...this.scrubber.secrets, ...secrets]);
  }

  /** Lines the worker says itself; scrubbed like output; a missing final "\n" is added. */
  header(text: string): void {
    const scrubbed = this.scrubber.scrub(text);
    this.updates.text("header", this.headerLines.push(scrubbed) + this.headerLines.flush());
  }

  value(key: string, value: unknown): void {
    this.updates.value(key, value);
  }

  /** The rc sent, once it is (null before). */
  sentRc: number | null = null;

  rc(code: number): void {
    this.sentRc = code;
    this.updates.value("rc", code);
  }

  /** A request about this command (update_upload_file_write, update_read_file, …). */
  request(op: string, fields: WireMap = {}): Promise<unknown> {
    return this.send(op, { ...fields, command_id: this.id });
  }
}

export type CommandRun = (ctx: CommandContext) => Promise<void>;

/**
 * Run a command to its end and report it: rc (the command's own, or 1 with the reason
 * for an expected failure), elapsed, then complete. Never rejects; true when it
 * succeeded (rc 0).
 */
export async function runCommand(ctx: CommandContext, run: CommandRun): Promise<boolean> {
  const started = performance.now();
  let failure: string | null = null;
  try {
    await run(ctx);
  } catch (err) {
    const known = expected(err);
    if (known !== null) {
      ctx.header(known.message);
      ctx.rc(known.rc);
    } else if (ctx.interrupted !== null) {
      ctx.header(`interrupted: ${ctx.interrupted}`);
      ctx.rc(-1);
    } else {
      failure = err instanceof Error ? err.message : String(err);
      ctx.deps.logger.error({ err, command: ctx.name, id: ctx.id }, "buildbot: command failed");
    }
  }
  ctx.value("elapsed", (performance.now() - started) / 1000);
  try {
    await ctx.updates.drain();
    await ctx.request("complete", { args: failure });
  } catch {
    // The connection is gone: the master has already given the command up.
    ctx.updates.discard();
  }
  return failure === null && ctx.sentRc === 0;
}

/** An expected failure's header line and rc; null for a fault of ours. */
function expected(err: unknown): { message: string; rc: number } | null {
  if (err instanceof CommandFailed) return { message: err.message, rc: err.rc };
  // Refused paths and bad arguments: the message is for the person reading the step's log.
  if (
    err instanceof PathRefused ||
    err instanceof TreePathError ||
    err instanceof WireError ||
    err instanceof BuilddError
  ) {
    return { message: err.message, rc: 1 };
  }
  // A file system error (ENOENT, EACCES…): its message names the call and the path, and
  // its errno is the rc, as the reference worker reports it.
  const e = err as NodeJS.ErrnoException;
  if (err instanceof Error && typeof e.errno === "number" && typeof e.code === "string") {
    return { message: err.message, rc: Math.abs(e.errno) || 1 };
  }
  return null;
}
