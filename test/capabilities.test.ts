// Worker capabilities without a database: Debian version comparison (against dpkg
// itself), requirements, the [capabilities] / [capability_env] config sections and their
// errors, the environment mapping, the build gate, probes, and builds through the real
// server with custom-mapped and reserved capabilities. PostgreSQL itself is in
// test/capabilities-pg.test.ts.
import assert from "node:assert/strict";
import { execFileSync, spawnSync } from "node:child_process";
import fs from "node:fs";
import { after, before, describe, test } from "node:test";
import { configErrorOf, writeConfigFile } from "../harness/config.js";
import { startTestBuilder, type RawSections, type TestBuilder } from "../harness/builder.js";
import { RpcFault } from "../harness/client.js";
import { makeTarball, putInCache, status } from "../harness/fixtures.js";
import { startLibrarian, type Librarian } from "../harness/librarian.js";
import {
  cleanBuilder,
  fetchBuildLog,
  runScriptBuild,
  startScriptBuild,
} from "../harness/scenario.js";
import { extractTranscripts, runTranscript } from "../harness/transcript.js";
import { mapCapabilities } from "../src/capabilities/env.js";
import type { CapabilityDecl } from "../src/config/capabilities.js";
import { probeCapability } from "../src/capabilities/probe.js";
import { CapabilityRegistry } from "../src/capabilities/registry.js";
import { parseRequirement, satisfies } from "../src/capabilities/requirements.js";
import { compareVersions, isValidVersion } from "../src/protocol/debian-version.js";
import { loadConfig } from "../src/config/config.js";
import { BuilddError } from "../src/errors.js";
import { createLogger } from "../src/logger.js";
import { DEFAULT_PATH } from "../src/process/environment.js";
import { processRunner } from "../src/process/runner.js";
import type { XmlRpcStruct, XmlRpcValue } from "../src/rpc/codec.js";

const hasDpkg = spawnSync("dpkg", ["--version"]).status === 0;

// [a, b, sign of a compared with b]
const VERSION_PAIRS: [string, string, -1 | 0 | 1][] = [
  ["1.0", "1.0", 0],
  ["1.0", "1.1", -1],
  ["1.10", "1.9", 1],
  ["1.0~rc1", "1.0", -1],
  ["1.0~rc1", "1.0~rc2", -1],
  ["1.0~~", "1.0~", -1],
  ["1.0~", "1.0", -1],
  ["1.0", "1.0+1", -1],
  ["1.0", "1.0.1", -1],
  ["1.0a", "1.0", 1],
  ["1.0a", "1.0+", -1],
  ["1:1.0", "2.0", 1],
  ["0:1.0", "1.0", 0],
  ["1.0-1", "1.0-2", -1],
  ["1.0-10", "1.0-9", 1],
  ["1.0-1", "1.0", 1],
  ["1.0-0", "1.0", 0],
  ["01", "1", 0],
  ["1.001", "1.1", 0],
  ["2.0-1~bpo1", "2.0-1", -1],
  ["2.0-1+deb12u1", "2.0-1", 1],
  ["15", "14", 1],
  ["15", "15.0", -1],
  ["9.6", "10", -1],
  ["1.2.3", "1.2.3-0ubuntu1", -1],
  ["1.0+dfsg", "1.0", 1],
  ["1.0+dfsg", "1.0~dfsg", 1],
  ["4.1", "4.1~beta", 1],
  ["1:0", "0:9", 1],
  ["3.12", "3.9", 1],
  ["7.0.1+ds-2", "7.0.1+ds-10", -1],
  ["1.0.0", "1.0", 1],
  ["2.30-1", "2.3-1", 1],
  ["1.2a", "1.2b", -1],
  ["1.2z", "1.2.0", -1],
  ["10:1", "9:2", 1],
  ["1~", "1~~a", 1],
  ["1.0-1-1", "1.0-1", 1],
  ["2:1.0-a", "2:1.0-b", -1],
];

function dpkgSign(a: string, b: string): number {
  const is = (op: string): boolean =>
    spawnSync("dpkg", ["--compare-versions", a, op, b]).status === 0;
  return is("lt") ? -1 : is("eq") ? 0 : 1;
}

