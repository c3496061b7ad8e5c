// `buildd init DIR`: a ready-to-run builder directory, like Buildbot's create-worker. It
// writes DIR/buildd.conf listing every key of every section with its documentation and
// default (commented out), the directories inside DIR, and a generated [auth] password
// in a secrets file, DIR/secrets.conf (mode 0600), that buildd.conf names.
//
// Nothing existing is overwritten: both files are checked first and created with O_EXCL,
// so a refusal changes nothing.

import { randomBytes } from "node:crypto";
import fs from "node:fs";
import path from "node:path";
import { loadConfig } from "../config/config.js";
import { CONFIG_KEYS, type KeySpec } from "../config/keys.js";
import { isBuilddError } from "../errors.js";
import { ensureBuildUser } from "../host-setup.js";
import { createLogger } from "../logger.js";
import { processRunner } from "../process/runner.js";
import { CliError, usageError, wholeNumber } from "./errors.js";

export interface InitOptions {
  readonly bindhost: string;
  readonly port: string;
  /** false with --no-auth: no password, no authentication (as the reference). */
  readonly auth: boolean;
}

export const CONFIG_NAME = "buildd.conf";
export const SECRETS_NAME = "secrets.conf";

/** Comment lines of at most ~88 columns. */
function comment(text: string, width = 86): string[] {
  const out: string[] = [];
  let line = "";
  for (const word of text.split(/\s+/).filter(Boolean)) {
    if (line !== "" && line.length + 1 + word.length > width) {
      out.push(`# ${line}`);
      line = word;
    } else {
      line = line === "" ? word : `${line} ${word}`;
    }
  }
  if (line !== "") out.push(`# ${line}`);
  return out;
}

/** The commented file: `set` holds the keys given a value, every other key stays commented. */
export function configText(set: ReadonlyMap<string, string>, command = "buildd init"): string {
  const out: string[] = [
    `# buildd configuration, written by \`${command}\`. Every key of every section is listed`,
    "# with its default; a commented key has that default. Relative paths resolve against",
    "# this file's folder. See docs/configuration.md for the types and ranges.",
    "# Secret values ([auth] password, [buildbot] password) are in the secrets file named by",
    "# [builder] secrets; buildd refuses them here.",
  ];
  let section: string | null = null;
  // Grouped by section, in the order sections first appear: the table lists some keys
  // apart from their section's others, and a section written twice would leave an
  // operator looking for a key in the wrong block.
  const listed = CONFIG_KEYS.filter((k: KeySpec) => k.type.kind !== "ignored");
  const order = [...new Set(listed.map((k) => k.section))];
  const keys = order.flatMap((name) => listed.filter((k) => k.section === name));
  for (const spec of keys) {
    if (spec.section !== section) {
      section = spec.section;
      out.push("", `[${section}]`);
    }
    out.push("", ...comment(spec.doc));
    const value = set.get(`${spec.section}.${spec.key}`);
    if (value !== undefined) out.push(`${spec.key} = ${quoted(value)}`);
    else out.push(`# ${spec.key} = ${spec.default ?? ""}`.trimEnd());
  }
  out.push(
    "",
    "[capabilities]",
    "# What this worker offers beyond its architecture, one per line:",
    "# name [version] [key=value ...], e.g.",
    "# postgresql 15 port=5432 host=/var/run/postgresql",
    "",
    "[capability_env]",
    "# How a capability's properties become environment variables: name VAR=property ...",
    "# rabbitmq RMQ_BASE_URI=base_uri",
    "",
  );
  return out.join("\n");
}

/** Create a file that must not exist yet, with `mode` whatever the umask, and sync it. */
function writeNew(file: string, text: string, mode: number, command: string): void {
  let fd: number;
  try {
    fd = fs.openSync(file, "wx", mode);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === "EEXIST") throw exists(file, command);
    throw new CliError(`cannot create ${file} (${code ?? String(err)})`);
  }
  try {
    fs.fchmodSync(fd, mode);
    fs.writeSync(fd, text);
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
}

const exists = (file: string, command: string): CliError =>
  new CliError(
    `${file} already exists; ${command} does not overwrite it (edit it, or choose another directory)`,
  );

function secretsText(what: BuilderDirectory): string {
  const out = [
    `# buildd secrets, written by \`${what.command}\`; named by [builder] secrets in buildd.conf.`,
    "# Only secret keys go here. Keep it owned by the builder's user, mode 0600.",
  ];
  for (const [section, keys] of what.secrets) {
    out.push("", `[${section}]`);
    for (const [key, value] of keys) out.push(`${key} = ${quoted(value)}`);
  }
  out.push("");
  return out.join("\n");
}

