// `buildd init DIR`: a commented configuration with a generated password, mode 0600,
// that `buildd serve` runs as written; never overwriting an existing file.
import assert from "node:assert/strict";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { describe, test } from "node:test";
import { spawn } from "node:child_process";
import { eventually } from "../harness/fixtures.js";
import { listeningAddresses } from "../harness/listening.js";
import { encodeMethodCall } from "../src/rpc/codec.js";
import { CONFIG_KEYS } from "../src/config/keys.js";
import { loadConfig } from "../src/config/config.js";
import { buildd } from "./cli-run.js";

const newDir = (): string =>
  path.join(fs.mkdtempSync(path.join(os.tmpdir(), "buildd-cli-init-")), "worker");

/** The file init put the password in: the secrets file where the configuration reads one. */
function passwordFile(dir: string): string {
  const secrets = path.join(dir, "secrets.conf");
  return fs.existsSync(secrets) ? secrets : path.join(dir, "buildd.conf");
}

function passwordIn(dir: string): string {
  const m = /^password = (\S+)$/m.exec(fs.readFileSync(passwordFile(dir), "utf8"));
  assert.ok(m, `a password in ${passwordFile(dir)}`);
  return m[1]!;
}

describe("buildd init", () => {
  test("writes every section and key, commented, with the password in a 0600 file", async () => {
    const dir = newDir();
    const r = await buildd(["init", dir]);
    assert.equal(r.code, 0, r.stderr);
    const file = path.join(dir, "buildd.conf");
    const text = fs.readFileSync(file, "utf8");
    for (const spec of CONFIG_KEYS) {
      if (spec.type.kind === "ignored") continue;
      assert.match(text, new RegExp(`^\\[${spec.section}\\]$`, "m"));
      assert.match(text, new RegExp(`^(# )?${spec.key} =`, "m"), `${spec.section}.${spec.key}`);
    }
    assert.match(text, /^\[capabilities\]$/m);
    const headers = text.match(/^\[[a-z_]+\]$/gm) ?? [];
    assert.deepEqual(headers, [...new Set(headers)], "each section once");
    assert.match(text, /^statedir = var$/m);
    assert.match(text, /^bindhost = 127\.0\.0\.1$/m);
    const holder = passwordFile(dir);
    assert.equal(fs.statSync(holder).mode & 0o777, 0o600, `${holder} is private`);
    const password = passwordIn(dir);
    assert.match(password, /^\S{32}$/, "a generated password");
    assert.doesNotMatch(r.stdout, new RegExp(password), "the password is not printed");
    assert.match(r.stdout, new RegExp(`buildd serve --config ${file.replace(/[/.]/g, "\\$&")}`));
    // Two runs, two passwords.
    const other = newDir();
    await buildd(["init", other]);
    assert.notEqual(passwordIn(other), password);
  });

  test("refuses to overwrite an existing buildd.conf, leaving it as it was", async () => {
    const dir = newDir();
    fs.mkdirSync(dir, { recursive: true });
    fs.writeFileSync(path.join(dir, "buildd.conf"), "[log]\nlevel = debug\n");
    const r = await buildd(["init", dir]);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /buildd\.conf already exists; buildd init does not overwrite it/);
    assert.equal(fs.readFileSync(path.join(dir, "buildd.conf"), "utf8"), "[log]\nlevel = debug\n");
  });

  test("bad options are refused before anything is written", async () => {
    const dir = newDir();
    const r = await buildd(["init", dir, "--port", "http"]);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /--port must be a whole number from 0 to 65535, not "http"/);
    assert.ok(!fs.existsSync(dir));
  });

  test("the written directory serves as is: state inside it, the password required", async () => {
    const dir = newDir();
    assert.equal((await buildd(["init", dir, "--port", "0"])).code, 0);
    const configFile = path.join(dir, "buildd.conf");
    const password = passwordIn(dir);
    const child = spawn(
      process.execPath,
      ["--import", "tsx", "src/cli.ts", "serve", "--config", configFile],
      {
        stdio: "ignore",
      },
    );
    try {
      const auth = `Basic ${Buffer.from(`buildd:${password}`).toString("base64")}`;
      let url: string | null = null;
      await eventually("the builder listens", async () => {
        for (const { host, port } of listeningAddresses(child.pid!)) {
          const res = await fetch(`http://${host}:${port}/rpc`, {
            method: "POST",
            headers: { authorization: auth },
            body: encodeMethodCall("echo", ["up"]),
          }).catch(() => null);
          if (res?.status === 200) url = `http://${host}:${port}`;
        }
        return url !== null;
      });
      assert.ok(fs.existsSync(path.join(dir, "var/buildd.sqlite")), "state under DIR/var");
      const denied = await fetch(`${url}/rpc`, {
        method: "POST",
        body: encodeMethodCall("echo", []),
      });
      assert.equal(denied.status, 401, "the password is required");
      // The commands take the credentials from the same file.
      const s = await buildd(["status", "--config", configFile, "--url", url!]);
      assert.equal(s.code, 0, s.stderr);
      assert.match(s.stdout, /^state +IDLE$/m);
    } finally {
      child.kill("SIGTERM");
      await new Promise((r) => child.once("exit", r));
    }
  });
});

