import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { promisify } from "node:util";
import { describe, test } from "node:test";
import { CONFIG_KEYS, describeType } from "../src/config/keys.js";
import { configErrorOf, startupErrorOf, writeConfigFile } from "../harness/config.js";
import { makeBuilderDirs } from "../harness/builder.js";
import { loadConfig } from "../src/config/config.js";
import { ensureDirectories, hostArchitecture } from "../src/host-setup.js";
import { processRunner } from "../src/process/runner.js";

const run = promisify(execFile);
// Absolute, so the command also runs from a folder outside the project.
const CLI = ["--import", import.meta.resolve("tsx"), path.resolve("src/cli.ts")];

function tmpdir(): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), "buildd-config-"));
}

/** The error's text after "<file>: ". */
const configError = (text: string): string => configErrorOf(text).replace(/^FILE: /, "");

/** The configuration `text` loads to. */
const load = (text: string): ReturnType<typeof loadConfig> =>
  loadConfig({ file: writeConfigFile(text) });

/** The test's environment without BUILDD_CONFIG, so only the arguments choose the file. */
const { BUILDD_CONFIG: _ignored, ...ENV } = process.env;

/** How `buildd <args>` exited, run in `cwd`; killed (and failing) after 20 s. */
async function cli(
  args: readonly string[],
  cwd: string,
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await run(process.execPath, [...CLI, ...args], {
      cwd,
      env: ENV,
      timeout: 20_000,
      // A builder that wrongly started serves until killed; SIGKILL, as it may not stop.
      killSignal: "SIGKILL",
    });
    return { code: 0, stdout, stderr };
  } catch (err) {
    const e = err as { code?: number | string; killed?: boolean; stdout?: string; stderr?: string };
    assert.ok(!e.killed, `buildd ${args.join(" ")} was still running after 20 s:\n${e.stdout}`);
    return {
      code: typeof e.code === "number" ? e.code : null,
      stdout: e.stdout ?? "",
      stderr: e.stderr ?? "",
    };
  }
}

