// Shared helpers for the benchmarks (see BENCHMARKS.md in the shared project docs): result lines and
// JSON, statistics, cleanup that also runs on failure, a builder in a child process, a
// keep-alive XML-RPC connection, a 1 GiB test file, nginx and a node:http file server.
//
// Every benchmark is one script, run alone (`npx tsx bench/rpc.ts`) or by bench/all.ts.
// It measures our figure and its reference in the same run, interleaved, and prints one
// line per figure: `name: value unit (ratio X vs REF)`, then the reference value and
// whether the target is met.

import { execFileSync, spawn, spawnSync, type ChildProcess } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import fs from "node:fs";
import http from "node:http";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import {
  makeBuilderDirs,
  startBuilderProcess,
  type BuilderDirs,
  type BuilderProcess,
  type ConfSections,
  type Entry,
} from "../harness/builder.js";
import { ensureDist, ROOT } from "../harness/dist.js";
import {
  decodeMethodResponse,
  encodeMethodCall,
  type XmlRpcStruct,
  type XmlRpcValue,
} from "../src/rpc/codec.js";

export { ROOT };
export const RESULTS_DIR = path.join(ROOT, "bench", "results");
export const GiB = 1024 ** 3;
export const MiB = 1024 ** 2;
/** MB/s in these benchmarks means 10^6 bytes per second. */
export const MB = 1e6;

// ---------------------------------------------------------------------------------------
// Cleanup: registered actions run in reverse order at the end, on error and on SIGINT or
// SIGTERM. Processes and temporary directories also get a synchronous last resort on
// 'exit', so nothing (a 1 GiB file, an nginx) outlives the benchmark.

type Cleanup = () => void | Promise<void>;
const cleanups: { name: string; fn: Cleanup }[] = [];
/** Running children, and whether each leads its own process group (killed as a group). */
const liveChildren = new Map<ChildProcess, boolean>();
const liveDirs = new Set<string>();

export function onCleanup(name: string, fn: Cleanup): void {
  cleanups.push({ name, fn });
}

let cleaning: Promise<void> | null = null;

/** Runs once at a time: a signal and a failing body may both ask for it. */
function runCleanups(): Promise<void> {
  cleaning ??= drainCleanups().finally(() => (cleaning = null));
  return cleaning;
}

async function drainCleanups(): Promise<void> {
  while (cleanups.length > 0) {
    const { name, fn } = cleanups.pop()!;
    try {
      await fn();
    } catch (err) {
      console.error(`cleanup "${name}" failed: ${String(err)}`);
    }
  }
  lastResort();
}

function lastResort(): void {
  for (const [child, group] of liveChildren) {
    if (child.exitCode !== null || child.signalCode !== null || child.pid === undefined) continue;
    try {
      // A group: nginx's workers (or anything a builder started in its group) go too.
      process.kill(group ? -child.pid : child.pid, "SIGKILL");
    } catch {
      // already gone
    }
  }
  liveChildren.clear();
  for (const dir of liveDirs) fs.rmSync(dir, { recursive: true, force: true });
  liveDirs.clear();
}
process.on("exit", lastResort);

/** A temporary directory removed at the end whatever happens. */
export function tempDir(prefix: string): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), `buildd-bench-${prefix}-`));
  liveDirs.add(dir);
  return dir;
}

export function removeDir(dir: string): void {
  fs.rmSync(dir, { recursive: true, force: true });
  liveDirs.delete(dir);
}

/**
 * Track a child process: SIGKILLed at exit if still running. `group`: it was spawned
 * detached (leading its own process group), and the whole group is killed.
 */
export function track(child: ChildProcess, group = false): ChildProcess {
  liveChildren.set(child, group);
  child.once("exit", () => liveChildren.delete(child));
  return child;
}

/** Send `signal`, wait up to `graceMs`, then SIGKILL; resolves when the child has exited. */
export async function stopChild(
  child: ChildProcess,
  signal: NodeJS.Signals = "SIGTERM",
  graceMs = 10_000,
): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  child.kill(signal);
  const group = liveChildren.get(child) ?? false;
  const timer = setTimeout(() => {
    try {
      process.kill(group ? -child.pid! : child.pid!, "SIGKILL");
    } catch {
      // gone meanwhile
    }
  }, graceMs);
  await exited;
  clearTimeout(timer);
}

