// Finding and killing processes by PID namespace (and, as the weaker fallback, by
// process group), using /proc of the daemon's own namespace.
//
// A namespace is named by its /proc/<pid>/ns/pid link, e.g. "pid:[4026532179]". Zombies
// have no namespace links any more; they are dead already and are not reported.

import { readFileSync, readdirSync, readlinkSync } from "node:fs";
import { setTimeout as sleep } from "node:timers/promises";

export function pidNamespaceOf(pid: number): string | null {
  try {
    return readlinkSync(`/proc/${pid}/ns/pid`);
  } catch {
    return null;
  }
}

/** Every numeric entry of /proc. */
export function allPids(): number[] {
  const pids: number[] = [];
  for (const name of readdirSync("/proc")) {
    if (/^\d+$/.test(name)) pids.push(Number(name));
  }
  return pids;
}

export function processesInNamespace(ns: string): number[] {
  return allPids().filter((pid) => pidNamespaceOf(pid) === ns);
}

/** Fields of /proc/<pid>/stat after the command name (which may contain spaces and ')'). */
function statFields(pid: number): string[] | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "latin1");
    return stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  } catch {
    return null;
  }
}

/** True while the process exists and is not a zombie. */
export function isAlive(pid: number): boolean {
  const state = statFields(pid)?.[0];
  return state !== undefined && state !== "Z" && state !== "X";
}

/** Living members of a process group. */
export function processesInGroup(pgid: number): number[] {
  return allPids().filter((pid) => {
    const fields = statFields(pid);
    return fields !== null && fields[2] === String(pgid) && fields[0] !== "Z";
  });
}

/** Direct children of `pid` (all its threads'). */
export function childrenOf(pid: number): number[] {
  const children: number[] = [];
  let tasks: string[];
  try {
    tasks = readdirSync(`/proc/${pid}/task`);
  } catch {
    return [];
  }
  for (const tid of tasks) {
    try {
      const text = readFileSync(`/proc/${pid}/task/${tid}/children`, "latin1");
      for (const word of text.split(" ")) if (word !== "") children.push(Number(word));
    } catch {
      // Thread gone, or a kernel without CONFIG_PROC_CHILDREN: scan ppids instead.
      return allPids().filter((p) => statFields(p)?.[1] === String(pid));
    }
  }
  return children;
}

/**
 * The child `unshare --fork` creates (PID 1 of the new namespace). It appears shortly
 * after spawn, so poll; null if none shows up within `timeoutMs` (unshare failed, or the
 * command already exited).
 */
export async function nsChildPid(unsharePid: number, timeoutMs = 2000): Promise<number | null> {
  const deadline = Date.now() + timeoutMs;
  for (let delay = 1; ; delay = Math.min(delay * 2, 50)) {
    const [child] = childrenOf(unsharePid);
    if (child !== undefined) return child;
    if (!isAlive(unsharePid) || Date.now() >= deadline) return null;
    await sleep(delay);
  }
}

/** Send `signal` to each pid, ignoring ones already gone. */
export function signalAll(pids: readonly number[], signal: NodeJS.Signals): void {
  for (const pid of pids) {
    try {
      process.kill(pid, signal);
    } catch {
      // ESRCH: exited meanwhile.
    }
  }
}

/**
 * Signal every process in `ns`; returns the pids signalled. Each pid is killed right after
 * its namespace was read, which keeps small (Node has no pidfds) the window in which a
 * pid that exited could be reused by an unrelated process.
 */
export function signalNamespace(ns: string, signal: NodeJS.Signals): number[] {
  const hit: number[] = [];
  for (const pid of allPids()) {
    if (pidNamespaceOf(pid) !== ns) continue;
    hit.push(pid);
    signalAll([pid], signal);
  }
  return hit;
}

/** Poll until `check()` is true or `timeoutMs` passed; returns the last result. */
export async function waitFor(
  check: () => boolean,
  timeoutMs: number,
  stepMs = 20,
): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (check()) return true;
    if (Date.now() >= deadline) return false;
    await sleep(Math.min(stepMs, Math.max(1, deadline - Date.now())));
  }
}

/** The usual killRemaining(): by PID, skipping what has died meanwhile. */
export function killAlive(pids: readonly number[]): number[] {
  const alive = pids.filter(isAlive);
  signalAll(alive, "SIGKILL");
  return alive;
}
