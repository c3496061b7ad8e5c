// buildd as a Buildbot worker: the entry point. It keeps one connection to the master —
// reconnecting forever, with exponential backoff and jitter, after a failed attempt, a
// dropped connection or a master restart (the master replays its whole attach sequence)
// — answers the master's requests, and runs its commands.
//
// A dropped connection interrupts every running command (their process trees are
// killed): the master has already given them up as lost, and nothing would be left to
// report to. The reference msgpack worker leaves them running unreported; its older PB
// protocol stops them, which is what a build machine wants.

import type { Logger } from "pino";
import type { HostSandbox } from "../backends/sandbox.js";
import type { Scrubber } from "../log/scrub.js";
import { DEFAULT_PATH } from "../process/environment.js";
import type { ProcessRunner } from "../process/runner.js";
import type { BuildbotConnectionState, BuildbotStatus } from "../protocol/buildbot.js";
import type { BuildGate } from "../protocol/gate.js";
import type { Slots } from "../protocol/slots.js";
import { CommandContext, runCommand, type CommandDeps } from "./command.js";
import { COMMANDS } from "./commands.js";
import { MasterConnection, openSocket } from "./connection.js";
import { builderList, outputSettings, workerInfo } from "./info.js";
import { DEFAULT_SETTINGS, type OutputSettings } from "./output.js";
import { WorkerDirs, type Owner } from "./paths.js";
import {
  BuilderSessions,
  CACHE_LOCK_EXCLUSIVE,
  CACHE_LOCK_VARIABLE,
  IDLE_GAP_MS,
} from "./sessions.js";
import { SHARED_CACHE_VARIABLE } from "./shell.js";
import { argsOf, optStr, str, WireError, type WireMap } from "./wire.js";

export interface BuildbotWorkerOptions {
  /** The master's msgpack_experimental_v7 port (ws://host:port/). */
  readonly master: { readonly host: string; readonly port: number };
  /** The worker's name and password as the master's config has them. */
  readonly name: string;
  readonly password: string;
  /** Absolute, existing; builder directories are made in it. */
  readonly basedir: string;
  /** Facts for get_worker_info (admin, host, capabilities as a JSON string, …); called at each. */
  readonly info: () => Record<string, string>;
  readonly runner: ProcessRunner;
  /** Steps run as the build user, seeing only their builder directory; null: as ourselves. */
  readonly sandbox: HostSandbox | null;
  /** The build user's ids: what root makes for a step (directories, downloads) is given to it. */
  readonly buildUser: Owner | null;
  /** The secrets scrubbed from everything sent (the worker password, capability secrets). */
  readonly scrubber: Scrubber;
  /** The machine's build slots, shared with the Launchpad side. */
  readonly slots: Slots;
  /** Capabilities: a step's BUILDD_REQUIRES goes through it. */
  readonly gate: BuildGate;
  /** Every shell step gets it as BUILDD_SHARED_CACHE; null: none. */
  readonly sharedCache: string | null;
  readonly logger: Logger;
  /** Delay before reconnecting: minMs after a drop, doubling per failed attempt up to maxMs. */
  readonly reconnect: { readonly minMs: number; readonly maxMs: number };
  /** Reported as the worker's version. */
  readonly version: string;
  /** A builder's session ends this long after its last command (default IDLE_GAP_MS). */
  readonly sessionGapMs?: number;
}

export interface BuildbotWorker {
  status(): BuildbotStatus;
  /** Resolves when the state next is `state` (at once if it is). */
  when(state: BuildbotConnectionState): Promise<void>;
  /** Stop reconnecting, interrupt running commands, close the connection. */
  close(): Promise<void>;
}

const HANDSHAKE_TIMEOUT_MS = 10_000;

export function startBuildbotWorker(opts: BuildbotWorkerOptions): BuildbotWorker {
  return new Worker(opts);
}

class Worker implements BuildbotWorker {
  private state: BuildbotConnectionState = "connecting";
  private since = Date.now();
  private lastError: string | null = null;
  private nextAttemptAt: number | null = null;
  private connects = 0;
  private commandCount = 0;
  private commandFailures = 0;
  private conn: MasterConnection | null = null;
  private stopped = false;
  private readonly stop = new AbortController();
  private settings: OutputSettings = DEFAULT_SETTINGS;
  private readonly running = new Map<
    string,
    { ctx: CommandContext; startedAt: number; done: Promise<void> }
  >();
  private readonly waiters: { state: BuildbotConnectionState; resolve: () => void }[] = [];
  private readonly dirs: WorkerDirs;
  private readonly sessions: BuilderSessions;
  private readonly deps: CommandDeps;
  private readonly loop: Promise<void>;