/** Run a benchmark's body; cleanups always run; a thrown error means exit status 1. */
export async function main(name: string, body: () => Promise<void>): Promise<void> {
  let interrupted = false;
  const onSignal = (signal: NodeJS.Signals): void => {
    if (interrupted) return;
    interrupted = true;
    console.error(`${name}: ${signal}, cleaning up`);
    void runCleanups().finally(() => process.exit(130));
  };
  process.on("SIGINT", onSignal);
  process.on("SIGTERM", onSignal);
  const started = performance.now();
  try {
    await body();
  } catch (err) {
    // After a signal, whatever the body was doing fails as its processes go: not news.
    if (!interrupted) {
      console.error(`${name}: error: ${err instanceof Error ? (err.stack ?? err.message) : err}`);
    }
    process.exitCode = 1;
  } finally {
    await runCleanups();
  }
  console.log(`(${name}: ${((performance.now() - started) / 1000).toFixed(1)} s)`);
}

// ---------------------------------------------------------------------------------------
// Figures: the printed line and the JSON file.

export interface Target {
  /** e.g. "ratio ≥ 0.6" or "≤ 10 ms". */
  readonly text: string;
  readonly met: boolean;
}

export interface Figure {
  readonly name: string;
  readonly value: number;
  readonly unit: string;
  readonly reference: { readonly name: string; readonly value: number; readonly unit: string };
  readonly ratio: number;
  readonly target: Target | null;
  readonly samples?: number;
}

export const atLeastRatio = (ratio: number, min: number): Target => ({
  text: `ratio ≥ ${min}`,
  met: ratio >= min,
});
export const atMostRatio = (ratio: number, max: number): Target => ({
  text: `ratio ≤ ${max}`,
  met: ratio <= max,
});
export const atMost = (value: number, max: number, unit: string): Target => ({
  text: `≤ ${max} ${unit}`,
  met: value <= max,
});

export function fmt(n: number): string {
  if (!Number.isFinite(n)) return String(n);
  const abs = Math.abs(n);
  if (abs >= 1000) return n.toFixed(0);
  if (abs >= 100) return n.toFixed(1);
  if (abs >= 1) return n.toFixed(2);
  return n.toFixed(3);
}

export class Report {
  readonly figures: Figure[] = [];
  readonly notes: string[] = [];
  private readonly started = new Date();

  constructor(readonly benchmark: string) {}

  /**
   * Record and print a figure. `ratio` defaults to value / reference value. Prints
   * `name: value unit (ratio X vs REF)`, then the reference's value and the target.
   */
  add(f: {
    name: string;
    value: number;
    unit: string;
    ref: { name: string; value: number; unit?: string };
    ratio?: number;
    target?: Target | null;
    samples?: number;
  }): Figure {
    const ratio = f.ratio ?? f.value / f.ref.value;
    const figure: Figure = {
      name: `${this.benchmark}.${f.name}`,
      value: f.value,
      unit: f.unit,
      reference: { name: f.ref.name, value: f.ref.value, unit: f.ref.unit ?? f.unit },
      ratio,
      target: f.target ?? null,
      ...(f.samples === undefined ? {} : { samples: f.samples }),
    };
    this.figures.push(figure);
    const target = figure.target
      ? `target ${figure.target.text}: ${figure.target.met ? "MET" : "NOT MET"}`
      : "no target (informational)";
    console.log(
      `${figure.name}: ${fmt(figure.value)} ${figure.unit} (ratio ${fmt(ratio)} vs ${figure.reference.name})` +
        `  [ref ${fmt(figure.reference.value)} ${figure.reference.unit}; ${target}]`,
    );
    return figure;
  }

  /** A line of context (printed, and kept in the JSON). */
  note(text: string): void {
    this.notes.push(text);
    console.log(`  # ${text}`);
  }

  /** Say the benchmark could not run here, and why (still writes the JSON). */
  skip(why: string): void {
    this.note(`SKIPPED: ${why}`);
    console.log(`${this.benchmark}: skipped (${why})`);
  }

  write(extra: Record<string, unknown> = {}): string {
    fs.mkdirSync(RESULTS_DIR, { recursive: true });
    const file = path.join(RESULTS_DIR, `${this.benchmark}.json`);
    const data = {
      benchmark: this.benchmark,
      date: this.started.toISOString(),
      cpus: os.cpus().length,
      cpuModel: os.cpus()[0]?.model ?? "unknown",
      node: process.version,
      platform: `${os.type()} ${os.release()}`,
      figures: this.figures,
      notes: this.notes,
      ...extra,
    };
    fs.writeFileSync(file, `${JSON.stringify(data, null, 2)}\n`);
    return file;
  }
}