describe("Debian version comparison", () => {
  test(`${VERSION_PAIRS.length} pairs compare as listed, in both directions`, () => {
    for (const [a, b, sign] of VERSION_PAIRS) {
      assert.equal(Math.sign(compareVersions(a, b)), sign, `${a} vs ${b}`);
      assert.equal(Math.sign(compareVersions(b, a)), -sign || 0, `${b} vs ${a}`);
    }
  });

  test(
    "every pair agrees with dpkg --compare-versions",
    { skip: hasDpkg ? false : "dpkg is not installed" },
    () => {
      for (const [a, b] of VERSION_PAIRS) {
        assert.equal(Math.sign(compareVersions(a, b)), dpkgSign(a, b), `${a} vs ${b}`);
      }
    },
  );

  test("invalid versions are recognised", () => {
    for (const v of ["", "abc", "1.0-", "1:", "a1", "1 2", "1_0", "1.0-a_b", "x:1", "1:a"]) {
      assert.equal(isValidVersion(v), false, JSON.stringify(v));
    }
    for (const v of ["15", "1:2.3-4", "1.0~rc1+dfsg-1~bpo12+1", "1:2:3", "0"]) {
      assert.equal(isValidVersion(v), true, v);
    }
  });
});

describe("requirements", () => {
  test("name, name OP version; < and > are strict", () => {
    assert.deepEqual(parseRequirement("private-repo-access"), {
      name: "private-repo-access",
      op: null,
      version: null,
      text: "private-repo-access",
    });
    assert.deepEqual(parseRequirement("postgresql>=15"), {
      name: "postgresql",
      op: ">=",
      version: "15",
      text: "postgresql >= 15",
    });
    assert.equal(parseRequirement("x < 2").op, "<<");
    assert.equal(parseRequirement("x > 2").op, ">>");
    assert.equal(parseRequirement(" x  =  1:2.0-1 ").version, "1:2.0-1");
  });

  test("malformed requirements are rejected with the reason", () => {
    for (const bad of [">= 15", "postgresql >=", "postgresql => 15", "pg >= 1 extra", ""]) {
      assert.throws(() => parseRequirement(bad), /is not a requirement/, bad);
    }
    assert.throws(() => parseRequirement("pg >= x1"), /"x1" is not a valid version/);
  });

  test("operators", () => {
    const ok = (req: string, v: string | null): boolean => satisfies(parseRequirement(req), v);
    assert.ok(ok("pg >= 15", "15"));
    assert.ok(ok("pg >= 15", "16"));
    assert.ok(!ok("pg >= 15", "15~beta1"));
    assert.ok(ok("pg >> 15", "15.1"));
    assert.ok(!ok("pg >> 15", "15"));
    assert.ok(ok("pg << 15", "14"));
    assert.ok(!ok("pg < 15", "15"));
    assert.ok(ok("pg <= 15", "15"));
    assert.ok(ok("pg = 15", "0:15"));
    assert.ok(!ok("pg = 15", "15.0"));
    assert.ok(ok("pg", null));
    // A capability declared without a version meets only a bare name.
    assert.ok(!ok("pg >= 1", null));
  });
});

