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
export function configText(set: ReadonlyMap<string, string>): string {
  const out: string[] = [
    "# buildd configuration, written by `buildd init`. Every key of every section is listed",
    "# with its default; a commented key has that default. Relative paths resolve against",
    "# this file's folder. See docs/configuration.md for the types and ranges.",
    "# Secret values ([auth] password) are in the secrets file named by [builder] secrets;",
    "# buildd refuses them here.",
  ];
  let section: string | null = null;
  const keys = CONFIG_KEYS.filter((k: KeySpec) => k.type.kind !== "ignored");
  for (const spec of keys) {
    if (spec.section !== section) {
      section = spec.section;
      out.push("", `[${section}]`);
    }
    out.push("", ...comment(spec.doc));
    const value = set.get(`${spec.section}.${spec.key}`);
    if (value !== undefined) out.push(`${spec.key} = ${value}`);
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
function writeNew(file: string, text: string, mode: number): void {
  let fd: number;
  try {
    fd = fs.openSync(file, "wx", mode);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === "EEXIST") throw exists(file);
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

const exists = (file: string): CliError =>
  new CliError(
    `${file} already exists; buildd init does not overwrite it (edit it, or choose another directory)`,
  );

const SECRETS_TEXT = (password: string): string =>
  [
    "# buildd secrets, written by `buildd init`; named by [builder] secrets in buildd.conf.",
    "# Only secret keys go here. Keep it owned by the builder's user, mode 0600.",
    "",
    "[auth]",
    `password = ${password}`,
    "",
  ].join("\n");

export function init(dir: string, opts: InitOptions, out: NodeJS.WritableStream): void {
  const port = wholeNumber("--port", opts.port, 0, 65535);
  if (!/^[A-Za-z0-9.:_-]+$/.test(opts.bindhost)) {
    throw usageError(
      `--bindhost ${JSON.stringify(opts.bindhost)} is not an address; give an IP address or a host name, e.g. 127.0.0.1`,
    );
  }
  const root = path.resolve(dir);
  const file = path.join(root, CONFIG_NAME);
  const secretsFile = path.join(root, SECRETS_NAME);
  // Base64url: no ";" or "#", so the value needs no quoting in the INI file.
  const password = opts.auth ? randomBytes(24).toString("base64url") : "";
  // The password goes to the secrets file; buildd refuses a secret in buildd.conf.
  const separate = password !== "";
  const set = new Map<string, string>([
    ["builder.filecache", "var/filecache"],
    ["builder.statedir", "var"],
    ["builder.bindhost", opts.bindhost],
    ["builder.bindport", String(port)],
    ["auth.username", "buildd"],
    ["log.level", "info"],
  ]);
  if (separate) set.set("builder.secrets", SECRETS_NAME);
  for (const f of separate ? [file, secretsFile] : [file]) if (fs.existsSync(f)) throw exists(f);
  fs.mkdirSync(root, { recursive: true, mode: 0o750 });
  const written: string[] = [];
  try {
    if (separate) {
      writeNew(secretsFile, SECRETS_TEXT(password), 0o600);
      written.push(secretsFile);
    }
    writeNew(file, configText(set), 0o644);
    written.push(file);
    // What init writes must load: check it the way `buildd serve` will.
    loadConfig({ file });
  } catch (err) {
    for (const f of written) fs.rmSync(f, { force: true });
    if (isBuilddError(err, "BUILDD_ERR_CONFIG")) {
      // E.g. a --bindhost reachable from the network, which needs [tls] as well.
      throw usageError(
        `the configuration init would write is refused, so none was written: ${err.message}`,
      );
    }
    throw err;
  }
  const host = opts.bindhost.includes(":") ? `[${opts.bindhost}]` : opts.bindhost;
  out.write(
    `wrote ${file}\n` +
      (password !== ""
        ? `wrote the generated [auth] password to ${secretsFile} (mode 0600)\n`
        : "no password (--no-auth): anyone who reaches the port may drive the builder\n") +
      `start the builder:  buildd serve --config ${file}\n` +
      (password !== ""
        ? `a manager's URL for it: http://buildd:PASSWORD@${host}:${port}/ (PASSWORD: [auth] password in ${secretsFile})\n`
        : `a manager's URL for it: http://${host}:${port}/\n`),
  );
}
