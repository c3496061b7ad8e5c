// The one starter for builders in child processes, for tests and benchmarks alike:
// `buildd serve` on a temporary config, run either from the sources through tsx (tests:
// no build step) or from the built dist/ exactly as `npm start` runs it (benchmarks: the
// program that ships). The child is found by the TCP port it listens on, read from /proc
// (listening.ts), and must answer echo() there: no log line is needed, so any [log]
// level works, and bindport 0 leaves the kernel to choose a port nobody else can take.

import { spawn, type ChildProcess } from "node:child_process";
import http from "node:http";
import https from "node:https";
import path from "node:path";
import { decodeMethodResponse, encodeMethodCall } from "../src/rpc/codec.js";
import { createClient, type RpcClient } from "./client.js";
import type { BuilderDirs } from "./dirs.js";
import { ensureDist, ROOT, START_SCRIPT } from "./dist.js";
import { listeningAddresses } from "./listening.js";

export type Entry = "tsx" | "dist";

export interface ProcessOptions {
  /** How long start-up may take before the child is killed and the start fails. */
  readonly timeoutMs?: number;
  /**
   * "tsx" (the default): src/cli.ts through tsx. "dist": bin/buildd.js, as `npm start`
   * runs it; dist/ is rebuilt first if it is older than src/ (see dist.ts).
   */
  readonly entry?: Entry;
  /** How often start-up looks for the listening socket and tries echo(); default 50 ms. */
  readonly pollMs?: number;
  /**
   * Lead a process group of its own, so a Ctrl-C at the terminal reaches only the parent
   * (which can then stop the builder in order); the last-resort kill takes the group.
   */
  readonly detached?: boolean;
  /** Keep only the last this many characters of output; default: all of it. */
  readonly keepOutput?: number;
  /** The builder serves HTTPS ([tls]): probe it with this CA certificate (PEM). */
  readonly tlsCa?: Buffer;
}

export interface BuilderProcess extends BuilderDirs {
  readonly url: string;
  readonly client: RpcClient;
  readonly child: ChildProcess;
  /** The builder's own PID (the process that holds the state directory). */
  readonly pid: number;
  /** Milliseconds from spawn() to the first answered echo(). */
  readonly startupMs: number;
  /** Everything the process wrote to stdout and stderr so far. */
  logText(): string;
  /**
   * Send a signal and wait for the process to exit; returns its exit code or signal.
   * With `killAfterMs`, SIGKILL (its group, if detached) if it has not exited by then.
   */
  kill(signal?: NodeJS.Signals, killAfterMs?: number): Promise<number | string>;
}

interface Spawned {
  child: ChildProcess;
  output: () => string;
  /** Resolves on exit with the signal's name or the exit code, once its output is read. */
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  spawnedAt: number;
}

// Children still running when this process exits (a crashed or cancelled test, a
// benchmark stopped by a signal) are killed with it, so no builder outlives its parent.
const live = new Map<ChildProcess, boolean>();
process.once("exit", () => {
  for (const [child, group] of live) hardKill(child, group);
});

function hardKill(child: ChildProcess, group: boolean): void {
  if (child.pid === undefined || child.exitCode !== null || child.signalCode !== null) return;
  try {
    process.kill(group ? -child.pid : child.pid, "SIGKILL");
  } catch {
    // gone meanwhile
  }
}

function argvFor(entry: Entry, configFile: string): string[] {
  const serve = ["serve", "--config", configFile];
  if (entry === "dist") {
    ensureDist();
    return [START_SCRIPT, ...serve];
  }
  return ["--import", "tsx", path.join(ROOT, "src/cli.ts"), ...serve];
}

function spawnServe(dirs: BuilderDirs, opts: ProcessOptions): Spawned {
  const argv = argvFor(opts.entry ?? "tsx", dirs.configFile);
  const group = opts.detached ?? false;
  const spawnedAt = performance.now();
  const child = spawn(process.execPath, argv, {
    cwd: ROOT,
    stdio: ["ignore", "pipe", "pipe"],
    detached: group,
  });
  live.set(child, group);
  let out = "";
  const keep = opts.keepOutput;
  const collect = (c: Buffer): void => {
    out += c.toString("utf8");
    if (keep !== undefined && out.length > keep) out = out.slice(-keep);
  };
  child.stdout?.on("data", collect);
  child.stderr?.on("data", collect);
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
    child.once("exit", (code, signal) => {
      live.delete(child);
      // Wait for the pipes to drain (a process of a build may still hold them: then
      // give up after a moment rather than wait for it).
      const timer = setTimeout(() => resolve({ code, signal }), 2000);
      child.once("close", () => {
        clearTimeout(timer);
        resolve({ code, signal });
      });
    });
  });
  return { child, output: () => out, exited, spawnedAt };
}

const describeExit = (e: { code: number | null; signal: NodeJS.Signals | null }): string =>
  e.signal ? `was killed by ${e.signal}` : `exited with status ${e.code}`;

/**
 * Whether echo(token) at `url` answers with the token: our builder, up. A plain request
 * on a fresh connection (not fetch(), whose first use costs tens of milliseconds, which
 * the start-up benchmark would count).
 */
