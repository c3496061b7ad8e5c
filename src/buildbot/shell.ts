// The `shell` command: a step's program, run through the one process runner — PID 1 of
// its own PID namespace, so a kill reaches whatever it left in the background; sandboxed
// as the build user in its builder's directory when the worker has a sandbox — with its
// stdout and stderr streamed to the master as they come, scrubbed, in whole lines.
//
// Kills: `timeout` (no output for N s), `maxTime` (N s in all), the master's
// interrupt_command and a lost connection all TERM the whole tree, then KILL it after
// `sigtermTime` s (at once without one, as the reference does). A killed command's rc is
// -1, as the reference reports it, whatever its exit status was.
//
// `timeout` counts silence of the step, not of the connection: while its output is
// paused waiting for the master's acknowledgements (output.ts), the clock does not run.

import path from "node:path";
import { shellQuote } from "../log/buildlog.js";
import type { Struct } from "../protocol/values.js";
import { CommandFailed, type CommandContext } from "./command.js";
import { environmentHeader, stepEnvironment } from "./env.js";
import { LogfileWatcher, logfileSpecs } from "./logfiles.js";
import { CommandSink, TextStream } from "./output.js";
import { sandboxedRun } from "./sandboxing.js";
import { argsOf, bool, optNum, str, WireError } from "./wire.js";

/** The env variable naming a step's requirements (set by contrib/buildbot's helper). */
export const REQUIRES_VARIABLE = "BUILDD_REQUIRES";
/** The env variable every step gets: the shared cache directory. */
export const SHARED_CACHE_VARIABLE = "BUILDD_SHARED_CACHE";

interface Argv {
  /** What runs. */
  readonly real: string[];
  /** What is shown: obfuscated words as their fake text. */
  readonly shown: string[];
  /** Obfuscated words' real text: scrubbed from the output. */
  readonly secrets: string[];
}

/** `command`: a list (obfuscated words are ["obfuscated", real, fake]) or a /bin/sh string. */
export function commandArgv(command: unknown): Argv {
  if (typeof command === "string") {
    return { real: ["/bin/sh", "-c", command], shown: ["/bin/sh", "-c", command], secrets: [] };
  }
  if (!Array.isArray(command) || command.length === 0) {
    throw new WireError('argument "command" is not a string or a non-empty list');
  }
  const real: string[] = [];
  const shown: string[] = [];
  const secrets: string[] = [];
  for (const word of command as unknown[]) {
    if (typeof word === "string" || typeof word === "number") {
      real.push(String(word));
      shown.push(String(word));
    } else if (
      Array.isArray(word) &&
      word.length === 3 &&
      word[0] === "obfuscated" &&
      typeof word[1] === "string" &&
      typeof word[2] === "string"
    ) {
      real.push(word[1]);
      shown.push(word[2]);
      secrets.push(word[1]);
    } else {
      throw new WireError('argument "command" has a word that is not a string');
    }
  }
  return { real, shown, secrets };
}

function seconds(n: number): string {
  return `${n} ${n === 1 ? "sec" : "secs"}`;
}

