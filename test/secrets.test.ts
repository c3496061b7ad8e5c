// Safe by default: secrets only in the secrets file (private to the builder's user), and
// no builder open to the network without a password and TLS unless the operator says
// the network is trusted.
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { describe, test } from "node:test";
import { configErrorOf, secretsErrorOf, writeConfigFile } from "../harness/config.js";
import {
  makeBuilderDirs,
  startBuilderExpectingExit,
  startBuilderProcess,
} from "../harness/builder.js";
import { loadConfig } from "../src/config/config.js";

describe("the secrets file", () => {
  test("a secret written in buildd.conf is refused, naming the key and where it goes", () => {
    const message = configErrorOf("[auth]\npassword = hunter2-in-config\n");
    assert.match(
      message,
      /^FILE: \[auth\] password is a secret and may not be written in the configuration file: move it to the secrets file named by \[builder\] secrets/,
    );
    assert.doesNotMatch(message, /hunter2/);
    const cap = configErrorOf("[capabilities]\npostgresql 15 port=5432 password=pg-secret-1\n");
    assert.match(
      cap,
      /\[capabilities\] postgresql 15: property "password" is a secret .* as a \[capabilities\] line "postgresql 15 password=…"/,
    );
    assert.doesNotMatch(cap, /pg-secret-1/);
  });

  test("the secrets file completes the configuration: the password, a capability's password", () => {
    const file = writeConfigFile(
      "[capabilities]\npostgresql 15 port=5432\n",
      '[auth]\npassword = "s3c;ret"\n[capabilities]\npostgresql 15 password=pg-secret-2\n',
    );
    const config = loadConfig({ file });
    assert.equal(config.auth.password, "s3c;ret");
    assert.equal(config.secretsFile, path.join(path.dirname(file), "secrets.conf"));
    assert.deepEqual(config.capabilities[0]?.properties, { port: "5432", password: "pg-secret-2" });
  });

  test("what the secrets file may hold: secret keys and known capabilities' secret properties", () => {
    assert.equal(
      secretsErrorOf("[cache]\nmax_size = 1G\n"),
      "SECRETS: [cache] max_size is not a secret; it belongs in buildd.conf (the secrets file holds only secret keys)",
    );
    assert.match(
      secretsErrorOf("[capabilities]\nmysql 8 password=x\n"),
      /mysql 8 is not declared in buildd.conf's \[capabilities\]/,
    );
    assert.match(
      secretsErrorOf(
        "[capabilities]\npostgresql 15 port=5433\n",
        "[capabilities]\npostgresql 15\n",
      ),
      /property "port" is not a secret; it belongs in buildd.conf/,
    );
  });

  test("a secrets file open to group or others, or owned by another user, is refused", () => {
    const file = writeConfigFile("", "[auth]\npassword = pw-mode-test\n");
    const secrets = path.join(path.dirname(file), "secrets.conf");
    fs.chmodSync(secrets, 0o644);
    assert.throws(
      () => loadConfig({ file }),
      new RegExp(
        `the secrets file ${secrets} is open to group or others \\(mode 0644\\); it holds secrets: chmod 600`,
      ),
    );
    fs.chmodSync(secrets, 0o600);
    assert.equal(loadConfig({ file }).auth.password, "pw-mode-test");
    fs.chownSync(secrets, 65534, 65534);
    assert.throws(
      () => loadConfig({ file }),
      /is owned by uid 65534, not by the user buildd runs as \(uid 0\): chown it/,
    );
    fs.rmSync(secrets);
    assert.throws(() => loadConfig({ file }), /the secrets file .* cannot be read \(ENOENT\)/);
  });

  test("buildd serve with a 0644 secrets file exits without starting; with 0600 it serves", async () => {
    const dirs = makeBuilderDirs({ auth: { password: "pw-serve-test" } });
    const secrets = path.join(dirs.dir, "secrets.conf");
    fs.chmodSync(secrets, 0o644);
    const refused = await startBuilderExpectingExit(dirs);
    assert.equal(refused.code, 2, refused.output);
    assert.match(refused.output, /mode 0644\); it holds secrets: chmod 600/);
    assert.doesNotMatch(refused.output, /pw-serve-test/);
    fs.chmodSync(secrets, 0o600);
    const p = await startBuilderProcess(dirs);
    try {
      assert.doesNotMatch(p.logText(), /pw-serve-test/);
    } finally {
      await p.kill("SIGTERM");
      fs.rmSync(dirs.dir, { recursive: true, force: true });
    }
  });
});

