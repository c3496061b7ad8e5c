// A buildd Buildbot worker as an operator makes and runs one: `buildd create-worker DIR
// 127.0.0.1:PORT NAME PASSWORD --port 0 …` (the real command, as a child process), a few
// keys of the written buildd.conf changed or lines added (capabilities, a shorter
// reconnect wait), then `buildd serve --config DIR/buildd.conf` as a child process
// (harness/process.ts, found by its listening port). stop() kills it and removes DIR.

import { execFile } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { removeDir, tempDir } from "./buildbot-master.js";
import { ROOT } from "./dist.js";
import { basicHeader, createClient, type Credentials, type RpcClient } from "./client.js";
import {
  startBuilderProcess,
  type BuilderProcess,
  type Entry,
  type ProcessOptions,
} from "./process.js";

export interface WorkerDirOptions {
  /** The master's msgpack port (on 127.0.0.1). */
  readonly masterPort: number;
  readonly name: string;
  readonly password: string;
  readonly maxBuilds?: number;
  readonly admin?: string;
  readonly host?: string;
  /** Keys to set in buildd.conf after create-worker, e.g. {buildbot: {reconnect_max: 2}}. */
  readonly set?: Readonly<Record<string, Readonly<Record<string, string | number>>>>;
  /** Lines to add under a line-by-line section ([capabilities], [capability_env]). */
  readonly lines?: Readonly<Record<string, readonly string[]>>;
  /** Lines to add to secrets.conf (e.g. ["[capabilities]", "pgcap 15 password=…"]). */
  readonly secretLines?: readonly string[];
}

export interface WorkerDir {
  readonly dir: string;
  readonly configFile: string;
  readonly secretsFile: string;
  /** The XML-RPC side's credentials: user `buildd`, `[auth] password` from secrets.conf. */
  readonly credentials: Credentials;
  /** What create-worker printed. */
  readonly created: string;
}

export interface ServedWorker extends WorkerDir {
  readonly proc: BuilderProcess;
  readonly url: string;
  /** XML-RPC with the credentials. */
  readonly client: RpcClient;
  /** GET a path of the web side with the credentials; the body parsed as JSON. */
  json<T = unknown>(urlPath: string): Promise<T>;
  /** GET a path of the web side with the credentials; status and text. */
  get(urlPath: string): Promise<{ status: number; text: string }>;
  /** buildd's own log so far (JSON lines on stdout, plus stderr). */
  logText(): string;
  /** Stop `buildd serve` (SIGTERM, SIGKILL after a while). */
  kill(): Promise<void>;
  /** kill(), then remove the directory. */
  stop(): Promise<void>;
}

const CLI = path.join(ROOT, "src/cli.ts");

/** `buildd ARGS…` from the sources; rejects with its output unless it exits 0. */
function runBuildd(args: readonly string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(
      process.execPath,
      ["--import", import.meta.resolve("tsx"), CLI, ...args],
      { cwd: ROOT, timeout: 60_000, killSignal: "SIGKILL" },
      (err, stdout, stderr) => {
        if (err) reject(new Error(`buildd ${args.join(" ")}: ${err.message}\n${stdout}${stderr}`));
        else resolve(stdout + stderr);
      },
    );
  });
}

/**
 * Set `key = value` in `[section]`: replace the key's live line in any occurrence of the
 * section (the written file may repeat a section header), else add it under the first.
 */
export function setConfKey(text: string, section: string, key: string, value: string): string {
  const lines = text.split("\n");
  let current = "";
  let firstHeader = -1;
  for (let i = 0; i < lines.length; i++) {
    const header = /^\[([^\]]+)\]\s*$/.exec(lines[i]!);
    if (header) {
      current = header[1]!;
      if (current === section && firstHeader < 0) firstHeader = i;
      continue;
    }
    if (current === section && new RegExp(`^${key}\\s*=`).test(lines[i]!)) {
      lines[i] = `${key} = ${value}`;
      return lines.join("\n");
    }
  }
  if (firstHeader < 0) return `${text.replace(/\n*$/, "\n")}\n[${section}]\n${key} = ${value}\n`;
  lines.splice(firstHeader + 1, 0, `${key} = ${value}`);
  return lines.join("\n");
}

/** Add lines under the first `[section]` header (appended with the header if missing). */
function addLines(text: string, section: string, add: readonly string[]): string {
  const lines = text.split("\n");
  const at = lines.findIndex((l) => l.trim() === `[${section}]`);
  if (at < 0) return `${text.replace(/\n*$/, "\n")}\n[${section}]\n${add.join("\n")}\n`;
  lines.splice(at + 1, 0, ...add);
  return lines.join("\n");
}

/** The `[auth] password` of a secrets file. */
function authPassword(secretsText: string): string {
  let section = "";
  for (const line of secretsText.split("\n")) {
    const header = /^\[([^\]]+)\]/.exec(line);
    if (header) section = header[1]!;
    const m = /^password\s*=\s*"?([^"]*)"?\s*$/.exec(line);
    if (section === "auth" && m) return m[1]!;
  }
  throw new Error("no [auth] password in the secrets file");
}

/**
 * A new temporary directory for a worker (create-worker makes `<it>/worker`), removed
 * at the latest when this process exits.
 */
