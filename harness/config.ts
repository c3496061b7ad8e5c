// Config files for tests: write one, and read the configuration error it must raise
// when it is read, or at start-up (where its directories are created).

import assert from "node:assert/strict";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { loadConfig } from "../src/config/config.js";
import { BuilddError } from "../src/errors.js";
import { ensureDirectories } from "../src/host-setup.js";

/**
 * A buildd.conf with this text, in a fresh temporary folder; returns its path. With
 * `secrets`, also a secrets file beside it (mode 0600) that the config names.
 */
export function writeConfigFile(text: string, secrets?: string): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "buildd-config-"));
  const file = path.join(dir, "buildd.conf");
  if (secrets === undefined) {
    fs.writeFileSync(file, text);
  } else {
    fs.writeFileSync(path.join(dir, "secrets.conf"), secrets, { mode: 0o600 });
    fs.writeFileSync(file, `[builder]\nsecrets = secrets.conf\n${text}`);
  }
  return file;
}

/**
 * Load a buildd.conf naming a secrets file with `secrets` and return the configuration
 * error it raises, the secrets file's path written as "SECRETS".
 */
export function secretsErrorOf(secrets: string, text = ""): string {
  const file = writeConfigFile(text, secrets);
  const secretsFile = path.join(path.dirname(file), "secrets.conf");
  try {
    loadConfig({ file });
  } catch (err) {
    assert.ok(err instanceof BuilddError && err.code === "BUILDD_ERR_CONFIG", String(err));
    return err.message.replaceAll(secretsFile, "SECRETS").replaceAll(file, "FILE");
  }
  assert.fail("expected a configuration error");
}

/**
 * Load `text` as buildd.conf and return the configuration error it raises, its message
 * starting with the file's path (checked) written as "FILE".
 */
export function configErrorOf(text: string): string {
  return errorOf(text, (file) => loadConfig({ file }));
}

/**
 * Like configErrorOf, for a file that loads but whose directories cannot be set up at
 * start-up (the part of start-up that can fail on the configuration).
 */
export function startupErrorOf(text: string): string {
  return errorOf(text, (file) => ensureDirectories(loadConfig({ file })));
}

function errorOf(text: string, load: (file: string) => void): string {
  const file = writeConfigFile(text);
  try {
    load(file);
  } catch (err) {
    assert.ok(err instanceof BuilddError && err.code === "BUILDD_ERR_CONFIG", String(err));
    assert.ok(err.message.startsWith(file), `message names the file: ${err.message}`);
    return `FILE${err.message.slice(file.length)}`;
  }
  assert.fail("expected a configuration error");
}