describe("[capabilities] and [capability_env] in buildd.conf", () => {
  test("the documented example loads, between ordinary sections", () => {
    const file = writeConfigFile(
      [
        "[builder]",
        "bindport = 0",
        "only_if_requires = selenium-server",
        "probe_interval = 2.5",
        "",
        "[capabilities]",
        "# a comment",
        "postgresql 13 port=5433",
        "postgresql 15 port=5432 host=/var/run/postgresql bin=/usr/lib/postgresql/15/bin lib=/usr/lib/postgresql/15/lib",
        "",
        'selenium-server 4.1 probe="curl -sf \\"http://127.0.0.1:4444/status\\"" note="a \\\\ b"',
        "private-repo-access",
        "",
        "[capability_env]",
        "; a comment",
        "rabbitmq RMQ_BASE_URI=base_uri RMQ_USER=user",
        "",
        "[log]",
        "level = warn",
      ].join("\n"),
    );
    const config = loadConfig({ file });
    assert.deepEqual(config.capabilities, [
      { name: "postgresql", version: "13", properties: { port: "5433" } },
      {
        name: "postgresql",
        version: "15",
        properties: {
          port: "5432",
          host: "/var/run/postgresql",
          bin: "/usr/lib/postgresql/15/bin",
          lib: "/usr/lib/postgresql/15/lib",
        },
      },
      {
        name: "selenium-server",
        version: "4.1",
        properties: { probe: 'curl -sf "http://127.0.0.1:4444/status"', note: "a \\ b" },
      },
      { name: "private-repo-access", version: null, properties: {} },
    ]);
    assert.deepEqual(config.capabilityEnv, {
      rabbitmq: { RMQ_BASE_URI: "base_uri", RMQ_USER: "user" },
    });
    assert.deepEqual(config.builder.onlyIfRequires, ["selenium-server"]);
    assert.equal(config.builder.probeIntervalMs, 2500);
    // The INI sections after the line sections are still read.
    assert.equal(config.log.level, "warn");
    assert.equal(config.builder.bindport, 0);
    assert.ok(Object.isFrozen(config.capabilities[1]!.properties));
  });

  test("defaults: no capabilities, not reserved, probes every 60 s", () => {
    const config = loadConfig({ file: writeConfigFile("[builder]\nbindport = 1\n") });
    assert.deepEqual(config.capabilities, []);
    assert.deepEqual(config.capabilityEnv, {});
    assert.deepEqual(config.builder.onlyIfRequires, []);
    assert.equal(config.builder.probeIntervalMs, 60_000);
  });

  test("each malformed line is named by its line number", () => {
    const caps = (...lines: string[]): string =>
      configErrorOf(["[builder]", "bindport = 0", "[capabilities]", ...lines].join("\n"));
    assert.equal(
      caps("postgresql 15", "port=5432"),
      'FILE line 5: [capabilities] "port=5432": a key=value without a name (a line starts with the capability\'s name)',
    );
    assert.equal(
      caps("postgresql fifteen port=5432"),
      'FILE line 4: [capabilities] "fifteen" is not a valid version for postgresql (Debian version syntax)',
    );
    assert.equal(
      caps("postgresql 15 port=1", "", "postgresql 15.0 port=2", "postgresql 0:15 port=3"),
      "FILE line 7: [capabilities] postgresql 0:15 is declared twice (first on line 4)",
    );
    assert.equal(
      caps("private-repo-access", "private-repo-access"),
      "FILE line 5: [capabilities] private-repo-access is declared twice (first on line 4)",
    );
    assert.equal(
      caps('selenium-server 4.1 probe="curl -sf http://x'),
      "FILE line 4: [capabilities] unterminated quote",
    );
    assert.equal(
      caps('selenium-server "4.1"'),
      'FILE line 4: [capabilities] a quote may only open a value (key="…")',
    );
    assert.equal(
      caps('x 1 probe="a"b'),
      "FILE line 4: [capabilities] a closing quote must end the value",
    );
    assert.equal(
      caps("postgresql 15 port=1 port=2"),
      'FILE line 4: [capabilities] property "port" is given twice',
    );
    assert.equal(
      caps("postgresql 15 port=1 extra"),
      'FILE line 4: [capabilities] unexpected "extra": after the name and version only key=value may follow',
    );
    assert.equal(
      caps("post/gres 15"),
      'FILE line 4: [capabilities] "post/gres" is not a valid capability name',
    );
    assert.equal(
      caps("pg 15 9port=1"),
      'FILE line 4: [capabilities] "9port" is not a valid property name',
    );
    const envs = (...lines: string[]): string =>
      configErrorOf(["[capability_env]", ...lines].join("\n"));
    assert.equal(
      envs("rabbitmq RMQ-BASE=base_uri"),
      'FILE line 2: [capability_env] "RMQ-BASE" is not a valid environment variable name',
    );
    assert.equal(
      envs("rabbitmq"),
      "FILE line 2: [capability_env] rabbitmq: no VAR=property mappings",
    );
    assert.equal(
      envs("A=b"),
      'FILE line 2: [capability_env] "A=b": a VAR=property without a capability name before it',
    );
    assert.equal(
      envs("rabbitmq A=x", "rabbitmq B=y"),
      "FILE line 3: [capability_env] mappings for rabbitmq are given twice (first on line 2)",
    );
    assert.equal(envs("rabbitmq A=x A=y"), "FILE line 2: [capability_env] A is mapped twice");
  });

  test("the rest of the file is still validated as before; only_if_requires must be declared", () => {
    assert.equal(
      configErrorOf("[capabilities]\npg 1\n[builder]\nbindprot = 1\n"),
      'FILE: unknown key "bindprot" in section [builder]',
    );
    assert.equal(
      configErrorOf("[builder]\nonly_if_requires = selenium-server\n[capabilities]\npg 1\n"),
      'FILE: [builder] only_if_requires names "selenium-server", which is not declared in [capabilities]',
    );
    assert.equal(
      configErrorOf("[builder]\nprobe_interval = 0\n"),
      'FILE: [builder] probe_interval = "0" is not a positive number of seconds',
    );
  });
});