export async function shellCommand(ctx: CommandContext): Promise<void> {
  const { args, deps } = ctx;
  if (ctx.builder === null) throw new CommandFailed("shell: no builder named");
  const argv = commandArgv(args.command);
  const place = deps.dirs.place(ctx.builder, str(args, "workdir"));
  const workdir = deps.dirs.mkdir(place.tree, place.rel);

  const base: Record<string, string> = { ...deps.environ, HOME: place.root };
  if (deps.sharedCache !== null) base[SHARED_CACHE_VARIABLE] = deps.sharedCache;
  const given = args.env === undefined || args.env === null ? null : argsOf(args, "env");
  let env = stepEnvironment(base, given);
  env.PWD = workdir;

  // Capabilities: the gate refuses (a BuilddError: the step fails with its reason) or says
  // what the step gets. Asked for every step, with or without requirements, so that a
  // worker reserved for a capability ([builder] only_if_requires) refuses a Buildbot
  // step that does not require it, as it refuses such a Launchpad build.
  ctx.addSecrets(argv.secrets);
  const request: Struct = {
    build_requires: (env[REQUIRES_VARIABLE] ?? "")
      .split(",")
      .map((r) => r.trim())
      .filter((r) => r !== ""),
  };
  const decision = deps.gate(request);
  env = { ...env, ...decision.env };
  ctx.addSecrets(decision.secrets);
  for (const line of decision.logLines) ctx.header(`${line}\n`);
  const scrubber = ctx.scrubber;

  const timeout = optNum(args, "timeout");
  const maxTime = optNum(args, "maxTime");
  const sigtermTime = optNum(args, "sigtermTime");
  const stdinText = args.initial_stdin;
  const stdin =
    typeof stdinText === "string"
      ? stdinText
      : stdinText instanceof Uint8Array
        ? Buffer.from(stdinText)
        : undefined;
  const logfiles = logfileSpecs(args);

  // The header, as the reference worker writes it (people and tools read these lines).
  let dirLine = ` in dir ${workdir}`;
  if (timeout !== null) dirLine += ` (timeout ${seconds(timeout)})`;
  if (maxTime !== null) dirLine += ` (maxTime ${seconds(maxTime)})`;
  ctx.header(`${shellQuote(argv.shown)}\n${dirLine}\n`);
  if (logfiles.length > 0) {
    ctx.header(` watching logfiles ${logfiles.map((l) => `${l.name}=${l.filename}`).join(", ")}\n`);
  }
  ctx.header(` argv: ${JSON.stringify(argv.shown)}\n`);
  if (bool(args, "logEnviron", true)) ctx.header(environmentHeader(env));
  if (stdin !== undefined) ctx.header(` writing ${Buffer.byteLength(stdin)} bytes to stdin\n`);
  if (bool(args, "usePTY", false)) {
    ctx.header(" using PTY: False (buildd runs steps without a PTY; usePTY is not supported)\n");
  }

  const settings = ctx.settings();
  let lastOutput = Date.now();
  const activity = (): void => {
    lastOutput = Date.now();
  };
  const streams = {
    stdout: new TextStream(
      "stdout",
      scrubber,
      settings,
      ctx.updates,
      bool(args, "want_stdout", true),
    ),
    stderr: new TextStream(
      "stderr",
      scrubber,
      settings,
      ctx.updates,
      bool(args, "want_stderr", true),
    ),
  };
  const sink = new CommandSink(`command ${ctx.id}`, streams, (t) => ctx.header(t), activity);
  const watchers = logfiles.map(
    (spec) =>
      new LogfileWatcher(
        place.tree,
        path.posix.join(place.rel, spec.filename),
        new TextStream({ log: spec.name }, scrubber, settings, ctx.updates),
        spec,
        activity,
      ),
  );

  const proc = deps.runner.start({
    argv: argv.real,
    cwd: workdir,
    env,
    log: sink,
    ...(stdin === undefined ? {} : { stdin }),
    ...(deps.sandbox === null
      ? {}
      : sandboxedRun(deps.sandbox, deps.dirs.basedir, place.root, env, deps.sharedCache)),
  });
  for (const w of watchers) w.start();

  let killedBecause: string | null = null;
  const kill = (why: string): void => {
    if (killedBecause !== null) return;
    killedBecause = why;
    ctx.header(`\n${why}, attempting to kill\n`);
    void proc.terminate(sigtermTime === null ? 0 : sigtermTime * 1000);
  };
  const started = Date.now();
  const shownCommand = JSON.stringify(argv.shown);
  const ticker = setInterval(() => {
    const now = Date.now();
    // Output held back because the master has not stored what it got yet is output: a
    // slow master does not make a step time out for silence.
    if (ctx.updates.waiting) lastOutput = now;
    if (timeout !== null && now - lastOutput >= timeout * 1000) {
      kill(`command timed out: ${timeout} seconds without output running ${shownCommand}`);
    } else if (maxTime !== null && now - started >= maxTime * 1000) {
      kill(`command timed out: ${maxTime} seconds elapsed running ${shownCommand}`);
    }
  }, 200);
  const onInterrupt = (): void => kill(`command interrupted: ${ctx.interrupted ?? ""}`);
  if (ctx.signal.aborted) onInterrupt();
  else ctx.signal.addEventListener("abort", onInterrupt, { once: true });

  try {
    const result = await proc.done;
    for (const w of watchers) await w.stop();
    let rc = result.exitCode ?? -1;
    if (result.signal !== null) {
      ctx.header(`process killed by signal ${result.signal}\n`);
      rc = -1;
    }
    if (killedBecause !== null) rc = -1;
    ctx.rc(rc);
    ctx.header(`elapsedTime=${((Date.now() - started) / 1000).toFixed(6)}\n`);
  } finally {
    clearInterval(ticker);
    ctx.signal.removeEventListener("abort", onInterrupt);
  }
}