/** A value as the INI reader takes it back exactly: double-quoted (JSON) unless plain. */
function quoted(value: string): string {
  return /^[^\s;#"'][^;#]*$/.test(value) && value.trim() === value ? value : JSON.stringify(value);
}

/** What a builder directory's two files hold: buildd.conf's set keys and the secrets. */
export interface BuilderDirectory {
  /** The command writing it, for the files' headers and messages. */
  readonly command: string;
  /** `section.key` → value, written uncommented in buildd.conf (the rest stays commented). */
  readonly set: ReadonlyMap<string, string>;
  /** `[section] key = value` lines of the secrets file; empty: none, and no [builder] secrets. */
  readonly secrets: ReadonlyMap<string, ReadonlyMap<string, string>>;
}

/**
 * Write DIR/buildd.conf (and DIR/secrets.conf, mode 0600, when there are secrets) and
 * check that the result loads as `buildd serve` will load it; nothing existing is
 * overwritten and a refusal leaves nothing behind. Returns both paths.
 */
export function writeBuilderDirectory(
  dir: string,
  what: BuilderDirectory,
): { file: string; secretsFile: string | null } {
  const root = path.resolve(dir);
  const file = path.join(root, CONFIG_NAME);
  const secretsFile = what.secrets.size > 0 ? path.join(root, SECRETS_NAME) : null;
  const set = new Map(what.set);
  if (secretsFile !== null) set.set("builder.secrets", SECRETS_NAME);
  for (const f of [file, secretsFile])
    if (f !== null && fs.existsSync(f)) throw exists(f, what.command);
  // The first directory mkdir made, if any: removed again on a refusal.
  const made = fs.mkdirSync(root, { recursive: true, mode: 0o750 });
  const written: string[] = [];
  try {
    if (secretsFile !== null) {
      writeNew(secretsFile, secretsText(what), 0o600, what.command);
      written.push(secretsFile);
    }
    writeNew(file, configText(set, what.command), 0o644, what.command);
    written.push(file);
    // What is written must load: check it the way `buildd serve` will.
    loadConfig({ file });
  } catch (err) {
    for (const f of written) fs.rmSync(f, { force: true });
    if (made !== undefined) fs.rmSync(made, { recursive: true, force: true });
    if (isBuilddError(err, "BUILDD_ERR_CONFIG")) {
      // E.g. a --bindhost reachable from the network, which needs [tls] as well.
      throw usageError(
        `the configuration ${what.command} would write is refused, so none was written: ${err.message}`,
      );
    }
    throw err;
  }
  return { file, secretsFile };
}

/** A generated password: base64url has no ";" or "#", so it needs no quoting in INI. */
export const generatedPassword = (): string => randomBytes(24).toString("base64url");

/** --bindhost and --port, checked; what both init and create-worker listen on. */
export function listenOptions(opts: { bindhost: string; port: string }): {
  bindhost: string;
  port: number;
} {
  const port = wholeNumber("--port", opts.port, 0, 65535);
  if (!/^[A-Za-z0-9.:_-]+$/.test(opts.bindhost)) {
    throw usageError(
      `--bindhost ${JSON.stringify(opts.bindhost)} is not an address; give an IP address or a host name, e.g. 127.0.0.1`,
    );
  }
  return { bindhost: opts.bindhost, port };
}

/** The keys every written directory sets: its state inside it, where it listens. */
export function baseKeys(bindhost: string, port: number): Map<string, string> {
  return new Map([
    ["builder.filecache", "var/filecache"],
    ["builder.statedir", "var"],
    ["builder.bindhost", bindhost],
    ["builder.bindport", String(port)],
    ["auth.username", "buildd"],
    ["log.level", "info"],
  ]);
}

/**
 * Run as root, make sure the user build steps run as exists (as `buildd serve` would at
 * its first start), and say so; otherwise say who steps will run as.
 */
export async function ensureBuildUserFor(file: string, out: NodeJS.WritableStream): Promise<void> {
  const config = loadConfig({ file });
  const user = await ensureBuildUser(config, processRunner, createLogger("silent"));
  out.write(
    user !== null
      ? `steps on the host will run as the unprivileged user ${user.user} ([build] user)\n`
      : `not root: steps will run as the user that runs buildd serve\n`,
  );
}

export async function init(
  dir: string,
  opts: InitOptions,
  out: NodeJS.WritableStream,
): Promise<void> {
  const { bindhost, port } = listenOptions(opts);
  const password = opts.auth ? generatedPassword() : "";
  const { file, secretsFile } = writeBuilderDirectory(dir, {
    command: "buildd init",
    set: baseKeys(bindhost, port),
    // The password goes to the secrets file; buildd refuses a secret in buildd.conf.
    secrets: password === "" ? new Map() : new Map([["auth", new Map([["password", password]])]]),
  });
  out.write(
    `wrote ${file}\n` +
      (secretsFile !== null
        ? `wrote the generated [auth] password to ${secretsFile} (mode 0600)\n`
        : "no password (--no-auth): anyone who reaches the port may drive the builder\n"),
  );
  await ensureBuildUserFor(file, out);
  out.write(
    `start the builder:  buildd serve --config ${file}\n` + managerUrl(bindhost, port, secretsFile),
  );
}

/** How a manager reaches the builder, said after writing it. */
export function managerUrl(bindhost: string, port: number, secretsFile: string | null): string {
  const host = bindhost.includes(":") ? `[${bindhost}]` : bindhost;
  return secretsFile !== null
    ? `a manager's URL for it: http://buildd:PASSWORD@${host}:${port}/ (PASSWORD: [auth] password in ${secretsFile})\n`
    : `a manager's URL for it: http://${host}:${port}/\n`;
}