const decl = (
  name: string,
  version: string | null,
  properties: Record<string, string> = {},
): CapabilityDecl => ({ name, version, properties });

describe("environment mapping", () => {
  test("postgresql by default: PGPORT, PGHOST, PGUSER; bin before PATH, lib in LD_LIBRARY_PATH", () => {
    const { env, shown } = mapCapabilities(
      [
        decl("postgresql", "15", {
          port: "5432",
          host: "/tmp/pg",
          user: "postgres",
          bin: "/usr/lib/postgresql/15/bin",
          lib: "/usr/lib/postgresql/15/lib",
          password: "s3cret",
        }),
      ],
      {},
    );
    assert.deepEqual(env, {
      PGPORT: "5432",
      PGHOST: "/tmp/pg",
      PGUSER: "postgres",
      PATH: `/usr/lib/postgresql/15/bin:${DEFAULT_PATH}`,
      LD_LIBRARY_PATH: "/usr/lib/postgresql/15/lib",
    });
    assert.ok(!shown.join(" ").includes("s3cret"));
  });

  test("missing properties set nothing; custom mappings add to and override the default", () => {
    assert.deepEqual(mapCapabilities([decl("postgresql", "15", { port: "1" })], {}).env, {
      PGPORT: "1",
    });
    const custom = {
      postgresql: { PGPORT: "alt_port", PGDATABASE: "database" },
      rabbitmq: { RMQ_BASE_URI: "base_uri", PATH: "bin", RMQ_PASSWORD: "password" },
    };
    const { env, shown } = mapCapabilities(
      [
        decl("postgresql", "15", { port: "1", alt_port: "2", database: "ci", bin: "/pg/bin" }),
        decl("rabbitmq", "3.12", {
          base_uri: "amqp://h/",
          bin: "/rmq/bin",
          password: "hunter22",
        }),
        decl("selenium-server", "4.1", { port: "4444" }),
      ],
      custom,
    );
    assert.deepEqual(env, {
      PGPORT: "2",
      PGDATABASE: "ci",
      RMQ_BASE_URI: "amqp://h/",
      RMQ_PASSWORD: "hunter22",
      PATH: `/pg/bin:/rmq/bin:${DEFAULT_PATH}`,
    });
    // A secret reaches the build's environment but is not shown in the log line.
    assert.ok(shown.includes("RMQ_PASSWORD=********"), shown.join(" "));
    assert.ok(!shown.join(" ").includes("hunter22"));
  });
});

const silent = createLogger("silent");

function registry(
  states: { decl: CapabilityDecl; available: boolean; reason?: string }[],
  extra: { onlyIfRequires?: string[]; env?: Record<string, Record<string, string>> } = {},
): CapabilityRegistry {
  return new CapabilityRegistry({
    capabilities: states.map((s) => s.decl),
    env: extra.env ?? {},
    onlyIfRequires: extra.onlyIfRequires ?? [],
    probeIntervalMs: 60_000,
    logger: silent,
    probe: async (d) => {
      const s = states.find((x) => x.decl === d)!;
      return { available: s.available, reason: s.reason ?? "" };
    },
  });
}

function refusal(r: CapabilityRegistry, requires: XmlRpcValue): string {
  try {
    r.gate({ build_requires: requires });
  } catch (err) {
    assert.ok(err instanceof BuilddError, String(err));
    assert.equal(err.code, "BUILDD_ERR_REQUIREMENTS");
    return err.message;
  }
  assert.fail("expected a refusal");
}