// ---------------------------------------------------------------------------------------
// Statistics.

export function percentile(values: readonly number[], p: number): number {
  if (values.length === 0) return NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const rank = Math.ceil((p / 100) * sorted.length);
  return sorted[Math.min(sorted.length - 1, Math.max(0, rank - 1))]!;
}

export const median = (values: readonly number[]): number => percentile(values, 50);
export const max = (values: readonly number[]): number =>
  values.reduce((a, b) => (b > a ? b : a), -Infinity);

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Milliseconds elapsed while `fn` runs. */
export async function timeMs(fn: () => Promise<unknown>): Promise<number> {
  const t0 = performance.now();
  await fn();
  return performance.now() - t0;
}

/** Run `a` and `b` alternately `rounds` times, swapping which goes first each round. */
export async function interleave(
  rounds: number,
  a: (round: number) => Promise<void>,
  b: (round: number) => Promise<void>,
): Promise<void> {
  for (let i = 0; i < rounds; i++) {
    if (i % 2 === 0) {
      await a(i);
      await b(i);
    } else {
      await b(i);
      await a(i);
    }
  }
}

// ---------------------------------------------------------------------------------------
// Network helpers.

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.once("error", reject);
    srv.listen(0, "127.0.0.1", () => {
      const { port } = srv.address() as net.AddressInfo;
      srv.close(() => resolve(port));
    });
  });
}

export async function waitForPort(port: number, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const ok = await new Promise<boolean>((resolve) => {
      const sock = net.connect(port, "127.0.0.1");
      sock.once("connect", () => {
        sock.destroy();
        resolve(true);
      });
      sock.once("error", () => resolve(false));
    });
    if (ok) return;
    if (Date.now() > deadline) throw new Error(`nothing listens on port ${port}`);
    await sleep(20);
  }
}

/** One keep-alive connection posting XML-RPC calls (one at a time, like a manager). */
export class RpcConn {
  private readonly agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  private readonly host: string;
  private readonly port: number;

  constructor(url: string) {
    const u = new URL(url);
    this.host = u.hostname;
    this.port = Number(u.port);
  }

  /** POST `body` to /rpc; resolves with the response body. */
  post(body: string | Buffer, rpcPath = "/rpc"): Promise<Buffer> {
    return new Promise((resolve, reject) => {
      const req = http.request(
        {
          host: this.host,
          port: this.port,
          path: rpcPath,
          method: "POST",
          agent: this.agent,
          headers: { "content-type": "text/xml", "content-length": Buffer.byteLength(body) },
        },
        (res) => {
          const chunks: Buffer[] = [];
          res.on("data", (c: Buffer) => chunks.push(c));
          res.on("end", () => {
            if (res.statusCode !== 200) reject(new Error(`HTTP ${res.statusCode} from /rpc`));
            else resolve(Buffer.concat(chunks));
          });
          res.on("error", reject);
        },
      );
      req.on("error", reject);
      req.end(body);
    });
  }

  async call(method: string, ...params: XmlRpcValue[]): Promise<XmlRpcValue> {
    const decoded = decodeMethodResponse(await this.post(encodeMethodCall(method, params)));
    if (decoded.kind === "fault") {
      throw new Error(`${method}: fault ${decoded.fault.faultCode}: ${decoded.fault.faultString}`);
    }
    return decoded.value;
  }

  async status(): Promise<XmlRpcStruct> {
    return (await this.call("status")) as XmlRpcStruct;
  }

  close(): void {
    this.agent.destroy();
  }
}

export const STATUS_BODY = Buffer.from(encodeMethodCall("status", []));

/** Poll status() every `intervalMs` until builder_status is `state`; returns that status. */
export async function waitForState(
  conn: RpcConn,
  state: string,
  intervalMs = 50,
  timeoutMs = 120_000,
): Promise<XmlRpcStruct> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const s = await conn.status();
    if (s["builder_status"] === `BuilderStatus.${state}`) return s;
    if (Date.now() > deadline) throw new Error(`builder not ${state}: ${JSON.stringify(s)}`);
    if (intervalMs > 0) await sleep(intervalMs);
  }
}