  constructor(private readonly opts: BuildbotWorkerOptions) {
    this.dirs = new WorkerDirs(opts.basedir, opts.buildUser);
    this.sessions = new BuilderSessions(opts.slots, opts.sessionGapMs ?? IDLE_GAP_MS);
    this.deps = {
      runner: opts.runner,
      dirs: this.dirs,
      sandbox: opts.sandbox,
      gate: opts.gate,
      sharedCache: opts.sharedCache,
      environ: this.environ(),
      scrubber: opts.scrubber,
      logger: opts.logger,
    };
    this.loop = this.connectForever();
  }

  status(): BuildbotStatus {
    return {
      master: `${this.opts.master.host}:${this.opts.master.port}`,
      name: this.opts.name,
      state: this.state,
      since: this.since,
      lastError: this.lastError,
      nextAttemptAt: this.nextAttemptAt,
      builders: this.dirs.known(),
      running: [...this.running.values()].map(({ ctx, startedAt }) => ({
        builder: ctx.builder ?? "",
        commandId: ctx.id,
        command: ctx.name,
        startedAt,
      })),
      connects: this.connects,
      commands: this.commandCount,
      commandFailures: this.commandFailures,
    };
  }

  when(state: BuildbotConnectionState): Promise<void> {
    if (this.state === state) return Promise.resolve();
    return new Promise((resolve) => this.waiters.push({ state, resolve }));
  }

  async close(): Promise<void> {
    if (!this.stopped) {
      this.stopped = true;
      this.stop.abort();
      this.interruptAll("the worker is stopping");
      await Promise.all([...this.running.values()].map((r) => r.done));
      this.conn?.close(1000, "worker stopping");
      this.sessions.closeAll();
      this.setState("stopped");
    }
    await this.loop;
  }

  /** The environment steps start from, and what the master is told as `environ`. */
  private environ(): Record<string, string> {
    const env: Record<string, string> = {
      PATH: DEFAULT_PATH,
      HOME: this.opts.basedir,
      LANG: "C.UTF-8",
      TMPDIR: "/tmp",
    };
    if (this.opts.sharedCache !== null) env[SHARED_CACHE_VARIABLE] = this.opts.sharedCache;
    return env;
  }

  private setState(state: BuildbotConnectionState): void {
    if (this.state === "stopped") return;
    if (state !== this.state) {
      this.state = state;
      this.since = Date.now();
    }
    for (const w of this.waiters.filter((x) => x.state === state)) {
      this.waiters.splice(this.waiters.indexOf(w), 1);
      w.resolve();
    }
  }

  private async connectForever(): Promise<void> {
    const { host, port } = this.opts.master;
    const url = `ws://${host.includes(":") ? `[${host}]` : host}:${port}/`;
    let failures = 0;
    while (!this.stopped) {
      this.setState("connecting");
      this.nextAttemptAt = null;
      let conn: MasterConnection;
      try {
        conn = await openSocket(
          url,
          this.opts.name,
          this.opts.password,
          HANDSHAKE_TIMEOUT_MS,
          (ws) => new MasterConnection(ws, (op, msg) => this.handle(op, msg), this.opts.logger),
          this.stop.signal,
        );
      } catch (err) {
        if (this.stopped) break;
        failures++;
        await this.retryLater((err as Error).message, failures, "could not connect to the master");
        continue;
      }
      if (this.stopped) {
        conn.close();
        break;
      }
      failures = 0;
      this.conn = conn;
      this.connects++;
      this.opts.logger.info({ master: `${host}:${port}` }, "buildbot: connected to the master");
      const why = await new Promise<string>((resolve) => conn.onClose(resolve));
      this.conn = null;
      this.interruptAll(`the connection to the master was lost (${why})`);
      if (this.stopped) break;
      await this.retryLater(why, 0, "the connection to the master was lost");
    }
  }