describe("the build gate", () => {
  const pg13 = decl("postgresql", "13", { port: "5433" });
  const pg15 = decl("postgresql", "15", { port: "5432", password: "pw", bin: "/pg15/bin" });
  const pg16 = decl("postgresql", "16", { port: "5434" });
  const repo = decl("private-repo-access", null, { token: "ghp_x" });

  test("no build_requires on an unreserved worker: nothing added", async () => {
    const r = registry([{ decl: pg15, available: true }]);
    await r.probeAll();
    assert.deepEqual(r.gate({}), { env: {}, logLines: [], extraStatus: {}, secrets: [] });
    assert.deepEqual(r.gate({ build_requires: [] }), {
      env: {},
      logLines: [],
      extraStatus: {},
      secrets: [],
    });
  });

  test("the highest available version that satisfies is chosen", async () => {
    const r = registry([
      { decl: pg13, available: true },
      { decl: pg15, available: true },
      { decl: pg16, available: false, reason: "connection refused" },
    ]);
    await r.probeAll();
    const g = r.gate({ build_requires: ["postgresql >= 13"] });
    assert.equal(g.env["PGPORT"], "5432");
    assert.equal(g.env["PATH"], `/pg15/bin:${DEFAULT_PATH}`);
    assert.deepEqual(g.extraStatus, {
      capabilities: {
        postgresql: { version: "15", properties: { port: "5432", bin: "/pg15/bin" } },
      },
    });
    assert.deepEqual(g.logLines, [
      `[buildd] capability postgresql 15 chosen for "postgresql >= 13" (PGPORT=5432 PATH=/pg15/bin:${DEFAULT_PATH})`,
    ]);
    // Two requirements on one name are met by one capability.
    const g2 = r.gate({ build_requires: ["postgresql >= 13", "postgresql << 15"] });
    assert.equal(g2.env["PGPORT"], "5433");
    // A bare name is met by any version, and is how a versionless capability is required.
    const r2 = registry([
      { decl: pg13, available: true },
      { decl: repo, available: true },
    ]);
    await r2.probeAll();
    const g3 = r2.gate({ build_requires: ["postgresql", "private-repo-access"] });
    assert.deepEqual(g3.extraStatus, {
      capabilities: {
        postgresql: { version: "13", properties: { port: "5433" } },
        "private-repo-access": { version: "", properties: {} },
      },
    });
  });

  test("refusals say which requirement failed and what the worker has", async () => {
    const r = registry([
      { decl: pg13, available: true },
      { decl: pg15, available: false, reason: "connection refused" },
      { decl: repo, available: true },
    ]);
    await r.probeAll();
    assert.equal(
      refusal(r, ["postgresql >= 16"]),
      "build requires postgresql >= 16, but this worker has postgresql 13, 15 (unavailable)",
    );
    assert.equal(
      refusal(r, ["postgresql >= 15"]),
      "build requires postgresql >= 15, but postgresql 15 is unavailable: connection refused",
    );
    assert.equal(
      refusal(r, ["nosuch"]),
      "build requires nosuch, but this worker has no nosuch capability",
    );
    assert.equal(
      refusal(r, ["postgresql >= 14", "postgresql << 14"]),
      "build requires postgresql >= 14, postgresql << 14, but this worker has postgresql 13, 15 (unavailable)",
    );
    assert.equal(
      refusal(r, ["private-repo-access >= 1", "nosuch", "postgresql"]),
      "build requires private-repo-access >= 1, but this worker has private-repo-access (no version); build requires nosuch, but this worker has no nosuch capability",
    );
  });

  test("a reserved worker takes only builds that require its resource", async () => {
    const sel = decl("selenium-server", "4.1");
    const r = registry(
      [
        { decl: sel, available: true },
        { decl: pg15, available: true },
      ],
      { onlyIfRequires: ["selenium-server"] },
    );
    await r.probeAll();
    assert.equal(refusal(r, []), "this worker only takes builds that require selenium-server");
    assert.equal(
      refusal(r, ["postgresql >= 15"]),
      "this worker only takes builds that require selenium-server",
    );
    assert.deepEqual(
      Object.keys(r.gate({ build_requires: ["selenium-server", "postgresql"] }).extraStatus),
      ["capabilities"],
    );
  });

  test("build_requires must be a list of valid requirements", async () => {
    const r = registry([]);
    for (const bad of ["postgresql >= 15", ["postgresql >= 15", 15], { a: "b" }]) {
      assert.throws(() => r.gate({ build_requires: bad }), {
        code: "BUILDD_ERR_INVALID_ARGUMENT",
        message:
          'build_requires must be a list of strings such as "postgresql >= 15" or "private-repo-access"',
      });
    }
    assert.throws(() => r.gate({ build_requires: ["postgresql => 15"] }), {
      code: "BUILDD_ERR_INVALID_ARGUMENT",
      message: /^build_requires: "postgresql => 15" is not a requirement/,
    });
  });

  test("capabilities() lists every version and never a secret-looking property", async () => {
    const r = registry([
      {
        decl: decl("postgresql", "15", {
          port: "5432",
          password: "a",
          PGPASS_FILE: "b",
          api_key: "c",
          client_secret: "d",
          auth_token: "e",
          Credentials: "f",
        }),
        available: true,
      },
      { decl: pg13, available: false, reason: "down" },
      { decl: repo, available: true },
    ]);
    assert.equal(
      (r.toWire()["postgresql"] as XmlRpcStruct[])[0]!["reason"],
      "not probed yet",
      "nothing is vouched for before the first probe",
    );
    await r.probeAll();
    assert.deepEqual(r.toWire(), {
      postgresql: [
        { version: "15", properties: { port: "5432" }, available: true, reason: "" },
        { version: "13", properties: { port: "5433" }, available: false, reason: "down" },
      ],
      "private-repo-access": [{ version: "", properties: {}, available: true, reason: "" }],
    });
  });

  test("periodic probes update availability; close() stops them", async () => {
    let up = true;
    let probes = 0;
    const r = new CapabilityRegistry({
      capabilities: [decl("thing", "1")],
      env: {},
      onlyIfRequires: [],
      probeIntervalMs: 20,
      logger: silent,
      probe: async () => {
        probes++;
        return up ? { available: true, reason: "" } : { available: false, reason: "it broke" };
      },
    });
    await r.probeAll();
    r.start();
    assert.doesNotThrow(() => r.gate({ build_requires: ["thing"] }));
    up = false;
    const deadline = Date.now() + 5000;
    while (r.list()[0]!.available && Date.now() < deadline)
      await new Promise((res) => setTimeout(res, 10));
    assert.equal(
      refusal(r, ["thing"]),
      "build requires thing, but thing 1 is unavailable: it broke",
    );
    await r.close();
    const after = probes;
    await new Promise((res) => setTimeout(res, 100));
    assert.equal(probes, after, "no probe after close()");
  });
});

