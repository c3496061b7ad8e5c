// Starts a real builder for tests: the same code `buildd serve` runs, on port 0, with a
// temporary config, cache and state directory. Two ways:
//   - startTestBuilder(): in this process (fast; logs captured for assertions);
//   - startBuilderProcess(): as a child process running src/cli.ts, so a test can
//     SIGKILL it and start it again on the same directories (restart tests).

import { spawn, type ChildProcess } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { Writable } from "node:stream";
import { fileURLToPath } from "node:url";
import { loadConfig } from "../src/config.js";
import { createLogger } from "../src/logger.js";
import { startBuilder } from "../src/app.js";
import { createClient, type RpcClient } from "./client.js";

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
  const running = await startBuilder(config, log);
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
  logText(): string;
  /** Send a signal and wait for the process to exit; returns its exit code or signal. */
  kill(signal?: NodeJS.Signals): Promise<number | string>;
}

/** Start `buildd serve` as a child process on the given directories (reused on restart). */
export async function startBuilderProcess(dirs: BuilderDirs): Promise<BuilderProcess> {
  const child = spawn(
    process.execPath,
    ["--import", "tsx", path.join(ROOT, "src/cli.ts"), "serve", "--config", dirs.configFile],
    { cwd: ROOT, stdio: ["ignore", "pipe", "pipe"] },
  );
  let out = "";
  const exited = new Promise<number | string>((resolve) =>
    child.once("exit", (code, signal) => resolve(signal ?? code ?? -1)),
  );
  const url = await new Promise<string>((resolve, reject) => {
    // The URL is read from the "builder listening" line, logged at info: a config with
    // [log] level above info cannot be started this way.
    const timer = setTimeout(() => {
      child.kill("SIGKILL");
      reject(new Error(`builder did not start (is [log] level info or lower?):\n${out}`));
    }, 20_000);
    const onData = (chunk: Buffer): void => {
      out += chunk.toString("utf8");
      const m =
        /"url":"(http:\/\/[^"]+)"[^\n]*"builder listening"|"builder listening"[^\n]*"url":"(http:\/\/[^"]+)"/.exec(
          out,
        );
      const found = m?.[1] ?? m?.[2];
      if (found) {
        clearTimeout(timer);
        resolve(found);
      }
    };
    child.stdout.on("data", onData);
    child.stderr.on("data", (c: Buffer) => (out += c.toString("utf8")));
    void exited.then(() => {
      clearTimeout(timer);
      reject(new Error(`builder exited during start-up:\n${out}`));
    });
  });
  return {
    ...dirs,
    url,
    child,
    client: createClient(url),
    logText: () => out,
    async kill(signal: NodeJS.Signals = "SIGTERM") {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal);
      return exited;
    },
  };
}
