// The reference worker: Debian's Python `buildbot-worker`, configured for the msgpack
// protocol (its Worker takes protocol='msgpack_experimental_v7' since 3.x), started as a
// child process in its own process group. Benchmarks run it beside buildd on one
// master; the master harness's own test uses it to check the master side without us.

import fs from "node:fs";
import path from "node:path";
import {
  DIE_WITH_PARENT,
  removeDir,
  runTool,
  sleep,
  spawnGroup,
  tempDir,
  type GroupChild,
} from "./buildbot-master.js";

export interface PythonWorkerOptions {
  readonly masterPort: number;
  readonly name: string;
  readonly password: string;
  /** Its directory; default: a new temporary one, removed at stop(). */
  readonly basedir?: string;
  /** Files of info/ (sent to the master as worker info), e.g. `{ capabilities: "{…}" }`. */
  readonly info?: Readonly<Record<string, string>>;
  /** Longest wait between reconnection attempts, in seconds; default 2 (upstream: 300). */
  readonly maxDelay?: number;
}

export interface PythonWorker {
  readonly basedir: string;
  readonly pid: number;
  /** Its twistd.log so far. */
  log(): string;
  /** Stop it (SIGTERM, then SIGKILL for its group) and remove a directory it made. */
  stop(): Promise<void>;
}

/**
 * Create the worker's directory (`buildbot-worker create-worker`) and start it. It
 * connects to 127.0.0.1:masterPort on its own; wait for that with the master's
 * waitForWorker(). Runs as whoever runs the tests, root included.
 */
export async function startPythonWorker(opts: PythonWorkerOptions): Promise<PythonWorker> {
  const owned = opts.basedir === undefined;
  const basedir = opts.basedir ?? tempDir("buildbot-worker-");
  let proc: GroupChild;
  try {
    runTool(
      "buildbot-worker",
      [
        "create-worker",
        "--quiet",
        "--force",
        "--protocol=msgpack_experimental_v7",
        `--maxdelay=${opts.maxDelay ?? 2}`,
        basedir,
        `127.0.0.1:${opts.masterPort}`,
        opts.name,
        opts.password,
      ],
      basedir,
    );
    fs.appendFileSync(path.join(basedir, "buildbot.tac"), DIE_WITH_PARENT);
    for (const [name, text] of Object.entries(opts.info ?? {})) {
      fs.writeFileSync(path.join(basedir, "info", name), text);
    }
    proc = spawnGroup("buildbot-worker", ["start", "--nodaemon", basedir], basedir);
    // It forks nothing and writes its log at once; fail early if it dies at start-up.
    await sleep(200);
    if (proc.exited()) throw new Error(`buildbot-worker exited at start-up:\n${proc.output()}`);
  } catch (e) {
    if (owned) removeDir(basedir);
    throw e;
  }
  const logFile = path.join(basedir, "twistd.log");
  return {
    basedir,
    pid: proc.pid,
    log: () => (fs.existsSync(logFile) ? fs.readFileSync(logFile, "utf8") : proc.output()),
    async stop() {
      await proc.stop();
      if (owned) removeDir(basedir);
    },
  };
}