function answersEcho(url: string, token: string, ca?: Buffer): Promise<boolean> {
  return new Promise((resolve) => {
    const req = (ca ? https : http).request(
      `${url}/rpc`,
      {
        method: "POST",
        agent: false,
        headers: { "content-type": "text/xml" },
        ...(ca ? { ca } : {}),
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on("data", (c: Buffer) => chunks.push(c));
        res.on("error", () => resolve(false));
        res.on("end", () => {
          // With [auth] password set, our builder answers 401 with its own realm: up.
          const challenge = res.headers["www-authenticate"] ?? "";
          if (res.statusCode === 401) return resolve(challenge.includes('realm="buildd"'));
          if (res.statusCode !== 200) return resolve(false);
          try {
            const d = decodeMethodResponse(Buffer.concat(chunks));
            resolve(d.kind === "value" && Array.isArray(d.value) && d.value[0] === token);
          } catch {
            resolve(false);
          }
        });
      },
    );
    req.on("error", () => resolve(false));
    req.end(encodeMethodCall("echo", [token]));
  });
}

/**
 * Start `buildd serve` as a child process on the given directories (reused on restart).
 * Resolves once echo() answers on an address the child itself listens on. If the child
 * exits first, or does not answer within the timeout, it rejects with the child's output.
 */
export async function startBuilderProcess(
  dirs: BuilderDirs,
  opts: ProcessOptions = {},
): Promise<BuilderProcess> {
  const timeoutMs = opts.timeoutMs ?? 60_000;
  const pollMs = opts.pollMs ?? 50;
  const { child, output, exited, spawnedAt } = spawnServe(dirs, opts);
  const group = opts.detached ?? false;
  const pid = child.pid;
  if (pid === undefined) throw new Error(`could not spawn the builder:\n${output()}`);
  let exit: { code: number | null; signal: NodeJS.Signals | null } | null = null;
  void exited.then((e) => (exit = e));
  const deadline = Date.now() + timeoutMs;
  const token = `started-${pid}`;
  let url: string | null = null;
  while (url === null) {
    if (exit !== null) {
      throw new Error(`builder ${describeExit(exit)} during start-up:\n${output()}`);
    }
    if (Date.now() > deadline) {
      hardKill(child, group);
      await exited;
      throw new Error(`builder did not answer echo() within ${timeoutMs} ms:\n${output()}`);
    }
    for (const { host, port } of listeningAddresses(pid)) {
      const candidate = `${opts.tlsCa ? "https" : "http"}://${host}:${port}`;
      if (await answersEcho(candidate, token, opts.tlsCa)) {
        url = candidate;
        break;
      }
    }
    if (url === null) await new Promise((r) => setTimeout(r, pollMs));
  }
  const startupMs = performance.now() - spawnedAt;
  return {
    ...dirs,
    url,
    child,
    pid,
    startupMs,
    client: createClient(url),
    logText: output,
    async kill(signal: NodeJS.Signals = "SIGTERM", killAfterMs?: number) {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal);
      const timer =
        killAfterMs === undefined
          ? undefined
          : setTimeout(() => hardKill(child, group), killAfterMs);
      const e = await exited;
      clearTimeout(timer);
      return e.signal ?? e.code ?? -1;
    },
  };
}

export interface ExitedStart {
  readonly pid: number;
  /** Exit status, or null when killed by a signal. */
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
  /** Everything it wrote to stdout and stderr. */
  readonly output: string;
  /** Milliseconds from spawn to exit. */
  readonly ms: number;
}

/**
 * Start `buildd serve` on existing directories when it is expected to refuse (e.g. a
 * second instance on a locked state directory; pass `{...dirs, configFile}` to start it
 * on another config): resolves with how it exited and what it wrote. If it is still
 * running after the timeout, it is killed and this rejects, saying so with its output.
 */
export async function startBuilderExpectingExit(
  dirs: BuilderDirs,
  opts: ProcessOptions = {},
): Promise<ExitedStart> {
  const timeoutMs = opts.timeoutMs ?? 30_000;
  const started = Date.now();
  const { child, output, exited } = spawnServe(dirs, opts);
  let timer: NodeJS.Timeout | undefined;
  const timedOut = new Promise<"timeout">((resolve) => {
    timer = setTimeout(() => resolve("timeout"), timeoutMs);
  });
  const first = await Promise.race([exited, timedOut]);
  clearTimeout(timer);
  if (first === "timeout") {
    const where = child.pid === undefined ? [] : listeningAddresses(child.pid);
    hardKill(child, opts.detached ?? false);
    await exited;
    throw new Error(
      `builder was expected to exit but was still running after ${timeoutMs} ms` +
        `${where.length ? ` (listening on ${where.map((a) => `${a.host}:${a.port}`).join(", ")})` : ""}` +
        `; killed it. Its output:\n${output()}`,
    );
  }
  const ms = Date.now() - started;
  return { pid: child.pid ?? -1, code: first.code, signal: first.signal, output: output(), ms };
}