  /** Log the failure once, show it in the status, and wait for the next attempt. */
  private async retryLater(why: string, failures: number, what: string): Promise<void> {
    const { minMs, maxMs } = this.opts.reconnect;
    const full = Math.min(maxMs, minMs * 2 ** Math.max(0, failures - 1));
    // Jitter: many workers restarted with one master do not all knock at once.
    const delay = Math.round(full / 2 + (Math.random() * full) / 2);
    this.lastError = why;
    this.nextAttemptAt = Date.now() + delay;
    this.setState("disconnected");
    this.opts.logger.warn(
      {
        master: `${this.opts.master.host}:${this.opts.master.port}`,
        reason: why,
        retryInMs: delay,
      },
      `buildbot: ${what}: ${why}`,
    );
    await new Promise<void>((resolve) => {
      const { signal } = this.stop;
      const wake = (): void => {
        clearTimeout(t);
        signal.removeEventListener("abort", wake);
        resolve();
      };
      const t = setTimeout(wake, delay);
      signal.addEventListener("abort", wake, { once: true });
    });
  }

  private interruptAll(why: string): void {
    for (const { ctx } of this.running.values()) ctx.interrupt(why);
  }

  /** A request from the master; what it returns is the answer, a throw is is_exception. */
  private handle(op: string, msg: WireMap): unknown {
    // The master talks to us: it has attached us (a wrong name or password never gets here).
    if (this.state === "connecting") {
      this.lastError = null;
      this.setState("connected");
    }
    switch (op) {
      case "print":
        this.opts.logger.info(
          { message: optStr(msg, "message") },
          "buildbot: message from the master",
        );
        return null;
      case "keepalive":
        return null;
      case "get_worker_info":
        return workerInfo(this.opts, this.deps.environ);
      case "set_worker_settings":
        this.settings = outputSettings(argsOf(msg));
        return null;
      case "set_builder_list":
        return this.dirs.setBuilders(builderList(msg.builders));
      case "start_command":
        this.startCommand(msg);
        return null;
      case "interrupt_command": {
        const id = str(msg, "command_id");
        const why = optStr(msg, "why") ?? "interrupted by the master";
        const r = this.running.get(id);
        if (r === undefined)
          this.opts.logger.info({ id }, "buildbot: interrupt for a command not running");
        else r.ctx.interrupt(why);
        return null;
      }
      case "shutdown":
        this.opts.logger.info("buildbot: the master asked the worker to shut down");
        // Answered first; then a graceful stop, as close() does it.
        setImmediate(() => void this.close());
        return null;
      default:
        throw new WireError(`Command ${op} does not exist.`);
    }
  }

  private startCommand(msg: WireMap): void {
    const id = str(msg, "command_id");
    const name = str(msg, "command_name");
    const builder = optStr(msg, "builder_name");
    const args = argsOf(msg);
    const run = COMMANDS.get(name);
    if (run === undefined) throw new WireError(`unrecognized WorkerCommand '${name}'`);
    if (this.running.has(id)) throw new WireError(`command ${id} is already running`);
    const conn = this.conn;
    if (conn === null) throw new WireError("not connected");
    const ctx = new CommandContext(
      id,
      name,
      builder,
      args,
      this.deps,
      () => this.settings,
      (op, fields) => conn.request(op, fields),
    );
    this.commandCount++;
    const startedAt = Date.now();
    const done = this.execute(ctx, run).finally(() => this.running.delete(id));
    this.running.set(id, { ctx, startedAt, done });
  }

  private async execute(ctx: CommandContext, run: Parameters<typeof runCommand>[1]): Promise<void> {
    // Commands outside a build (the master's listdir and mkdir at attach) take no slot.
    if (ctx.builder === null) {
      // The builder directories may have changed: seen before the master hears "complete".
      const ok = await runCommand(ctx, async (c) => {
        try {
          await run(c);
        } finally {
          this.dirs.refresh();
        }
      });
      if (!ok) this.commandFailures++;
      return;
    }
    const builder = ctx.builder;
    const env = ctx.args.env;
    const wantsLock =
      ctx.name === "shell" &&
      env !== null &&
      typeof env === "object" &&
      (env as WireMap)[CACHE_LOCK_VARIABLE] === CACHE_LOCK_EXCLUSIVE;
    const ok = await runCommand(ctx, async (c) => {
      const ticket = await this.sessions.enter(
        builder,
        wantsLock,
        (line) => c.header(`${line}\n`),
        c.signal,
      );
      try {
        await run(c);
      } finally {
        ticket.leave();
      }
    });
    if (!ok) this.commandFailures++;
  }
}