// ---------------------------------------------------------------------------------------
// The builder under test, as a separate process so the load generator does not share its
// event loop, started by the harness's one starter (harness/process.ts). By default it runs
// from the built dist/ exactly as `npm start` does (dist/ is rebuilt first if older than
// src/, or the start is refused): the figures are those of the program that ships. The
// harness finds it by the port it listens on (read from /proc), not by a log line, so
// [log] level = warn (logging costs nothing under load) and bindport 0 both work.

export interface BenchBuilder {
  readonly url: string;
  readonly port: number;
  readonly pid: number;
  readonly dirs: BuilderDirs;
  readonly child: ChildProcess;
  readonly conn: RpcConn;
  /** Milliseconds from spawn() to the first answered echo(). */
  readonly startupMs: number;
  /** What the process wrote to stdout/stderr (last 64 KiB). */
  output(): string;
  /** SIGTERM (then SIGKILL), and remove its directories. */
  stop(): Promise<void>;
}

export async function startBuilder(
  sections: ConfSections = {},
  opts: { entry?: Entry; startTimeoutMs?: number; pollMs?: number } = {},
): Promise<BenchBuilder> {
  const entry = opts.entry ?? "dist";
  if (entry === "dist" && ensureDist().rebuilt) {
    console.log("  # dist/ was missing or older than src/: rebuilt it with npm run prepare");
  }
  const dirs = makeBuilderDirs({
    ...sections,
    log: { level: "warn", ...sections["log"] },
  });
  liveDirs.add(dirs.dir);
  let proc: BuilderProcess;
  try {
    proc = await startBuilderProcess(dirs, {
      entry,
      timeoutMs: opts.startTimeoutMs ?? 30_000,
      pollMs: opts.pollMs ?? 20,
      // Its own group: a Ctrl-C reaches only us, and we stop the builder in order.
      detached: true,
      keepOutput: 65536,
    });
  } catch (err) {
    removeDir(dirs.dir);
    throw err;
  }
  const conn = new RpcConn(proc.url);
  let stopped: Promise<void> | null = null;
  const stop = (): Promise<void> =>
    (stopped ??= (async () => {
      conn.close();
      await proc.kill("SIGTERM", 10_000);
      removeDir(dirs.dir);
    })());
  const port = Number(new URL(proc.url).port);
  onCleanup(`stop the builder on port ${port}`, stop);
  return {
    url: proc.url,
    port,
    pid: proc.pid,
    dirs,
    child: proc.child,
    conn,
    startupMs: proc.startupMs,
    output: () => proc.logText(),
    stop,
  };
}

/** Peak and current resident set size of a process, in bytes (from /proc/<pid>/status). */
export function memoryOf(pid: number): { hwm: number; rss: number } {
  const text = fs.readFileSync(`/proc/${pid}/status`, "utf8");
  const kb = (key: string): number => {
    const m = new RegExp(`^${key}:\\s+(\\d+) kB`, "m").exec(text);
    if (!m) throw new Error(`no ${key} in /proc/${pid}/status`);
    return Number(m[1]) * 1024;
  };
  return { hwm: kb("VmHWM"), rss: kb("VmRSS") };
}

/** Reset VmHWM to the current RSS (Linux ≥ 4.0); false if not permitted. */
export function resetPeakRss(pid: number): boolean {
  try {
    fs.writeFileSync(`/proc/${pid}/clear_refs`, "5");
    return true;
  } catch {
    return false;
  }
}

// ---------------------------------------------------------------------------------------
// The big test file: 1 GiB, a random 1 MiB block repeated (incompressible enough for
// anything on the path; nothing here compresses).

export interface BigFile {
  readonly path: string;
  readonly size: number;
  readonly sha1: string;
}

export function makeBigFile(dir: string, name = "big.bin", size = GiB): BigFile {
  const file = path.join(dir, name);
  const block = randomBytes(MiB);
  const hash = createHash("sha1");
  const fd = fs.openSync(file, "w");
  try {
    for (let written = 0; written < size; written += block.length) {
      const chunk = block.subarray(0, Math.min(block.length, size - written));
      fs.writeSync(fd, chunk);
      hash.update(chunk);
    }
  } finally {
    fs.closeSync(fd);
  }
  return { path: file, size, sha1: hash.digest("hex") };
}

// ---------------------------------------------------------------------------------------
// File servers: nginx (installed if absent and we are root), else node:http streaming.

const isRoot = (): boolean => process.getuid?.() === 0;

