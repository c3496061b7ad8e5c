// Finding and killing processes by PID namespace (and, as the weaker fallback, by
// process group), using /proc of the daemon's own namespace.
//
// A namespace is named by its /proc/<pid>/ns/pid link, e.g. "pid:[4026532179]". Zombies
// have no namespace links any more; they are dead already and are not reported.
//
// That name alone is not an identity: the kernel reuses a freed namespace's inode number
// (and numbers start afresh at every boot). What stays true of one namespace is its PID 1:
// the kernel kills every other member when PID 1 exits, and PID 1 only finishes exiting
// once they are gone. So a namespace is identified by PID 1's pid and start time (and the
// boot), and it is still the one recorded exactly while that process is alive.

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

/** Who a PID namespace is, in a form that survives a restart of the daemon (see above). */
export interface NamespaceIdentity {
  /** The namespace link, "pid:[…]". */
  readonly ns: string;
  /** Its PID 1, as a pid of the daemon's namespace. */
  readonly init: number;
  /** PID 1's start time (clock ticks after boot, /proc/<pid>/stat field 22). */
  readonly initStart: string;
  /** /proc/sys/kernel/random/boot_id when it was recorded. */
  readonly bootId: string;
}

let ownBootId: string | undefined;
/** This boot's id: read once, it cannot change while the daemon runs. */
function bootId(): string {
  ownBootId ??= readFileSync("/proc/sys/kernel/random/boot_id", "latin1").trim();
  return ownBootId;
}

function startTime(pid: number): string | null {
  return statFields(pid)?.[19] ?? null;
}

/** The identity of the namespace whose PID 1 is `init`; null if it is gone already. */
export function identifyNamespace(init: number): NamespaceIdentity | null {
  const ns = pidNamespaceOf(init);
  const initStart = startTime(init);
  if (ns === null || initStart === null) return null;
  // Read again: the pid could have been reused between the two reads.
  if (pidNamespaceOf(init) !== ns) return null;
  return { ns, init, initStart, bootId: bootId() };
}

/** True while the recorded namespace still exists: its PID 1 is the same living process. */
export function isSameNamespace(id: NamespaceIdentity): boolean {
  if (id.bootId !== bootId()) return false;
  const fields = statFields(id.init);
  if (fields === null || !isLiving(fields[0])) return false;
  return fields[19] === id.initStart && pidNamespaceOf(id.init) === id.ns;
}

/**
 * Signal every process of the recorded namespace, if it is still that namespace (never a
 * namespace that merely got the same inode number); returns the pids signalled. PID 1 is
 * looked at right before the scan: while it lives the namespace cannot be freed, and the
 * scan takes milliseconds, far less than emptying, freeing and reusing a namespace.
 */
export function signalRecordedNamespace(id: NamespaceIdentity, signal: NodeJS.Signals): number[] {
  if (!isSameNamespace(id)) return [];
  return signalNamespace(id.ns, signal);
}

/** Members of the recorded namespace (none once its PID 1 is gone: then it is empty). */
export function processesInRecordedNamespace(id: NamespaceIdentity): number[] {
  if (!isSameNamespace(id)) return [];
  const pids = processesInNamespace(id.ns);
  // PID 1 gone during the scan: the namespace emptied, what was seen are other processes'.
  return isSameNamespace(id) ? pids : [];
}

/** A /proc/<pid>/stat state of a process that exists and is not a zombie. */
function isLiving(state: string | undefined): boolean {
  return state !== undefined && state !== "Z" && state !== "X";
}

/** True while the process exists and is not a zombie. */
export function isAlive(pid: number): boolean {
  return isLiving(statFields(pid)?.[0]);
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