describe("configuration", () => {
  test("defaults: loopback, port 8221, var/ under the working directory", () => {
    const cwd = tmpdir();
    const config = loadConfig({ cwd, env: {} });
    assert.equal(config.file, null);
    assert.equal(config.builder.bindhost, "127.0.0.1");
    assert.equal(config.builder.bindport, 8221);
    assert.equal(config.builder.statedir, path.join(cwd, "var"));
    assert.equal(config.builder.filecache, path.join(cwd, "var/filecache"));
    assert.equal(config.builder.architecturetag, null, "left to start-up");
    assert.equal(config.build.abortTimeoutMs, 120_000);
    assert.equal(config.build.shutdownGraceMs, 60_000);
  });

  test("loading is pure: no directory is created, dpkg is asked only at start-up", async () => {
    const cwd = tmpdir();
    const config = loadConfig({ cwd, env: {} });
    assert.deepEqual(fs.readdirSync(cwd), [], "loadConfig created nothing");
    ensureDirectories(config);
    assert.ok(fs.statSync(config.builder.filecache).isDirectory(), "cache directory created");
    assert.match(await hostArchitecture(config, processRunner), /^[a-z0-9]+$/);
    const tagged = load("[builder]\narchitecturetag = riscv64\n");
    assert.equal(await hostArchitecture(tagged, processRunner), "riscv64");
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
    const config = load(
      "[cache]\nmax_size = 2G\nmin_free = 512M\n[build]\nabort_timeout = 1.5\nkill_grace = 0\nshutdown_grace = 0.25\n",
    );
    assert.equal(config.cache.maxSize, 2 * 1024 ** 3);
    assert.equal(config.cache.minFree, 512 * 1024 ** 2);
    assert.equal(config.build.abortTimeoutMs, 1500);
    assert.equal(config.build.killGraceMs, 0, "0 allowed: SIGKILL at once");
    assert.equal(config.build.shutdownGraceMs, 250);
    const sizes = (text: string): number =>
      load(`[download]\nmax_size = ${text}\n`).download.maxBytes;
    assert.equal(sizes("512K"), 512 * 1024);
    assert.equal(sizes("20M"), 20 * 1024 ** 2);
    assert.equal(sizes("1GiB"), 1024 ** 3);
    assert.equal(sizes("1GB"), 1024 ** 3);
    assert.equal(sizes("2T"), 2 * 1024 ** 4);
    assert.equal(sizes("1.5K"), 1536);
    assert.equal(load("[cache]\nmax_size = 0\nmin_free = 0\n").cache.maxSize, 0, "no budget");
    assert.equal(load("[download]\nmax_redirects = 0\n").download.maxRedirects, 0);
  });

  test("hosts: IP addresses and host names", () => {
    for (const host of ["::1", "0.0.0.0", "::", "localhost", "buildd-1.example.org"]) {
      const text = `[builder]\nbindhost = ${host}\n[auth]\ntrusted_network = yes\n`;
      assert.equal(load(text).builder.bindhost, host);
    }
  });

  test("a double-quoted value keeps ; and # (they start comments otherwise)", () => {
    const file = writeConfigFile(
      "[auth]\nusername = ci ; the manager\n",
      '[auth]\npassword = "pa;ss#word"\n',
    );
    const config = loadConfig({ file });
    assert.equal(config.auth.password, "pa;ss#word");
    assert.equal(config.auth.username, "ci");
  });

  test("quoting: JSON escapes, blanks kept, a comment after the quotes", () => {
    const config = loadConfig({
      file: writeConfigFile(
        '[auth]\nusername = "ci"\n[cache]\nmax_size = 20G ; the budget\n[builder]\nstatedir = my var\n',
        '[auth]\npassword = "say \\"hi\\" \\\\ ok " # quoted\n',
      ),
    });
    assert.equal(config.auth.password, 'say "hi" \\ ok ');
    assert.equal(config.auth.username, "ci");
    assert.equal(config.cache.maxSize, 20 * 1024 ** 3);
    assert.equal(path.basename(config.builder.statedir), "my var");
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
      '[cache] max_size = "lots" is not a size such as 512M or 20G (K, M, G or T, powers of 1024), or 0 for no budget',
    );
    assert.equal(
      configError("[build]\nabort_timeout = -3\n"),
      '[build] abort_timeout = "-3" is not a positive number of seconds',
    );
    assert.equal(
      configError("[log]\nlevel = loud\n"),
      '[log] level = "loud" is not one of fatal, error, warn, info, debug, trace, silent',
    );
    assert.equal(
      configErrorOf("bindport = 1\n"),
      'FILE line 1: key "bindport" is outside any [section]',
    );
  });

  test("counts have ranges: max_depth 0 and max_redirects 21 are refused", () => {
    assert.equal(
      configError("[rpc]\nmax_depth = 0\n"),
      '[rpc] max_depth = "0" is not a whole number from 1 to 1000',
    );
    assert.equal(
      configError("[rpc]\nmax_depth = 1001\n"),
      '[rpc] max_depth = "1001" is not a whole number from 1 to 1000',
    );
    assert.equal(
      configError("[download]\nmax_redirects = 21\n"),
      '[download] max_redirects = "21" is not a whole number from 0 to 20',
    );
    assert.equal(
      configError("[download]\nmax_redirects = 2.5\n"),
      '[download] max_redirects = "2.5" is not a whole number from 0 to 20',
    );
  });

  test("sizes need a unit, and 0 only where it means something", () => {
    assert.equal(
      configError("[download]\nmax_size = 20\n"),
      '[download] max_size = "20" has no unit: write 20K, 20M, 20G or 20T (powers of 1024)',
    );
    assert.equal(
      configError("[cache]\nmax_size = 20\n"),
      '[cache] max_size = "20" has no unit: write 20K, 20M, 20G or 20T (powers of 1024), or 0 for no budget',
    );
    assert.equal(
      configError("[rpc]\nmax_body = 0\n"),
      '[rpc] max_body = "0" has no unit: write 0K, 0M, 0G or 0T (powers of 1024)',
    );
    assert.equal(
      configError("[build]\nlog_max_size = 0.5K\n"),
      '[build] log_max_size = "0.5K" is less than the smallest size, 1K',
    );
    assert.equal(
      configError("[build]\nlog_max_size = 1.3K\n"),
      '[build] log_max_size = "1.3K" is not a whole number of bytes (1331.2)',
    );
    assert.equal(
      configError("[build]\nlog_max_size = 9000T\n"),
      '[build] log_max_size = "9000T" is more than the largest size, 8191T',
    );
  });

  test("seconds: 0 only where allowed, milliseconds at most, a timer's limit", () => {
    assert.equal(
      configError("[download]\nconnect_timeout = 0\n"),
      '[download] connect_timeout = "0" is not a positive number of seconds',
    );
    assert.equal(
      configError("[build]\nshutdown_grace = soon\n"),
      '[build] shutdown_grace = "soon" is not a number of seconds (0: abort at once)',
    );
    assert.equal(
      configError("[download]\nidle_timeout = 0.0001\n"),
      '[download] idle_timeout = "0.0001" has more than 3 decimals (times count milliseconds)',
    );
    assert.equal(
      configError("[download]\ntotal_timeout = 3000000\n"),
      '[download] total_timeout = "3000000" is more than 2147483 seconds (about 24 days), the longest a timer can wait',
    );
  });

  test("hosts, architectures, user names and quoted blanks are checked", () => {
    assert.equal(
      configError("[builder]\nbindhost = [::1]\n"),
      '[builder] bindhost = "[::1]" is not a host name or IP address (such as 127.0.0.1, ::1 or localhost; no brackets)',
    );
    assert.equal(
      configError("[builder]\nbindhost = build host\n"),
      '[builder] bindhost = "build host" is not a host name or IP address (such as 127.0.0.1, ::1 or localhost; no brackets)',
    );
    assert.equal(
      configError("[builder]\narchitecturetag = AMD64\n"),
      '[builder] architecturetag = "AMD64" is not an architecture name (lowercase letters, digits and "-", such as amd64)',
    );
    assert.equal(load("[builder]\narchitecturetag =\n").builder.architecturetag, null);
    assert.equal(
      configError("[auth]\nusername = ci:bot\n"),
      '[auth] username = "ci:bot" contains ":", which an HTTP Basic user name cannot',
    );
    assert.equal(
      configError('[builder]\nbindport = " 80"\n'),
      '[builder] bindport = " 80" is not a whole number from 0 to 65535',
    );
  });

  test("a value an inline comment would cut is refused, saying how to quote it", () => {
    assert.equal(
      configErrorOf("[auth]\nusername = ci;bot\n"),
      'FILE line 2: [auth] username: ";" would start a comment and cut the value to "ci"; if it is part of the value, double-quote the value: username = "ci;bot"; if it starts a comment, put a blank before it',
    );
    assert.equal(
      configErrorOf("[builder]\nstatedir = var#2\n"),
      'FILE line 2: [builder] statedir: "#" would start a comment and cut the value to "var"; if it is part of the value, double-quote the value: statedir = "var#2"; if it starts a comment, put a blank before it',
    );
    assert.equal(
      configErrorOf("[builder]\nstatedir = #var\n"),
      'FILE line 2: [builder] statedir: the value starts with "#", which would start a comment and leave the value empty; if "#" is part of the value, double-quote it: statedir = "#var"; for an empty value write nothing after "="',
    );
  });

  test("a password is never repeated in a message", () => {
    const secret = (text: string): string => {
      const message = configErrorOf(`[auth]\npassword = ${text}\n`);
      assert.ok(!message.includes("s3c") && !message.includes("ret"), message);
      return message;
    };
    assert.equal(
      secret("s3c;ret"),
      'FILE line 2: [auth] password: ";" would start a comment and cut the value; if it is part of the value, double-quote the value: password = "…"; if it starts a comment, put a blank before it',
    );
    assert.match(secret("#s3cret"), /the value starts with "#", .*password = "…"/);
    assert.match(secret('"s3c\\qret"'), /the value is not a valid double-quoted string/);
    assert.match(secret('"s3c" ret'), /unexpected text after the closing double quote$/);
    // A misspelt key is refused by name before its value is read.
    assert.equal(
      configErrorOf("[auth]\npasword = s3c;ret\n"),
      'FILE: unknown key "pasword" in section [auth]',
    );
  });

  test("lines the reader would have to guess at are refused", () => {
    assert.equal(
      configErrorOf("[builder]\nbindport = 1\nbindport = 2\n"),
      "FILE line 3: [builder] bindport is set twice (first on line 2)",
    );
    assert.equal(
      configErrorOf("[builder]\nbindport\n"),
      'FILE line 2: [builder] "bindport" is not a "key = value" line, a [section] or a comment',
    );
    assert.equal(
      configErrorOf("[auth]\nusername = 'ci'\n"),
      'FILE line 2: [auth] username: single quotes are kept as part of a value; to quote it, use double quotes: username = "ci"',
    );
    assert.equal(
      configErrorOf('[auth]\nusername = "ci\n'),
      'FILE line 2: [auth] username: the double quote is not closed (inside quotes write \\" for a quote)',
    );
    assert.equal(
      configErrorOf('[auth]\nusername = "ci";x\n'),
      'FILE line 2: [auth] username: unexpected text after the closing double quote: ";x"',
    );
    assert.equal(
      configErrorOf('[auth]\nusername = "c\\i"\n'),
      'FILE line 2: [auth] username: "c\\i" is not a valid double-quoted string (inside quotes write \\" for a quote and \\\\ for a backslash)',
    );
  });

  test("a directory that cannot be created is named, with its key, at start-up", () => {
    assert.equal(
      startupErrorOf("[builder]\nfilecache = /nonexistent/deeper/cache\n"),
      "FILE: [builder] filecache /nonexistent/deeper/cache does not exist and cannot be created (ENOENT)",
    );
    const file = writeConfigFile("[builder]\nstatedir = buildd.conf\n");
    assert.throws(() => ensureDirectories(loadConfig({ file })), {
      message: `${file}: [builder] statedir ${file} is not a directory`,
    });
  });

  test("a missing file is an error naming it", () => {
    const file = path.join(tmpdir(), "nope.conf");
    assert.throws(() => loadConfig({ file }), {
      message: `${file}: cannot read the configuration file (ENOENT)`,
    });
  });

  test("docs/configuration.md lists exactly the keys of the code's table, with defaults and types", () => {
    const doc = fs.readFileSync("docs/configuration.md", "utf8");
    const rows = [
      ...doc.matchAll(/^\|\s*`\[([a-z]+)\] ([a-z_]+)`\s*\|\s*([^|]*?)\s*\|\s*([^|]*?)\s*\|/gm),
    ].map((m) => `${m[1]}.${m[2]} = ${m[3]!.trim()} (${m[4]!.trim()})`);
    const expected = CONFIG_KEYS.map(
      (k) =>
        `${k.section}.${k.key} = ${k.default === null ? "(computed)" : k.default === "" ? "(none)" : `\`${k.default}\``} (${describeType(k.type)})`,
    );
    assert.deepEqual(rows, expected);
  });
});

describe("[buildbot]", () => {
  const worker = "[buildbot]\nmaster = 127.0.0.1:9989\nname = w1\n";

  test("no master: no Buildbot connection, whatever else the section says", () => {
    assert.equal(load("[buildbot]\nname = w1\n").buildbot, null);
  });

  test("a worker: the master split, paths resolved, the password from the secrets file", () => {
    const file = writeConfigFile(
      worker + "max_builds = 3\nadmin = Ops <ops@example.org>\n",
      "[buildbot]\npassword = s3cret\n",
    );
    const dir = path.dirname(file);
    const c = loadConfig({ file }).buildbot!;
    assert.deepEqual(c.master, { host: "127.0.0.1", port: 9989 });
    assert.equal(c.name, "w1");
    assert.equal(c.password, "s3cret");
    assert.equal(c.maxBuilds, 3);
    assert.equal(c.basedir, path.join(dir, "var/buildbot"));
    assert.equal(c.sharedCache, path.join(dir, "var/shared-cache"));
    assert.equal(c.admin, "Ops <ops@example.org>");
    assert.equal(c.reconnectMaxMs, 60_000);
    const v6 = writeConfigFile(
      "[buildbot]\nmaster = [::1]:9989\nname = w1\n",
      "[buildbot]\npassword = p\n",
    );
    assert.deepEqual(loadConfig({ file: v6 }).buildbot!.master, { host: "::1", port: 9989 });
  });

  test("each mistake says what is missing and where it goes", () => {
    assert.match(
      configError("[buildbot]\nmaster = 127.0.0.1:9989\n"),
      /\[buildbot\] master is set but \[buildbot\] name is not/,
    );
    assert.match(configError(worker), /\[buildbot\] password is not: put it in the secrets file/);
    assert.match(configError(worker + "password = x\n"), /\[buildbot\] password.*secrets file/);
    for (const bad of [
      "9989",
      "host:",
      "host:99999",
      "[127.0.0.1]:9989",
      "a b:1",
      "http://m:9989",
    ]) {
      assert.match(
        configError(`[buildbot]\nmaster = ${bad}\nname = w\n`),
        /\[buildbot\] master = .* (is not host:port|names|has)/,
        bad,
      );
    }
    assert.match(configError(worker.replace("w1", "w:1")), /contains ":"/);
    assert.match(
      configError(worker + "max_builds = 0\n"),
      /\[buildbot\] max_builds = "0" is not a whole number from 1 to 64/,
    );
    assert.match(
      configError(worker + 'admin = "a\\u0007b"\n'),
      /\[buildbot\] admin = .* contains a control character/,
    );
  });

  test("its directories stay clear of the file cache, the build directories and each other", () => {
    const secrets = "[buildbot]\npassword = p\n";
    const err = (extra: string): string => {
      const file = writeConfigFile(worker + extra, secrets);
      try {
        loadConfig({ file });
      } catch (e) {
        return (e as Error).message;
      }
      assert.fail(`expected a configuration error for ${extra}`);
    };
    assert.match(
      err("basedir = var/filecache/bb\n"),
      /\[buildbot\] basedir must not be the file cache/,
    );
    assert.match(
      err("shared_cache = var\n"),
      /\[buildbot\] shared_cache must not be (the file cache|\[builder\] statedir)/,
    );
    assert.match(
      err("basedir = var/builds/1\n"),
      /\[buildbot\] basedir must not be \[builder\] statedir itself or lie in its builds/,
    );
    assert.match(
      err("shared_cache = var/buildbot/cache\n"),
      /shared_cache must lie outside \[buildbot\] basedir/,
    );
  });
});

describe("configuration through the buildd command", () => {
  test("[rpc] max_depth = 0 stops start-up with exit 2, instead of serving internal errors", async () => {
    const dirs = makeBuilderDirs({ rpc: { max_depth: 0 } });
    const { code, stderr } = await cli(["serve", "--config", dirs.configFile], dirs.dir);
    assert.equal(code, 2, stderr);
    assert.equal(
      stderr.trim(),
      `buildd: configuration error: ${dirs.configFile}: [rpc] max_depth = "0" is not a whole number from 1 to 1000`,
    );
    assert.ok(!fs.existsSync(dirs.statedir), "a refused configuration changes nothing");
  });

  test("a directory that cannot be created stops start-up with exit 2, naming the key", async () => {
    const dirs = makeBuilderDirs({ builder: { filecache: "/nonexistent/deeper/cache" } });
    const { code, stderr } = await cli(["serve", "--config", dirs.configFile], dirs.dir);
    assert.equal(code, 2, stderr);
    assert.equal(
      stderr.trim(),
      `buildd: configuration error: ${dirs.configFile}: [builder] filecache /nonexistent/deeper/cache does not exist and cannot be created (ENOENT)`,
    );
  });

  test("history on a builder that never ran says so and creates no state directory", async () => {
    const cwd = tmpdir();
    const { code, stderr } = await cli(["history"], cwd);
    assert.equal(code, 1, stderr);
    assert.equal(
      stderr.trim(),
      `buildd: no journal yet: [builder] statedir ${path.join(fs.realpathSync(cwd), "var")} does not exist (no builder has run with this configuration)`,
    );
    assert.deepEqual(fs.readdirSync(cwd), [], "no stray ./var");
  });
});
