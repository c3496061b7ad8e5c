// The start-up side effects the configuration asks for, kept out of loadConfig() so that
// reading and validating the file stays pure: the composition root (startBuilder) calls
// ensureDirectories() before anything opens or locks the state directory or the cache,
// and hostArchitecture() for what info() reports and builds use.

import fs from "node:fs";
import type { Config } from "./config/config.js";
import { BuilddError } from "./errors.js";
import type { Logger } from "./logger.js";
import type { ProcessRunner } from "./process/runner.js";

/** `[builder] architecturetag`, or this machine's when it is not set. */
export async function hostArchitecture(config: Config, runner: ProcessRunner): Promise<string> {
  return config.builder.architecturetag ?? defaultArchitecture(runner);
}

/** This machine's Debian architecture name. */
export async function defaultArchitecture(runner: ProcessRunner): Promise<string> {
  // No PID namespace: dpkg starts nothing, and this runs during start-up, before any
  // build, where probing for namespaces would only add to the time to the first call.
  const r = await runner.capture({
    argv: ["dpkg", "--print-architecture"],
    isolation: { pid: false },
    timeoutMs: 10_000,
  });
  const arch = r.stdout.trim();
  if (r.exitCode === 0 && arch !== "") return arch;
  // No dpkg (not a Debian machine): Node's names for the common cases match Debian's.
  const map: Record<string, string> = {
    x64: "amd64",
    arm64: "arm64",
    ia32: "i386",
    arm: "armhf",
  };
  return map[process.arch] ?? process.arch;
}

/**
 * Create statedir and filecache when missing, if their parent exists (a missing parent
 * is more likely a typo than a wish for a new tree). Errors name the key, like the
 * configuration's own.
 */
export function ensureDirectories(config: Config): void {
  ensureDirectory(config, "[builder] statedir", config.builder.statedir);
  ensureDirectory(config, "[builder] filecache", config.builder.filecache);
  if (config.buildbot !== null) {
    ensureDirectory(config, "[buildbot] basedir", config.buildbot.basedir);
    ensureDirectory(config, "[buildbot] shared_cache", config.buildbot.sharedCache);
  }
}

function ensureDirectory(config: Config, label: string, dir: string): void {
  const fail = (what: string): BuilddError =>
    new BuilddError(
      "BUILDD_ERR_CONFIG",
      `${config.file ?? "built-in defaults"}: ${label} ${dir} ${what}`,
    );
  let st: fs.Stats | undefined;
  try {
    st = fs.statSync(dir);
  } catch {
    // Missing (or unreadable): try to create it below, which says which.
  }
  if (st) {
    if (!st.isDirectory()) throw fail("is not a directory");
    return;
  }
  try {
    fs.mkdirSync(dir);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? String(err);
    throw fail(`does not exist and cannot be created (${code})`);
  }
}

/**
 * The unprivileged user host `script` steps run as ([build] user): made sure of at
 * start-up when the builder runs as root (a system user without a home or a login
 * shell, as `buildd init` would create), so that no step ever runs as root for want of
 * it. A builder that is not root cannot switch users and runs steps as itself.
 */
export async function ensureBuildUser(
  config: Config,
  runner: ProcessRunner,
  log: Logger,
): Promise<BuildUser | null> {
  if (process.getuid?.() !== 0) return null;
  const user = config.build.user;
  const existing = await lookUpUser(runner, user);
  if (existing) return existing;
  const made = await runner.capture({
    argv: [
      "useradd",
      "--system",
      "--no-create-home",
      "--home-dir",
      "/nonexistent",
      "--shell",
      "/usr/sbin/nologin",
      user,
    ],
    isolation: { pid: false },
  });
  // Another builder starting at the same moment may have created it first.
  const raced = made.exitCode !== 0 && (await lookUpUser(runner, user)) !== null;
  if (made.exitCode !== 0 && !raced) {
    throw new BuilddError(
      "BUILDD_ERR_CONFIG",
      `${config.file ?? "built-in defaults"}: [build] user ${user} does not exist and could not be created (${made.stderr.trim() || made.error || `exit status ${made.exitCode}`}); create it (useradd --system ${user}) or name another`,
    );
  }
  if (!raced)
    log.warn({ user }, "created the system user that host build steps run as ([build] user)");
  const created = await lookUpUser(runner, user);
  if (created) return created;
  throw new BuilddError(
    "BUILDD_ERR_CONFIG",
    `[build] user ${user} was created but getent passwd does not find it; check /etc/nsswitch.conf`,
  );
}

/** The build user and its ids, resolved once at start-up so that no step needs to ask. */
export interface BuildUser {
  readonly user: string;
  readonly uid: number;
  /** Its primary group. */
  readonly gid: number;
}

/**
 * The user and its ids from one `getent passwd` (the system's user database, NSS
 * included, as id(1) reads it), or null if there is no such user. One process at
 * start-up instead of three calls of id(1) in two rounds.
 */
async function lookUpUser(runner: ProcessRunner, user: string): Promise<BuildUser | null> {
  const r = await runner.capture({ argv: ["getent", "passwd", user], isolation: { pid: false } });
  // 2: no such user. Anything else that is not a passwd line is the system's failure.
  if (r.exitCode === 2) return null;
  // name:password:uid:gid:gecos:home:shell
  const fields = r.stdout.trim().split(":");
  const ids = fields.slice(2, 4);
  if (
    r.exitCode !== 0 ||
    fields.length !== 7 ||
    fields[0] !== user ||
    !ids.every((id) => /^\d+$/.test(id))
  ) {
    throw new BuilddError(
      "BUILDD_ERR_CONFIG",
      `[build] user ${user}: cannot read its user and group ids (getent passwd: ${r.stderr.trim() || r.error || `exit status ${r.exitCode}`})`,
    );
  }
  return { user, uid: Number(ids[0]), gid: Number(ids[1]) };
}