describe("probes", () => {
  const opts = { timeoutMs: 2000, custom: {}, runner: processRunner };

  test("probe= runs with /bin/sh in the capability's environment; exit 0 is available", async () => {
    const custom = { rabbitmq: { RMQ_BASE_URI: "base_uri" } };
    const d = decl("rabbitmq", "3.12", {
      base_uri: "amqp://h/",
      probe: 'test "$RMQ_BASE_URI" = amqp://h/',
    });
    assert.deepEqual(await probeCapability(d, { ...opts, custom }), {
      available: true,
      reason: "",
    });
    assert.deepEqual(await probeCapability(d, opts), {
      available: false,
      reason: "probe exited with status 1",
    });
    assert.deepEqual(
      await probeCapability(
        decl("x", "1", { probe: "echo starting; echo 'no server' >&2; exit 7" }),
        opts,
      ),
      { available: false, reason: "probe exited with status 7: no server" },
    );
  });

  test("a hanging probe is killed, with whatever it started, at its timeout", async () => {
    const marker = `probe-${process.pid}-${Date.now()}`;
    const t0 = Date.now();
    const r = await probeCapability(decl("x", "1", { probe: `sleep 30 # ${marker}` }), {
      ...opts,
      timeoutMs: 300,
    });
    assert.deepEqual(r, { available: false, reason: "probe timed out after 0.3 s" });
    assert.ok(Date.now() - t0 < 3000, "answered soon after the timeout");
    const left = execFileSync("ps", ["-eo", "args"], { encoding: "utf8" });
    assert.ok(!left.includes(marker), "no probe process left");
  });

  test("postgresql without a server: unavailable, psql's reason given", async () => {
    const r = await probeCapability(
      decl("postgresql", "15", { host: "/nonexistent-buildd-socket-dir", port: "5999" }),
      opts,
    );
    assert.equal(r.available, false);
    assert.match(r.reason, /^connecting with psql (exited with status 2|could not be started)/);
    assert.match(r.reason, /nonexistent-buildd-socket-dir|ENOENT/);
  });
});

