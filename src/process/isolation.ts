// Turning an Isolation into the command line that provides it:
//   setpriv --pdeathsig SIGKILL -- unshare --pid --fork --kill-child --mount-proc
//     [--mount] [--net] -- [wrap...] argv...
// When PID 1 exits or is SIGKILLed, the kernel kills every other process in the namespace,
// including ones that called setsid, double-forked or ignore SIGTERM, so nothing a
// command started can outlive it. unshare only exits after that teardown (its waitpid on
// PID 1 returns once the namespace is empty), so its exit means "the namespace is gone".
//
// Whether PID namespaces work here is probed once, by the spawn helper as it starts
// (spawn-helper.ts), and handed in.

import { existsSync } from "node:fs";
import type { IsolationSupport } from "./spawn-messages.js";
import type { Isolation } from "./spec.js";

export const UNSHARE_FLAGS = ["--pid", "--fork", "--kill-child", "--mount-proc"] as const;
const PDEATHSIG: readonly string[] = existsSync("/usr/bin/setpriv")
  ? ["/usr/bin/setpriv", "--pdeathsig", "SIGKILL", "--"]
  : [];

export interface CommandLine {
  /** What to spawn. */
  readonly command: readonly string[];
  /** True when the command runs in its own PID namespace. */
  readonly isolated: boolean;
  /** Set when a PID namespace was asked for but cannot be had here: say so in the log. */
  readonly fallback: string | null;
}

export function commandLine(
  support: IsolationSupport,
  argv: readonly string[],
  isolation: Isolation = {},
  wrap: readonly string[] = [],
): CommandLine {
  const command = [...wrap, ...argv];
  if (isolation.pid === false) return { command, isolated: false, fallback: null };
  if (!support.ok) {
    return {
      command,
      isolated: false,
      fallback:
        `PID namespaces unavailable (${support.detail}); falling back to killing by process ` +
        `group, which misses processes that leave the group`,
    };
  }
  const flags = [
    ...UNSHARE_FLAGS,
    ...(isolation.mount ? ["--mount"] : []),
    ...(isolation.network ? ["--net"] : []),
  ];
  // setpriv --pdeathsig: if the spawn helper that spawned it ends, even by SIGKILL, the
  // kernel kills unshare, whose --kill-child then takes the whole namespace down. (The
  // helper also kills its commands itself when the builder goes away, and the builder
  // kills a lost helper's: a command never outlives what would report on it.)
  return {
    command: [...PDEATHSIG, support.detail, ...flags, "--", ...command],
    isolated: true,
    fallback: null,
  };
}