function which(cmd: string): string | null {
  for (const dir of (process.env["PATH"] ?? "").split(":").concat(["/usr/sbin", "/sbin"])) {
    const full = path.join(dir, cmd);
    try {
      fs.accessSync(full, fs.constants.X_OK);
      return full;
    } catch {
      // not here
    }
  }
  return null;
}

/**
 * nginx's path, installing the Debian package if it is missing and we are root. While
 * installing, a policy-rc.d (if none exists) keeps the package from starting a system
 * nginx on port 80. Returns null (with the reason) if nginx cannot be had.
 */
export function ensureNginx(): { path: string } | { path: null; why: string } {
  const found = which("nginx");
  if (found) return { path: found };
  if (!isRoot()) return { path: null, why: "nginx is not installed and we are not root" };
  console.log("  # nginx is not installed: apt-get install -y nginx-light (or nginx)");
  const policy = "/usr/sbin/policy-rc.d";
  const ownPolicy = !fs.existsSync(policy);
  if (ownPolicy) fs.writeFileSync(policy, "#!/bin/sh\nexit 101\n", { mode: 0o755 });
  try {
    const env = { ...process.env, DEBIAN_FRONTEND: "noninteractive" };
    const install = (pkg: string): boolean =>
      spawnSync("apt-get", ["install", "-y", "--no-install-recommends", pkg], {
        env,
        stdio: "inherit",
      }).status === 0;
    if (!install("nginx-light") && !install("nginx")) {
      spawnSync("apt-get", ["update"], { env, stdio: "inherit" });
      if (!install("nginx-light")) install("nginx");
    }
  } finally {
    if (ownPolicy) fs.rmSync(policy, { force: true });
  }
  const after = which("nginx");
  return after ? { path: after } : { path: null, why: "installing nginx with apt-get failed" };
}

export interface FileServer {
  readonly kind: "nginx" | "node:http";
  /** "http://127.0.0.1:PORT" serving `root` at "/". */
  readonly url: string;
  /** CPU-seconds its processes (an nginx master and its workers) have used so far. */
  cpuSeconds(): number;
  stop(): Promise<void>;
}

/** A process and its direct children (from /proc/<pid>/task/<tid>/children). */
function withChildren(pid: number): number[] {
  const out = [pid];
  try {
    for (const tid of fs.readdirSync(`/proc/${pid}/task`)) {
      const kids = fs.readFileSync(`/proc/${pid}/task/${tid}/children`, "utf8").trim();
      if (kids !== "") out.push(...kids.split(" ").map(Number));
    }
  } catch {
    // gone, or no children file
  }
  return out;
}

function cpuOfTree(pid: number | undefined): number {
  if (pid === undefined) return NaN;
  let total = 0;
  for (const p of withChildren(pid)) {
    try {
      total += cpuSecondsOf(p);
    } catch {
      // exited meanwhile
    }
  }
  return total;
}

/** nginx as a non-daemon child with a generated config, serving `root` on a free port. */
export async function startNginx(root: string): Promise<FileServer> {
  const nginx = ensureNginx();
  if (nginx.path === null) throw new Error(`nginx unavailable: ${nginx.why}`);
  const port = await freePort();
  const dir = tempDir("nginx");
  const conf = path.join(dir, "nginx.conf");
  const temps = ["client_body", "proxy", "fastcgi", "uwsgi", "scgi"]
    .map((t) => `  ${t}_temp_path ${path.join(dir, t)};`)
    .join("\n");
  fs.writeFileSync(
    conf,
    `${isRoot() ? "user root;\n" : ""}daemon off;
master_process on;
worker_processes auto;
pid ${path.join(dir, "nginx.pid")};
error_log ${path.join(dir, "error.log")} warn;
events { worker_connections 1024; }
http {
  access_log off;
  sendfile on;
  tcp_nopush on;
  keepalive_requests 1000000;
  default_type application/octet-stream;
${temps}
  server {
    listen 127.0.0.1:${port};
    root ${root};
    location / { }
  }
}
`,
  );
  const child = track(
    spawn(nginx.path, ["-c", conf, "-p", dir, "-e", path.join(dir, "error.log")], {
      stdio: ["ignore", "ignore", "pipe"],
      detached: true,
    }),
    true,
  );
  let err = "";
  child.stderr!.on("data", (c: Buffer) => (err += c.toString("utf8")));
  let stopped: Promise<void> | null = null;
  const stop = (): Promise<void> =>
    (stopped ??= (async () => {
      await stopChild(child, "SIGQUIT");
      removeDir(dir);
    })());
  onCleanup(`stop nginx on port ${port}`, stop);
  try {
    await Promise.race([
      waitForPort(port),
      new Promise((_, reject) =>
        child.once("exit", (code) => reject(new Error(`nginx exited (${code}): ${err}`))),
      ),
    ]);
  } catch (e) {
    await stop();
    throw e;
  }
  return {
    kind: "nginx",
    url: `http://127.0.0.1:${port}`,
    cpuSeconds: () => cpuOfTree(child.pid),
    stop,
  };
}