describe("capabilities through the real server (script builds)", () => {
  let b: TestBuilder;
  let reserved: TestBuilder;
  let lib: Librarian;
  let tree: string;
  let reservedTree: string;

  before(async () => {
    b = await startTestBuilder(
      {},
      {
        capabilities: [
          "rabbitmq 3.12 base_uri=amqp://rmq.example:5672/ password=hunter22",
          "tool 1.0 bin=/opt/tool-1.0/bin",
          "tool 2.0 bin=/opt/tool-2.0/bin",
          "tool 3.0 bin=/opt/tool-3.0/bin probe=false",
          "private-repo-access",
        ],
        capability_env: ["rabbitmq RMQ_BASE_URI=base_uri RMQ_PASSWORD=password", "tool PATH=bin"],
      },
    );
    reserved = await startTestBuilder(
      { builder: { only_if_requires: "selenium-server" } },
      { capabilities: ["selenium-server 4.1", "private-repo-access"] },
    );
    lib = await startLibrarian();
    const tarball = makeTarball({ README: "capabilities\n" });
    tree = await putInCache(b.client, lib, tarball);
    reservedTree = await putInCache(reserved.client, lib, tarball, "again");
  });
  after(async () => {
    await b.stop();
    await reserved.stop();
    await lib.close();
  });

  test("a custom mapping puts a non-PostgreSQL capability into every step's environment", async () => {
    const id = "CAP-rmq";
    const s = await runScriptBuild(b.client, id, tree, {
      build_requires: ["rabbitmq >= 3", "tool"],
      steps: [
        { name: "first", run: 'echo "uri=$RMQ_BASE_URI"' },
        { name: "second", run: 'echo "again=$RMQ_BASE_URI pw=${#RMQ_PASSWORD} path=$PATH"' },
        { name: "leak", run: 'echo "leaked=$RMQ_PASSWORD"' },
      ],
    });
    assert.equal(s["build_status"], "BuildStatus.OK");
    assert.deepEqual(s["capabilities"], {
      rabbitmq: { version: "3.12", properties: { base_uri: "amqp://rmq.example:5672/" } },
      tool: { version: "2.0", properties: { bin: "/opt/tool-2.0/bin" } },
    });
    const log = await fetchBuildLog(b.url);
    const lines = log.split("\n");
    assert.equal(
      lines[0],
      '[buildd] capability rabbitmq 3.12 chosen for "rabbitmq >= 3" (RMQ_BASE_URI=amqp://rmq.example:5672/ RMQ_PASSWORD=********)',
    );
    assert.equal(
      lines[1],
      `[buildd] capability tool 2.0 chosen for "tool" (PATH=/opt/tool-2.0/bin:${DEFAULT_PATH})`,
      "tool 3.0 is higher but its probe fails, so 2.0 is the highest available",
    );
    assert.match(log, /^uri=amqp:\/\/rmq\.example:5672\/$/m);
    assert.match(log, /^leaked=\*{8}$/m, "a capability's password printed by a step is scrubbed");
    assert.doesNotMatch(log, /hunter22/);
    assert.match(
      log,
      new RegExp(
        `^again=amqp://rmq\\.example:5672/ pw=8 path=/opt/tool-2\\.0/bin:${DEFAULT_PATH}$`,
        "m",
      ),
    );
    assert.ok(!log.includes("hunter22"));
    await cleanBuilder(b.client);
  });

  test("capabilities() over XML-RPC; info() keeps its three elements", async () => {
    const caps = (await b.client.call("capabilities")) as Record<string, XmlRpcStruct[]>;
    assert.deepEqual(caps["rabbitmq"], [
      {
        version: "3.12",
        properties: { base_uri: "amqp://rmq.example:5672/" },
        available: true,
        reason: "",
      },
    ]);
    assert.deepEqual(
      caps["tool"]!.map((c) => [c["version"], c["available"], c["reason"]]),
      [
        ["1.0", true, ""],
        ["2.0", true, ""],
        ["3.0", false, "probe exited with status 1"],
      ],
    );
    assert.equal(((await b.client.call("info")) as XmlRpcValue[]).length, 3);
  });

  test("a refused build changes nothing: still IDLE, no build log, the next build runs", async () => {
    const cases: [string[], string][] = [
      [["rabbitmq >= 4"], "build requires rabbitmq >= 4, but this worker has rabbitmq 3.12"],
      [
        ["tool >= 3"],
        "build requires tool >= 3, but tool 3.0 is unavailable: probe exited with status 1",
      ],
      [["nosuch"], "build requires nosuch, but this worker has no nosuch capability"],
    ];
    for (const [requires, message] of cases) {
      await assert.rejects(
        startScriptBuild(b.client, "CAP-refused", tree, {
          build_requires: requires,
          steps: [{ name: "x", run: "true" }],
        }),
        (e: unknown) => e instanceof RpcFault && e.faultCode === 8002 && e.faultString === message,
        message,
      );
      const s = await status(b.client);
      assert.equal(s["builder_status"], "BuilderStatus.IDLE");
      assert.equal(s["build_id"], undefined);
      assert.equal((await fetch(`${b.url}/filecache/buildlog`)).status, 404);
    }
    const s = await runScriptBuild(b.client, "CAP-after", tree, {
      steps: [{ name: "x", run: "true" }],
    });
    assert.equal(s["build_status"], "BuildStatus.OK");
    assert.equal(s["capabilities"], undefined, "no capabilities when none were required");
    await cleanBuilder(b.client);
  });

  test("a reserved worker refuses an unrelated build and takes one that requires it", async () => {
    const args = (requires: string[]): XmlRpcStruct => ({
      build_requires: requires,
      steps: [{ name: "x", run: "echo ok" }],
    });
    for (const requires of [[], ["private-repo-access"]]) {
      await assert.rejects(
        startScriptBuild(reserved.client, "R1", reservedTree, args(requires)),
        (e: unknown) =>
          e instanceof RpcFault &&
          e.faultString === "this worker only takes builds that require selenium-server",
      );
    }
    assert.equal((await status(reserved.client))["builder_status"], "BuilderStatus.IDLE");
    const s = await runScriptBuild(
      reserved.client,
      "R2",
      reservedTree,
      args(["selenium-server >= 4", "private-repo-access"]),
    );
    assert.equal(s["build_status"], "BuildStatus.OK");
    assert.deepEqual(Object.keys(s["capabilities"] as XmlRpcStruct).sort(), [
      "private-repo-access",
      "selenium-server",
    ]);
    await cleanBuilder(reserved.client);
  });
});