describe("no open builder on a network", () => {
  test("a non-loopback bindhost without a password, or without TLS, is refused, saying what to do", () => {
    const open = configErrorOf("[builder]\nbindhost = 0.0.0.0\n");
    assert.match(
      open,
      /\[builder\] bindhost 0\.0\.0\.0 is reachable from the network and no password is set: .*Set \[auth\] password in the secrets file .* or, on a trusted private network only, set \[auth\] trusted_network = yes/,
    );
    const plain = secretsErrorOf("[auth]\npassword = pw\n", "[builder]\nbindhost = 10.1.2.3\n");
    assert.match(
      plain,
      /without \[tls\] the password would cross it in clear: set \[tls\] cert and key/,
    );
    // Loopback needs neither.
    for (const host of ["127.0.0.1", "127.8.9.10", "::1", "localhost"]) {
      assert.equal(
        loadConfig({ file: writeConfigFile(`[builder]\nbindhost = ${host}\n`) }).builder.bindhost,
        host,
      );
    }
  });

  test("buildd serve on 0.0.0.0: refused without a password; with trusted_network it serves and warns", async () => {
    const refusedDirs = makeBuilderDirs({ builder: { bindhost: "0.0.0.0" } });
    const refused = await startBuilderExpectingExit(refusedDirs);
    assert.equal(refused.code, 2, refused.output);
    assert.match(refused.output, /reachable from the network and no password is set/);
    fs.rmSync(refusedDirs.dir, { recursive: true, force: true });

    const dirs = makeBuilderDirs({
      builder: { bindhost: "0.0.0.0" },
      auth: { trusted_network: "yes" },
    });
    const p = await startBuilderProcess(dirs);
    try {
      assert.match(p.logText(), /"level":40[^\n]*trusted_network/);
    } finally {
      await p.kill("SIGTERM");
      fs.rmSync(dirs.dir, { recursive: true, force: true });
    }
  });

  test("[tls] cert and key go together, and the key is private", () => {
    assert.match(configErrorOf('[tls]\ncert = "c.pem"\n'), /\[tls\] cert and key go together/);
    const file = writeConfigFile("[tls]\ncert = c.pem\nkey = k.pem\n");
    const key = path.join(path.dirname(file), "k.pem");
    fs.writeFileSync(path.join(path.dirname(file), "c.pem"), "cert");
    fs.writeFileSync(key, "key", { mode: 0o640 });
    fs.chmodSync(key, 0o640);
    assert.throws(
      () => loadConfig({ file }),
      /\[tls\] key .*k\.pem is open to group or others \(mode 0640\)/,
    );
    fs.chmodSync(key, 0o600);
    assert.deepEqual(loadConfig({ file }).tls, {
      cert: path.join(path.dirname(file), "c.pem"),
      key,
    });
  });

  test("[download] allow and [build] user are checked", () => {
    assert.match(
      configErrorOf("[download]\nallow = librarian.example, 10.0.0.0/33\n"),
      /\[download\] allow = .* is not a list of hosts and networks: "10\.0\.0\.0\/33": \/33 is too long/,
    );
    assert.deepEqual(
      loadConfig({
        file: writeConfigFile("[download]\nallow = Librarian.example:8080 10.0.0.0/8\n"),
      }).download.allow,
      [
        { kind: "host", host: "librarian.example", port: 8080 },
        { kind: "net", address: "10.0.0.0", prefix: 8, family: "ipv4" },
      ],
    );
    assert.match(
      configErrorOf("[build]\nuser = Root Admin\n"),
      /\[build\] user = "Root Admin" is not a user name/,
    );
  });
});
