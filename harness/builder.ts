// Starts a real builder for tests: the same code `buildd serve` runs, on port 0, with a
// temporary config, cache and state directory. Two ways:
//   - startTestBuilder(): in this process (fast; logs captured for assertions);
//   - startBuilderProcess(): as a child process running src/cli.ts, so a test can
//     SIGKILL it and start it again on the same directories (restart tests);
//   - startBuilderExpectingExit(): the same, for a start that must refuse and exit.

import { spawn, type ChildProcess } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { Writable } from "node:stream";
import { fileURLToPath } from "node:url";
import { loadConfig } from "../src/config/config.js";
import { createLogger } from "../src/logger.js";
import { startBuilder, type BuilderOverrides } from "../src/app.js";
import { createClient, type RpcClient } from "./client.js";
import { listeningAddresses } from "./listening.js";

export type ConfSections = Record<string, Record<string, string | number>>;
/** Sections written line by line, e.g. {capabilities: ["postgresql 15 port=5432"]}. */
export type RawSections = Record<string, readonly string[]>;

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");

export interface BuilderDirs {
  /** Temporary root holding buildd.conf, var/ and var/filecache/. */
  readonly dir: string;
  readonly configFile: string;
  readonly filecache: string;
  readonly statedir: string;
}

/** Write a temporary buildd.conf; `sections` override or add keys, `raw` adds line sections. */
export function makeBuilderDirs(
  sections: ConfSections = {},
  dir?: string,
  raw: RawSections = {},
): BuilderDirs {
  const root = dir ?? fs.mkdtempSync(path.join(os.tmpdir(), "buildd-test-"));
  const merged: ConfSections = {
    ...sections,
    builder: {
      bindhost: "127.0.0.1",
      bindport: 0,
      filecache: "var/filecache",
      statedir: "var",
      ...sections["builder"],
    },
    log: { level: "debug", ...sections["log"] },
    // Tests stop builders with builds still running: abort those at once rather than
    // waiting out the production grace (the shutdown tests set their own).
    build: { shutdown_grace: 0, ...sections["build"] },
  };
  const text = Object.entries(merged)
    .map(
      ([name, keys]) =>
        `[${name}]\n${Object.entries(keys)
          .map(([k, v]) => `${k} = ${v}`)
          .join("\n")}\n`,
    )
    .join("\n");
  const rawText = Object.entries(raw)
    .map(([name, lines]) => `\n[${name}]\n${lines.map((l) => `${l}\n`).join("")}`)
    .join("");
  const configFile = path.join(root, "buildd.conf");
  fs.writeFileSync(configFile, text + rawText);
  return {
    dir: root,
    configFile,
    filecache: path.join(root, "var/filecache"),
    statedir: path.join(root, "var"),
  };
}

export interface TestBuilder extends BuilderDirs {
  readonly url: string;
  readonly client: RpcClient;
  /** Every line the builder logged so far (JSON text, as written). */
  logText(): string;
  stop(): Promise<void>;
}

export async function startTestBuilder(
  sections: ConfSections = {},
  raw: RawSections = {},
  overrides: BuilderOverrides = {},
): Promise<TestBuilder> {
  const dirs = makeBuilderDirs(sections, undefined, raw);
  const config = loadConfig({ file: dirs.configFile });
  const chunks: string[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, cb) {
      chunks.push(chunk.toString("utf8"));
      cb();
    },
  });
  const log = createLogger(config.log.level, sink);
  const running = await startBuilder(config, log, overrides);
  return {
    ...dirs,
    url: running.url,
    client: createClient(running.url),
    logText: () => chunks.join(""),
    async stop() {
      await running.close();
      fs.rmSync(dirs.dir, { recursive: true, force: true });
    },
  };
}

export interface BuilderProcess extends BuilderDirs {
  readonly url: string;
  readonly client: RpcClient;
  readonly child: ChildProcess;
  /** The builder's own PID (the process that holds the state directory). */
  readonly pid: number;
  /** Everything the process wrote to stdout and stderr so far. */
  logText(): string;
  /** Send a signal and wait for the process to exit; returns its exit code or signal. */
  kill(signal?: NodeJS.Signals): Promise<number | string>;
}

export interface ProcessOptions {
  /** How long start-up may take before the child is killed and the start fails. */
  readonly timeoutMs?: number;
}

// Children still running when the test process exits (a crashed or cancelled test) are
// killed with it, so no builder outlives the suite that started it.
const live = new Set<ChildProcess>();
process.once("exit", () => {
  for (const child of live) child.kill("SIGKILL");
});

function spawnServe(dirs: BuilderDirs): {
  child: ChildProcess;
  output: () => string;
  /** Resolves on exit with the signal's name or the exit code, once its output is read. */
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
} {
  const child = spawn(
    process.execPath,
    ["--import", "tsx", path.join(ROOT, "src/cli.ts"), "serve", "--config", dirs.configFile],
    { cwd: ROOT, stdio: ["ignore", "pipe", "pipe"] },
  );
  live.add(child);
  let out = "";
  child.stdout?.on("data", (c: Buffer) => (out += c.toString("utf8")));
  child.stderr?.on("data", (c: Buffer) => (out += c.toString("utf8")));
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
  return { child, output: () => out, exited };
}

const describeExit = (e: { code: number | null; signal: NodeJS.Signals | null }): string =>
  e.signal ? `was killed by ${e.signal}` : `exited with status ${e.code}`;

/**
 * Start `buildd serve` as a child process on the given directories (reused on restart).
 * Resolves once echo() answers on an address the child itself listens on (found in /proc,
 * so any [log] level and bindport, including 0, work). If the child exits first, or does
 * not answer within the timeout, it rejects with the child's output.
 */
export async function startBuilderProcess(
  dirs: BuilderDirs,
  opts: ProcessOptions = {},
): Promise<BuilderProcess> {
  const timeoutMs = opts.timeoutMs ?? 60_000;
  const { child, output, exited } = spawnServe(dirs);
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
      child.kill("SIGKILL");
      await exited;
      throw new Error(`builder did not answer echo() within ${timeoutMs} ms:\n${output()}`);
    }
    for (const { host, port } of listeningAddresses(pid)) {
      const candidate = `http://${host}:${port}`;
      try {
        const answer = await createClient(candidate).call("echo", token);
        if (Array.isArray(answer) && answer[0] === token) url = candidate;
      } catch {
        // listening but not answering yet, or not the RPC port
      }
      if (url !== null) break;
    }
    if (url === null) await new Promise((r) => setTimeout(r, 50));
  }
  return {
    ...dirs,
    url,
    child,
    pid,
    client: createClient(url),
    logText: output,
    async kill(signal: NodeJS.Signals = "SIGTERM") {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal);
      const e = await exited;
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
 * on another config): resolves with how it exited and what it wrote. If it is still running after the timeout, it is killed and this rejects,
 * saying so with its output.
 */
export async function startBuilderExpectingExit(
  dirs: BuilderDirs,
  opts: ProcessOptions = {},
): Promise<ExitedStart> {
  const timeoutMs = opts.timeoutMs ?? 30_000;
  const started = Date.now();
  const { child, output, exited } = spawnServe(dirs);
  let timer: NodeJS.Timeout | undefined;
  const timedOut = new Promise<"timeout">((resolve) => {
    timer = setTimeout(() => resolve("timeout"), timeoutMs);
  });
  const first = await Promise.race([exited, timedOut]);
  clearTimeout(timer);
  if (first === "timeout") {
    const where = child.pid === undefined ? [] : listeningAddresses(child.pid);
    child.kill("SIGKILL");
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