describe("the configured capabilities() example in docs/protocol.md", () => {
  const doc = fs.readFileSync("docs/protocol.md", "utf8");
  const section = doc.slice(doc.indexOf("## capabilities()"));
  // The configuration, then the secrets file's [capabilities] lines that complete it.
  const [ini = "", secretsIni = ""] = [...section.matchAll(/```ini\n([\s\S]*?)```/g)].map(
    (m) => m[1]!,
  );
  // Only the configured transcripts: the plain ones run in test/docs.test.ts.
  const transcripts = extractTranscripts(
    "docs/protocol.md",
    doc
      .replaceAll("```transcript", "```other")
      .replaceAll("```configured-transcript", "```transcript"),
  );
  let b: TestBuilder;

  before(async () => {
    const raw: Record<string, string[]> = {};
    let current: string[] | null = null;
    for (const line of ini.split("\n")) {
      const header = /^\[(.+)\]$/.exec(line);
      if (header) raw[header[1]!] = current = [];
      else if (current) current.push(line);
      else assert.equal(line.trim(), "", "the example has only line sections");
    }
    // The harness writes secret properties to the secrets file again, as buildd requires.
    for (const line of secretsIni.split("\n").filter((l) => /^[a-z]/.test(l))) {
      const words = line.split(" ");
      const head = words.filter((w) => !w.includes("=")).join(" ");
      const i = raw["capabilities"]!.findIndex((l) => l === head || l.startsWith(`${head} `));
      assert.ok(i >= 0, `the secrets line "${line}" completes a declared capability`);
      raw["capabilities"]![i] += ` ${words.filter((w) => w.includes("=")).join(" ")}`;
    }
    b = await startTestBuilder({}, raw as RawSections);
  });
  after(() => b.stop());

  test("the example has a configuration and a transcript", () => {
    assert.match(ini, /^\[capabilities\]$/m);
    assert.equal(transcripts.length, 1);
  });
  for (const t of transcripts) {
    test(`${t.file}:${t.line}`, () => runTranscript(t, b.client));
  }
});