const tempParent = (): string => tempDir("buildd-bbw-");

/** `buildd create-worker` into a new temporary directory, then the tweaks. */
export async function createWorkerDir(opts: WorkerDirOptions): Promise<WorkerDir> {
  const parent = tempParent();
  const dir = path.join(parent, "worker");
  try {
    const args = [
      "create-worker",
      dir,
      `127.0.0.1:${opts.masterPort}`,
      opts.name,
      opts.password,
      "--port",
      "0",
      "--max-builds",
      String(opts.maxBuilds ?? 1),
      ...(opts.admin === undefined ? [] : ["--admin", opts.admin]),
      ...(opts.host === undefined ? [] : ["--host", opts.host]),
    ];
    const created = await runBuildd(args);
    const configFile = path.join(dir, "buildd.conf");
    const secretsFile = path.join(dir, "secrets.conf");
    let text = fs.readFileSync(configFile, "utf8");
    for (const [section, keys] of Object.entries(opts.set ?? {})) {
      for (const [key, value] of Object.entries(keys)) {
        text = setConfKey(text, section, key, String(value));
      }
    }
    for (const [section, add] of Object.entries(opts.lines ?? {})) {
      text = addLines(text, section, add);
    }
    fs.writeFileSync(configFile, text);
    if (opts.secretLines) {
      fs.appendFileSync(secretsFile, `\n${opts.secretLines.join("\n")}\n`);
    }
    const credentials = {
      username: "buildd",
      password: authPassword(fs.readFileSync(secretsFile, "utf8")),
    };
    return { dir, configFile, secretsFile, credentials, created };
  } catch (e) {
    removeDir(parent);
    throw e;
  }
}

/** `buildd serve --config DIR/buildd.conf` as a child process, on a created directory. */
export async function serveWorkerDir(
  w: WorkerDir,
  opts: { entry?: Entry } & ProcessOptions = {},
): Promise<ServedWorker> {
  const proc = await startBuilderProcess(
    {
      dir: w.dir,
      configFile: w.configFile,
      filecache: path.join(w.dir, "var/filecache"),
      statedir: path.join(w.dir, "var"),
    },
    opts,
  );
  const client = createClient(proc.url, w.credentials);
  const auth = basicHeader(w.credentials);
  const get = async (urlPath: string): Promise<{ status: number; text: string }> => {
    const res = await fetch(`${proc.url}${urlPath}`, { headers: { authorization: auth } });
    return { status: res.status, text: await res.text() };
  };
  // The child counts as up once it answers 401 to a call without the credentials; its
  // web surface loads a moment after it listens (503 until then): wait for both.
  for (let deadline = Date.now() + 60_000; ;) {
    let why: string;
    try {
      await client.call("echo", "up");
      const web = await get("/api/v1/slots");
      if (web.status === 200) break;
      why = `/api/v1/slots: HTTP ${web.status}`;
    } catch (e) {
      why = String(e);
    }
    if (Date.now() > deadline) {
      await proc.kill("SIGKILL");
      throw new Error(`buildd serve did not answer (${why}):\n${proc.logText()}`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  let killed = false;
  const kill = async (): Promise<void> => {
    if (killed) return;
    killed = true;
    await proc.kill("SIGTERM", 10_000);
  };
  return {
    ...w,
    proc,
    url: proc.url,
    client,
    get,
    async json<T>(urlPath: string): Promise<T> {
      const { status, text } = await get(urlPath);
      if (status !== 200) throw new Error(`GET ${urlPath}: HTTP ${status}: ${text}`);
      return JSON.parse(text) as T;
    },
    logText: () => proc.logText(),
    kill,
    async stop() {
      await kill();
      removeDir(path.dirname(w.dir));
    },
  };
}

/** create-worker, then serve: a worker as an operator starts one. */
export async function startWorkerDir(
  opts: WorkerDirOptions,
  serve: { entry?: Entry } & ProcessOptions = {},
): Promise<ServedWorker> {
  const w = await createWorkerDir(opts);
  try {
    return await serveWorkerDir(w, serve);
  } catch (e) {
    removeDir(path.dirname(w.dir));
    throw e;
  }
}

/** The connection as /api/v1/buildbot reports it. */
export interface BuildbotApiStatus {
  readonly master: string;
  readonly name: string;
  readonly state: string;
  readonly since: string | null;
  readonly last_error: string | null;
  readonly next_attempt_at: string | null;
  readonly builders: readonly string[];
  readonly running: readonly {
    builder: string;
    command_id: string;
    command: string;
    started_at: string;
  }[];
  readonly connects: number;
  readonly commands: number;
  readonly command_failures: number;
}

/** /api/v1/slots. */
export interface SlotsApi {
  readonly max: number;
  readonly held: readonly { kind: string; label: string; [key: string]: unknown }[];
  readonly waiting: readonly { kind: string; label: string; [key: string]: unknown }[];
}

export async function buildbotStatus(w: ServedWorker): Promise<BuildbotApiStatus> {
  const { buildbot } = await w.json<{ buildbot: BuildbotApiStatus | null }>("/api/v1/buildbot");
  if (buildbot === null) throw new Error("/api/v1/buildbot: null (no [buildbot] master?)");
  return buildbot;
}