describe("buildd create-worker", () => {
  test("writes a worker's buildd.conf with its state inside BASEDIR and both passwords in a 0600 file", async () => {
    const dir = newDir();
    const r = await buildd([
      "create-worker",
      dir,
      "buildbot.example.org:9989",
      "worker-1",
      "pa ss;w#rd",
      "--max-builds",
      "2",
      "--admin",
      "Ops <ops@example.org>",
    ]);
    assert.equal(r.code, 0, r.stderr);
    const file = path.join(dir, "buildd.conf");
    const config = loadConfig({ file });
    const bb = config.buildbot;
    assert.ok(bb, "the written configuration has a Buildbot master");
    assert.deepEqual(bb.master, { host: "buildbot.example.org", port: 9989 });
    assert.equal(bb.name, "worker-1");
    assert.equal(bb.password, "pa ss;w#rd", "a password with blanks, ; and # is read back exactly");
    assert.equal(bb.maxBuilds, 2);
    assert.equal(bb.admin, "Ops <ops@example.org>");
    for (const p of [
      bb.basedir,
      bb.sharedCache,
      config.builder.statedir,
      config.builder.filecache,
    ]) {
      assert.ok(p.startsWith(`${dir}${path.sep}`), `${p} is inside BASEDIR`);
    }
    // The XML-RPC side is closed: a generated password of its own.
    assert.match(config.auth.password, /^\S{32}$/);
    const secrets = path.join(dir, "secrets.conf");
    assert.equal(fs.statSync(secrets).mode & 0o777, 0o600);
    assert.doesNotMatch(fs.readFileSync(file, "utf8"), /pa ss/, "no password in buildd.conf");
    assert.doesNotMatch(r.stdout + r.stderr, /pa ss|w#rd/, "the password is not printed");
    assert.match(r.stdout, /buildd serve --config /);
    assert.match(r.stdout, /Worker\("worker-1", PASSWORD, max_builds=2\)/);
    if (process.getuid?.() === 0) assert.match(r.stdout, /run as the unprivileged user buildd/);
  });

  test("a bad master address is refused, naming the key, and nothing is left behind", async () => {
    const dir = newDir();
    const r = await buildd(["create-worker", dir, "buildbot.example.org", "w", "pw"]);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /\[buildbot\] master = "buildbot\.example\.org" is not host:port/);
    assert.equal(fs.existsSync(dir), false, "the directory it made is gone again");
    const empty = await buildd(["create-worker", newDir(), "m:9989", "w", ""]);
    assert.equal(empty.code, 2);
    assert.match(empty.stderr, /PASSWORD is empty/);
  });
});
