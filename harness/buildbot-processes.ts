// The processes of the Buildbot test scaffolding — the master (buildbot-master.ts) and
// the Python worker (buildbot-python-worker.ts): Debian's Python with the scaffolding on
// its path, each child in a process group of its own, killed with every descendant at
// stop or when the test process exits, and the temporary directories they run in.

import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { ROOT } from "./dist.js";

const SCAFFOLDING = path.join(ROOT, "harness/buildbot");
const HELPERS = path.join(ROOT, "contrib/buildbot");

/** Why the Buildbot tests cannot run here, or false when they can. */
export function buildbotMissing(): string | false {
  for (const tool of ["buildbot", "buildbot-worker"]) {
    if (spawnSync(tool, ["--version"], { stdio: "ignore" }).status !== 0) {
      return `${tool} is not installed (scripts/test-deps.sh installs Debian's)`;
    }
  }
  return false;
}

/** The Python the `buildbot` command runs with (its #! line): for scripts importing buildbot. */
export function buildbotPython(): string {
  const which = spawnSync("sh", ["-c", "command -v buildbot"], { encoding: "utf8" });
  const script = which.stdout.trim();
  const line = script ? fs.readFileSync(script, "utf8").split("\n")[0]! : "";
  const m = /^#!\s*(\S+)(?:\s+(\S+))?/.exec(line);
  if (!m) return "python3";
  return m[1]!.endsWith("/env") && m[2] ? m[2] : m[1]!;
}

// ---------------------------------------------------------------------------------------
// Child processes: each leads a process group of its own, which stop() and the exit of
// this process kill whole while its leader lives, and the processes below it that lead
// groups of their own (the Python worker starts each command in a new group) one by one,
// each only if it is still the process it was. The Python side also asks the
// kernel to kill it when its parent dies (PR_SET_PDEATHSIG), which covers this process
// being killed outright.

/** Python for a .tac file: die with the process that started us. */
export const DIE_WITH_PARENT = `
import ctypes as _ctypes, signal as _signal
_ctypes.CDLL(None).prctl(1, int(_signal.SIGKILL))  # PR_SET_PDEATHSIG
`;

export interface GroupChild {
  readonly child: ChildProcess;
  readonly pid: number;
  /** stdout and stderr so far (twistd writes its log to a file; this catches crashes). */
  output(): string;
  /** Whether it has exited. */
  exited(): boolean;
  /** SIGTERM the group, SIGKILL it after `graceMs`; resolves once the leader is gone. */
  stop(graceMs?: number): Promise<void>;
}

const liveGroups = new Set<number>();
const liveDirs = new Set<string>();
process.once("exit", () => {
  for (const pid of liveGroups) killGroup(pid, "SIGKILL");
  for (const dir of liveDirs) fs.rmSync(dir, { recursive: true, force: true });
});

function killGroup(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(-pid, signal);
  } catch {
    // gone already
  }
}

/** A temporary directory removed at the latest when this process exits. */
export function tempDir(prefix: string): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  liveDirs.add(dir);
  return dir;
}

export function removeDir(dir: string): void {
  fs.rmSync(dir, { recursive: true, force: true });
  liveDirs.delete(dir);
}

/** The environment of the Python processes: our modules importable, no .pyc files left. */
export function pythonEnv(): NodeJS.ProcessEnv {
  const paths = [SCAFFOLDING, HELPERS, process.env["PYTHONPATH"]].filter(Boolean);
  return { ...process.env, PYTHONPATH: paths.join(":"), PYTHONDONTWRITEBYTECODE: "1" };
}

/** A process as /proc names it: its pid and its start time, which a reused pid does not share. */
interface ProcessId {
  readonly pid: number;
  readonly start: string;
}

/** Fields of /proc/PID/stat after "(comm)", which may hold spaces and parentheses. */
function statFields(pid: number): string[] | null {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, "utf8");
    return stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  } catch {
    return null; // gone meanwhile
  }
}

/** Every process below `pid`, from the parent ids in /proc. */
function descendants(pid: number): ProcessId[] {
  const children = new Map<number, ProcessId[]>();
  for (const entry of fs.readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    const f = statFields(Number(entry));
    if (f === null) continue;
    // state ppid pgrp session tty tpgid flags minflt cminflt majflt cmajflt utime stime
    // cutime cstime priority nice threads itrealvalue starttime
    const ppid = Number(f[1]);
    children.set(ppid, [...(children.get(ppid) ?? []), { pid: Number(entry), start: f[19]! }]);
  }
  const found: ProcessId[] = [];
  for (let queue = [pid]; queue.length > 0;) {
    const next = children.get(queue.shift()!) ?? [];
    found.push(...next);
    queue.push(...next.map((p) => p.pid));
  }
  return found;
}

/**
 * SIGKILL `p` if it is still the process it was. Never a process group or a bare pid
 * once its process may be gone: the kernel reuses pids, and the test runner's own
 * children lead groups of their own, so a stale kill would hit another test's process.
 */
function killIfSame(p: ProcessId): void {
  if (statFields(p.pid)?.[19] !== p.start) return;
  try {
    process.kill(p.pid, "SIGKILL");
  } catch {
    // gone meanwhile
  }
}

export function spawnGroup(command: string, args: string[], cwd: string): GroupChild {
  const child = spawn(command, args, {
    cwd,
    env: pythonEnv(),
    detached: true,
    stdio: ["ignore", "pipe", "pipe"],
  });
  const pid = child.pid;
  if (pid === undefined) throw new Error(`could not start ${command}`);
  liveGroups.add(pid);
  let out = "";
  child.stdout?.on("data", (c: Buffer) => (out += c.toString("utf8")));
  child.stderr?.on("data", (c: Buffer) => (out += c.toString("utf8")));
  let done = false;
  const gone = new Promise<void>((resolve) =>
    child.once("exit", () => {
      done = true;
      // From now on its pid may be reused: never signalled again by that number.
      liveGroups.delete(pid);
      resolve();
    }),
  );
  return {
    child,
    pid,
    output: () => out,
    exited: () => done,
    async stop(graceMs = 10_000) {
      // Its processes, taken while the leader still lives: whatever it leaves, in its
      // group or in groups of their own (the Python worker's commands), is among them.
      const below = done ? [] : descendants(pid);
      if (!done) killGroup(pid, "SIGTERM");
      const timer = setTimeout(() => {
        if (!done) killGroup(pid, "SIGKILL");
      }, graceMs);
      await gone;
      clearTimeout(timer);
      below.forEach(killIfSame);
    },
  };
}

/** Run a short command to completion; throws with its output when it fails. */
export function runTool(command: string, args: string[], cwd: string): void {
  const r = spawnSync(command, args, { cwd, env: pythonEnv(), encoding: "utf8" });
  if (r.status !== 0) {
    throw new Error(`${command} ${args.join(" ")} failed (${r.status}):\n${r.stdout}${r.stderr}`);
  }
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
