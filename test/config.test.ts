import assert from "node:assert/strict";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { describe, test } from "node:test";
import { CONFIG_KEYS } from "../src/config-keys.js";
import { configErrorOf, writeConfigFile } from "../harness/config.js";
import { loadConfig } from "../src/config.js";

function tmpdir(): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), "buildd-config-"));
}

/** The error's text after "<file>: ". */
const configError = (text: string): string => configErrorOf(text).replace(/^FILE: /, "");

describe("configuration", () => {
  test("defaults: loopback, port 8221, var/ under the working directory", () => {
    const cwd = tmpdir();
    const config = loadConfig({ cwd, env: {} });
    assert.equal(config.file, null);
    assert.equal(config.builder.bindhost, "127.0.0.1");
    assert.equal(config.builder.bindport, 8221);
    assert.equal(config.builder.statedir, path.join(cwd, "var"));
    assert.equal(config.builder.filecache, path.join(cwd, "var/filecache"));
    assert.ok(fs.statSync(config.builder.filecache).isDirectory(), "cache directory created");
    assert.match(config.builder.architecturetag, /^[a-z0-9]+$/);
    assert.equal(config.build.abortTimeoutMs, 120_000);
  });

  test("the shipped buildd.conf loads", () => {
    const copy = path.join(tmpdir(), "buildd.conf");
    fs.copyFileSync("buildd.conf", copy);
    const config = loadConfig({ file: copy });
    assert.equal(config.builder.filecache, path.join(path.dirname(copy), "var/filecache"));
  });

  test("relative paths resolve against the file's folder; BUILDD_CONFIG is read", () => {
    const file = writeConfigFile(
      "[builder]\nfilecache = c\nstatedir = s\narchitecturetag = riscv64\n",
    );
    const config = loadConfig({ env: { BUILDD_CONFIG: file }, cwd: "/" });
    assert.equal(config.file, file);
    assert.equal(config.builder.filecache, path.join(path.dirname(file), "c"));
    assert.equal(config.builder.statedir, path.join(path.dirname(file), "s"));
    assert.equal(config.builder.architecturetag, "riscv64");
  });

  test("--config wins over BUILDD_CONFIG", () => {
    const a = writeConfigFile("[builder]\nbindport = 1234\n");
    const b = writeConfigFile("[builder]\nbindport = 5678\n");
    assert.equal(loadConfig({ file: a, env: { BUILDD_CONFIG: b } }).builder.bindport, 1234);
  });

  test("sizes and seconds are parsed with units", () => {
    const file = writeConfigFile(
      "[cache]\nmax_size = 2G\nmin_free = 512M\n[build]\nabort_timeout = 1.5\n",
    );
    const config = loadConfig({ file });
    assert.equal(config.cache.maxSize, 2 * 1024 ** 3);
    assert.equal(config.cache.minFree, 512 * 1024 ** 2);
    assert.equal(config.build.abortTimeoutMs, 1500);
  });

  test("a double-quoted value keeps ; and # (they start comments otherwise)", () => {
    const file = writeConfigFile('[auth]\npassword = "pa;ss#word"\nusername = ci ; the manager\n');
    const config = loadConfig({ file });
    assert.equal(config.auth.password, "pa;ss#word");
    assert.equal(config.auth.username, "ci");
  });

  test("the result is frozen", () => {
    const config = loadConfig({ cwd: tmpdir() });
    assert.ok(Object.isFrozen(config) && Object.isFrozen(config.builder));
    assert.throws(() => {
      (config.builder as { bindport: number }).bindport = 1;
    }, TypeError);
  });

  test("each mistake names the file, section and key", () => {
    assert.equal(configError("[bulder]\nx = 1\n"), "unknown section [bulder]");
    assert.equal(
      configError("[builder]\nbindprot = 1\n"),
      'unknown key "bindprot" in section [builder]',
    );
    assert.equal(
      configError("[builder]\nbindport = eighty\n"),
      '[builder] bindport = "eighty" is not a whole number from 0 to 65535',
    );
    assert.equal(
      configError("[builder]\nbindport = 70000\n"),
      '[builder] bindport = "70000" is not a whole number from 0 to 65535',
    );
    assert.equal(
      configError("[cache]\nmax_size = lots\n"),
      '[cache] max_size = "lots" is not a size such as 512M or 20G',
    );
    assert.equal(
      configError("[build]\nabort_timeout = -3\n"),
      '[build] abort_timeout = "-3" is not a positive number of seconds',
    );
    assert.equal(
      configError("[log]\nlevel = loud\n"),
      '[log] level = "loud" is not one of fatal, error, warn, info, debug, trace, silent',
    );
    assert.equal(configError("bindport = 1\n"), 'key "bindport" is outside any [section]');
    assert.match(
      configError("[builder]\nfilecache = /nonexistent/deeper/cache\n"),
      /^\[builder\] filecache \/nonexistent\/deeper\/cache does not exist and cannot be created \(ENOENT\)$/,
    );
  });

  test("a missing file is an error naming it", () => {
    const file = path.join(tmpdir(), "nope.conf");
    assert.throws(() => loadConfig({ file }), {
      message: `${file}: cannot read the configuration file (ENOENT)`,
    });
  });

  test("docs/configuration.md lists exactly the keys of the code's table, with defaults", () => {
    const doc = fs.readFileSync("docs/configuration.md", "utf8");
    const rows = [...doc.matchAll(/^\|\s*`\[([a-z]+)\] ([a-z_]+)`\s*\|\s*([^|]*?)\s*\|/gm)].map(
      (m) => `${m[1]}.${m[2]} = ${m[3]!.trim()}`,
    );
    const expected = CONFIG_KEYS.map(
      (k) =>
        `${k.section}.${k.key} = ${k.default === null ? "(computed)" : k.default === "" ? "(none)" : `\`${k.default}\``}`,
    );
    assert.deepEqual(rows, expected);
  });
});