// A bare node:http static file server (GET/HEAD, no ranges), for when nginx cannot be had.
const NODE_FILE_SERVER = `
const http = require("node:http"), fs = require("node:fs"), path = require("node:path");
const root = process.argv[1];
const srv = http.createServer((req, res) => {
  const file = path.join(root, decodeURIComponent(new URL(req.url, "http://x").pathname));
  if (!file.startsWith(root + path.sep)) { res.writeHead(403).end(); return; }
  fs.stat(file, (err, st) => {
    if (err || !st.isFile()) { res.writeHead(404).end(); return; }
    res.writeHead(200, { "content-type": "application/octet-stream", "content-length": st.size });
    if (req.method === "HEAD") { res.end(); return; }
    fs.createReadStream(file, { highWaterMark: 1 << 20 }).pipe(res);
  });
});
srv.listen(0, "127.0.0.1", () => process.stdout.write(srv.address().port + "\\n"));
`;

export async function startNodeFileServer(root: string): Promise<FileServer> {
  const { child, port, stop } = await startScriptServer("node:http file server", NODE_FILE_SERVER, [
    root,
  ]);
  return {
    kind: "node:http",
    url: `http://127.0.0.1:${port}`,
    cpuSeconds: () => cpuOfTree(child.pid),
    stop,
  };
}

/** nginx if it can be had, else the node:http server. */
export async function startFileServer(root: string, report: Report): Promise<FileServer> {
  try {
    return await startNginx(root);
  } catch (err) {
    report.note(`nginx unavailable (${String(err)}); serving with node:http instead`);
    return startNodeFileServer(root);
  }
}

// The reference: answers every POST with the fixed bytes for its method, after reading
// the request body (as any server must). Nothing else.
const BARE_SERVER = `
const http = require("node:http");
const status = Buffer.from(process.argv[1], "base64");
const echo = Buffer.from(process.argv[2], "base64");
const srv = http.createServer((req, res) => {
  const chunks = [];
  req.on("data", (c) => chunks.push(c));
  req.on("end", () => {
    const body = Buffer.concat(chunks).toString("latin1");
    const out = body.includes("<methodName>status<") ? status : echo;
    res.writeHead(200, { "content-type": "text/xml; charset=utf-8", "content-length": out.length });
    res.end(out);
  });
});
srv.keepAliveTimeout = 60000;
srv.listen(0, "127.0.0.1", () => process.stdout.write(srv.address().port + "\\n"));
`;

export interface BareRpcServer {
  readonly url: string;
  readonly pid: number;
  stop(): Promise<void>;
}

/**
 * The bare node:http server in a process of its own, answering status() with `status`
 * and any other call with `echo`: the limit for the RPC benchmarks, and in
 * rpc-under-download and journal a server that does nothing else, to tell what a
 * download or a build costs the machine from what it costs the builder.
 */
export async function startBareRpcServer(status: Buffer, echo: Buffer): Promise<BareRpcServer> {
  const { child, port, stop } = await startScriptServer("bare server", BARE_SERVER, [
    status.toString("base64"),
    echo.toString("base64"),
  ]);
  return { url: `http://127.0.0.1:${port}`, pid: child.pid!, stop };
}

/**
 * `node -e script args…` in a process group of its own, stopped at the latest when the
 * benchmark ends; resolves once it has written the port it listens on.
 */
async function startScriptServer(
  name: string,
  script: string,
  args: readonly string[],
): Promise<{ child: ChildProcess; port: string; stop: () => Promise<void> }> {
  const child = track(
    spawn(process.execPath, ["-e", script, ...args], {
      stdio: ["ignore", "pipe", "inherit"],
      detached: true,
    }),
    true,
  );
  const stop = (): Promise<void> => stopChild(child);
  onCleanup(`stop the ${name}`, stop);
  return { child, port: await firstLine(child), stop };
}

