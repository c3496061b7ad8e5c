// Turning an Isolation into the command line that provides it:
//   setpriv --pdeathsig SIGKILL -- unshare --pid --fork --kill-child --mount-proc
//     [--mount] [--net] -- [wrap...] argv...
// When PID 1 exits or is SIGKILLed, the kernel kills every other process in the namespace,
// including ones that called setsid, double-forked or ignore SIGTERM, so nothing a
// command started can outlive it. unshare only exits after that teardown (its waitpid on
// PID 1 returns once the namespace is empty), so its exit means "the namespace is gone".

import { existsSync } from "node:fs";
import { execaSync } from "execa";
import { DEFAULT_PATH, defaultEnv } from "./environment.js";
import type { Isolation } from "./spec.js";

const UNSHARE_FLAGS = ["--pid", "--fork", "--kill-child", "--mount-proc"] as const;
const PDEATHSIG: readonly string[] = existsSync("/usr/bin/setpriv")
  ? ["/usr/bin/setpriv", "--pdeathsig", "SIGKILL", "--"]
  : [];

export interface IsolationSupport {
  ok: boolean;
  /** Absolute path of unshare when ok; why not otherwise. */
  detail: string;
}

let support: IsolationSupport | undefined;

/**
 * Whether PID namespaces work here (root, or user namespaces allowed). Probed once, by
 * running `unshare ... -- true`, and cached for the daemon's life.
 */
export function isolationSupport(): IsolationSupport {
  if (support) return support;
  const unshare = DEFAULT_PATH.split(":")
    .map((dir) => `${dir}/unshare`)
    .find((path) => existsSync(path));
  if (!unshare) return (support = { ok: false, detail: "unshare not found" });
  const probe = execaSync(unshare, [...UNSHARE_FLAGS, "--", "true"], {
    env: defaultEnv(),
    extendEnv: false,
    stdin: "ignore",
    stdout: "ignore",
    reject: false,
    timeout: 10_000,
  });
  if (probe.exitCode === 0) return (support = { ok: true, detail: unshare });
  const why = probe.stderr?.trim() || probe.originalMessage || probe.shortMessage || "failed";
  return (support = { ok: false, detail: why });
}

export interface CommandLine {
  /** What to spawn. */
  readonly command: readonly string[];
  /** True when the command runs in its own PID namespace. */
  readonly isolated: boolean;
  /** Set when a PID namespace was asked for but cannot be had here: say so in the log. */
  readonly fallback: string | null;
}

export function commandLine(
  argv: readonly string[],
  isolation: Isolation = {},
  wrap: readonly string[] = [],
): CommandLine {
  const command = [...wrap, ...argv];
  if (isolation.pid === false) return { command, isolated: false, fallback: null };
  const iso = isolationSupport();
  if (!iso.ok) {
    return {
      command,
      isolated: false,
      fallback:
        `PID namespaces unavailable (${iso.detail}); falling back to killing by process ` +
        `group, which misses processes that leave the group`,
    };
  }
  const flags = [
    ...UNSHARE_FLAGS,
    ...(isolation.mount ? ["--mount"] : []),
    ...(isolation.network ? ["--net"] : []),
  ];
  // setpriv --pdeathsig: if the builder itself dies (even by SIGKILL), the kernel kills
  // unshare, whose --kill-child then takes the whole namespace down. A command can never
  // outlive the daemon that would have to report on it.
  return {
    command: [...PDEATHSIG, iso.detail, ...flags, "--", ...command],
    isolated: true,
    fallback: null,
  };
}
