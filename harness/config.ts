// Config files for tests: write one, and read the configuration error it must raise.

import assert from "node:assert/strict";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { loadConfig } from "../src/config.js";
import { BuilddError } from "../src/errors.js";

/** A buildd.conf with this text, in a fresh temporary folder; returns its path. */
export function writeConfigFile(text: string): string {
  const file = path.join(fs.mkdtempSync(path.join(os.tmpdir(), "buildd-config-")), "buildd.conf");
  fs.writeFileSync(file, text);
  return file;
}

/**
 * Load `text` as buildd.conf and return the configuration error it raises, its message
 * starting with the file's path (checked) written as "FILE".
 */
export function configErrorOf(text: string): string {
  const file = writeConfigFile(text);
  try {
    loadConfig({ file });
  } catch (err) {
    assert.ok(err instanceof BuilddError && err.code === "BUILDD_ERR_CONFIG", String(err));
    assert.ok(err.message.startsWith(file), `message names the file: ${err.message}`);
    return `FILE${err.message.slice(file.length)}`;
  }
  assert.fail("expected a configuration error");
}