/** The first line a child writes to stdout (e.g. the port it listens on). */
export function firstLine(child: ChildProcess, timeoutMs = 20_000): Promise<string> {
  return new Promise((resolve, reject) => {
    let buf = "";
    const timer = setTimeout(() => reject(new Error("child wrote no line")), timeoutMs);
    child.stdout!.on("data", (c: Buffer) => {
      buf += c.toString("utf8");
      const nl = buf.indexOf("\n");
      if (nl >= 0) {
        clearTimeout(timer);
        resolve(buf.slice(0, nl).trim());
      }
    });
    child.once("exit", (code) => {
      clearTimeout(timer);
      reject(new Error(`child exited (${code}) before writing a line`));
    });
  });
}

/** Write back dirty pages so one run's writeback does not land in the next run's time. */
export function syncDisks(): void {
  execFileSync("sync");
}

/**
 * Two figures for latencies under some load against the same calls without it: p99
 * (target: at most `maxRatio` times the unloaded p99) and worst (target: `worstMs`).
 */
export function addLatencyFigures(
  report: Report,
  opts: {
    readonly name: string;
    readonly loaded: readonly number[];
    readonly unloaded: readonly number[];
    readonly refName: string;
    readonly maxRatio: number;
    readonly worstMs: number;
  },
): void {
  const p99 = percentile(opts.loaded, 99);
  const refP99 = percentile(opts.unloaded, 99);
  report.add({
    name: `${opts.name}_p99`,
    value: p99,
    unit: "ms",
    ref: { name: opts.refName, value: refP99 },
    target: atMostRatio(p99 / refP99, opts.maxRatio),
    samples: opts.loaded.length,
  });
  report.add({
    name: `${opts.name}_worst`,
    value: max(opts.loaded),
    unit: "ms",
    ref: { name: opts.refName, value: max(opts.unloaded) },
    target: atMost(max(opts.loaded), opts.worstMs, "ms"),
    samples: opts.loaded.length,
  });
}

// ---------------------------------------------------------------------------------------
// CPU time, from /proc: what a process (all its threads) or our waited-for children used.
// Unlike wall time it barely moves with the machine's load.

const TICKS_PER_S = 100; // USER_HZ on Linux

/** CPU-seconds (user + system) a running process has used so far. */
export function cpuSecondsOf(pid: number): number {
  const stat = fs.readFileSync(`/proc/${pid}/stat`, "utf8");
  // Fields after the command name (which may hold spaces) start at ")".
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return (Number(fields[11]) + Number(fields[12])) / TICKS_PER_S;
}

/**
 * CPU-seconds used by the children of a process (this one by default) that have exited
 * and been waited for: the builder's commands are its spawn helper's children.
 */
export function childCpuSeconds(pid: number | "self" = "self"): number {
  const stat = fs.readFileSync(`/proc/${pid}/stat`, "utf8");
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return (Number(fields[13]) + Number(fields[14])) / TICKS_PER_S;
}

/** Run a command to its end; its wall milliseconds and CPU-seconds. Throws on failure. */
export function runMeasured(
  argv: readonly string[],
  opts: { stdout?: "ignore" | "pipe" } = {},
): Promise<{ ms: number; cpuS: number; stdout: string }> {
  return new Promise((resolve, reject) => {
    const cpu0 = childCpuSeconds();
    const t0 = performance.now();
    const child = track(
      spawn(argv[0]!, argv.slice(1), { stdio: ["ignore", opts.stdout ?? "pipe", "pipe"] }),
    );
    let out = "";
    let err = "";
    child.stdout?.on("data", (c: Buffer) => (out += c.toString()));
    child.stderr!.on("data", (c: Buffer) => (err += c.toString()));
    child.once("error", reject);
    child.once("close", (code) => {
      const ms = performance.now() - t0;
      if (code !== 0) reject(new Error(`${argv.join(" ")}: exit ${code}: ${err.trim()}`));
      else resolve({ ms, cpuS: childCpuSeconds() - cpu0, stdout: out });
    });
  });
}

/** The load average over the last minute, and the three figures as /proc/loadavg has them. */
export function loadAverage(): { one: number; text: string } {
  const text = fs.readFileSync("/proc/loadavg", "utf8").split(" ").slice(0, 3).join(" ");
  return { one: Number(text.split(" ")[0]), text };
}
