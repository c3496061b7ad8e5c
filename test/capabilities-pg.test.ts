// Capabilities against a real PostgreSQL server from Debian: a throwaway cluster,
// started by this test as the unprivileged `postgres` user in a temporary directory on a
// free port (Unix socket only), stopped afterwards. The builder declares it; a script
// build that requires it runs psql with nothing but the environment the builder gives
// it. Then the cluster is stopped, the probe notices, and build() refuses.
import assert from "node:assert/strict";
import { execFileSync, spawnSync } from "node:child_process";
import fs from "node:fs";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { after, before, describe, test } from "node:test";
import { startTestBuilder, type TestBuilder } from "../harness/builder.js";
import { RpcFault } from "../harness/client.js";
import {
  eventually,
  fetchText,
  makeTarball,
  putInCache,
  status,
  waitForState,
} from "../harness/fixtures.js";
import { startLibrarian, type Librarian } from "../harness/librarian.js";
import type { XmlRpcStruct } from "../src/rpc/codec.js";

const PG_BIN = "/usr/lib/postgresql/15/bin";

function skipReason(): string | false {
  if (process.getuid?.() !== 0) {
    return "not root: the test starts a PostgreSQL cluster as the postgres user";
  }
  if (!fs.existsSync(path.join(PG_BIN, "initdb")) || !fs.existsSync(path.join(PG_BIN, "psql"))) {
    return `PostgreSQL 15 is not installed (no ${PG_BIN}/initdb; scripts/test-deps.sh installs it)`;
  }
  if (spawnSync("id", ["-u", "postgres"]).status !== 0) return "there is no postgres user";
  return false;
}

async function freePort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as net.AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

/** A PostgreSQL cluster in a temporary directory, run by the postgres user. */
class Cluster {
  readonly dir: string;
  readonly data: string;

  private constructor(readonly port: number) {
    this.dir = fs.mkdtempSync(path.join(os.tmpdir(), "buildd-pg-"));
    this.data = path.join(this.dir, "data");
  }

  static async create(): Promise<Cluster> {
    const c = new Cluster(await freePort());
    const uid = Number(execFileSync("id", ["-u", "postgres"], { encoding: "utf8" }).trim());
    const gid = Number(execFileSync("id", ["-g", "postgres"], { encoding: "utf8" }).trim());
    fs.chownSync(c.dir, uid, gid);
    // The socket directory is open to other users, as Debian's /var/run/postgresql is:
    // build steps connect as the unprivileged build user, not as root.
    fs.chmodSync(c.dir, 0o755);
    try {
      c.asPostgres("initdb", ["-D", c.data, "--auth=trust", "-U", "postgres"]);
      c.start();
    } catch (err) {
      c.destroy();
      throw err;
    }
    return c;
  }

  private asPostgres(tool: string, args: string[]): void {
    // stdio ignored and -l for the server: a server that inherited our pipes would keep
    // execFileSync waiting for as long as it runs.
    execFileSync("runuser", ["-u", "postgres", "--", path.join(PG_BIN, tool), ...args], {
      stdio: ["ignore", "ignore", "pipe"],
      cwd: this.dir,
      timeout: 60_000,
    });
  }

  start(): void {
    this.asPostgres("pg_ctl", [
      "-D",
      this.data,
      "-l",
      path.join(this.dir, "server.log"),
      "-o",
      `-p ${this.port} -k ${this.dir} -c listen_addresses=''`,
      "-w",
      "start",
    ]);
  }

  stop(): void {
    this.asPostgres("pg_ctl", ["-D", this.data, "-m", "immediate", "-w", "stop"]);
  }

  /** Stop if running, remove everything; never throws (teardown). */
  destroy(): void {
    try {
      this.stop();
    } catch {
      // not running
    }
    fs.rmSync(this.dir, { recursive: true, force: true });
  }
}

const skip = skipReason();

describe("capabilities with a real PostgreSQL 15", { skip }, () => {
  let cluster: Cluster | undefined;
  let b: TestBuilder | undefined;
  let lib: Librarian | undefined;
  let tree: string;
  let noServerPort: number;

  const builder = (): TestBuilder => b!;
  const pg = (): Cluster => cluster!;

  before(async () => {
    cluster = await Cluster.create();
    noServerPort = await freePort();
    const props = `host=${cluster.dir} bin=${PG_BIN} user=postgres`;
    b = await startTestBuilder(
      { builder: { probe_interval: 0.3 } },
      {
        capabilities: [
          `postgresql 15 port=${cluster.port} ${props}`,
          // Nothing listens here: declared, but the probe finds no server.
          `postgresql 13 port=${noServerPort} ${props}`,
          // The real server, declared as the wrong major version.
          `postgresql 16 port=${cluster.port} ${props}`,
        ],
      },
    );
    lib = await startLibrarian();
    tree = await putInCache(b.client, lib, makeTarball({ "schema.sql": "select 1;\n" }));
  });

  after(async () => {
    await b?.stop();
    await lib?.close();
    cluster?.destroy();
  });

  async function capabilityStates(): Promise<[string, boolean, string][]> {
    const caps = (await builder().client.call("capabilities")) as Record<string, XmlRpcStruct[]>;
    return caps["postgresql"]!.map((c) => [
      c["version"] as string,
      c["available"] as boolean,
      c["reason"] as string,
    ]);
  }

  async function refused(requires: string[]): Promise<string> {
    try {
      await builder().client.call(
        "build",
        "PG-refused",
        "script",
        tree,
        {},
        {
          build_requires: requires,
          steps: [{ name: "never", run: "echo should-not-run" }],
        },
      );
    } catch (err) {
      assert.ok(err instanceof RpcFault && err.faultCode === 8002, String(err));
      return err.faultString;
    }
    assert.fail("expected build() to be refused");
  }

  test("the probes: 15 is up, 13 has no server, 16 is really 15", async () => {
    const states = await capabilityStates();
    assert.deepEqual(states[0], ["15", true, ""]);
    assert.equal(states[1]![0], "13");
    assert.equal(states[1]![1], false);
    assert.match(
      states[1]![2],
      new RegExp(
        `^connecting with psql exited with status 2: psql: error: connection to server on socket "${pg().dir}/\\.s\\.PGSQL\\.${noServerPort}" failed: No such file or directory$`,
      ),
    );
    assert.equal(states[2]![0], "16");
    assert.equal(states[2]![1], false);
    assert.match(
      states[2]![2],
      /^the server is PostgreSQL 15 \(server_version_num 15\d{4}\), declared 16$/,
    );
  });

  test("a script build requiring postgresql >= 15 runs psql on the builder's environment alone", async () => {
    const id = "PG-ok";
    assert.deepEqual(
      await builder().client.call(
        "build",
        id,
        "script",
        tree,
        {},
        {
          build_requires: ["postgresql >= 15"],
          steps: [
            { name: "version", run: "psql -c 'select version()'" },
            { name: "which", run: "command -v psql" },
            { name: "schema", run: ["psql", "-v", "ON_ERROR_STOP=1", "-f", "schema.sql"] },
          ],
        },
      ),
      ["BuilderStatus.BUILDING", id],
    );
    const s = await waitForState(builder().client, "WAITING");
    const log = await fetchText(`${builder().url}/filecache/buildlog`);
    assert.equal(s["build_status"], "BuildStatus.OK", log);
    assert.deepEqual(s["capabilities"], {
      postgresql: {
        version: "15",
        properties: { port: String(pg().port), host: pg().dir, bin: PG_BIN, user: "postgres" },
      },
    });
    assert.equal(
      log.split("\n")[0],
      `[buildd] capability postgresql 15 chosen for "postgresql >= 15" (PGPORT=${pg().port} PGHOST=${pg().dir} PGUSER=postgres PATH=${PG_BIN}:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin)`,
    );
    assert.match(log, /^ PostgreSQL 15\.\d+ /m);
    assert.match(log, /^\(1 row\)$/m);
    assert.match(log, new RegExp(`^${PG_BIN}/psql$`, "m"), "psql comes from the declared bin");
    assert.equal(await builder().client.call("clean"), "BuilderStatus.IDLE");
  });

  test("requirements the worker cannot meet are refused with the reason; nothing changes", async () => {
    assert.equal(
      await refused(["postgresql >= 17"]),
      "build requires postgresql >= 17, but this worker has postgresql 15, 13 (unavailable), 16 (unavailable)",
    );
    assert.match(
      await refused(["postgresql << 15"]),
      /^build requires postgresql << 15, but postgresql 13 is unavailable: connecting with psql exited with status 2: psql: error: connection to server on socket ".*" failed: No such file or directory$/,
    );
    assert.match(
      await refused(["postgresql >= 16"]),
      /^build requires postgresql >= 16, but postgresql 16 is unavailable: the server is PostgreSQL 15 /,
    );
    assert.equal((await status(builder().client))["builder_status"], "BuilderStatus.IDLE");
    assert.equal((await fetch(`${builder().url}/filecache/buildlog`)).status, 404);
  });

  test("the cluster stops: the probe marks it unavailable and build() is refused, until it is back", async () => {
    pg().stop();
    await eventually(
      "the probe to notice the stopped cluster",
      async () => (await capabilityStates())[0]![1] === false,
      10_000,
    );
    const reason = (await capabilityStates())[0]![2];
    assert.match(
      reason,
      new RegExp(
        `^connecting with psql exited with status 2: psql: error: connection to server on socket "${pg().dir}/\\.s\\.PGSQL\\.${pg().port}" failed: No such file or directory$`,
      ),
    );
    assert.equal(
      await refused(["postgresql >= 15"]),
      `build requires postgresql >= 15, but postgresql 15 is unavailable: ${reason}; postgresql 16 is unavailable: ${(await capabilityStates())[2]![2]}`,
    );
    assert.equal((await status(builder().client))["builder_status"], "BuilderStatus.IDLE");

    pg().start();
    await eventually(
      "the probe to see the cluster again",
      async () => (await capabilityStates())[0]![1] === true,
      10_000,
    );
    assert.deepEqual(
      await builder().client.call(
        "build",
        "PG-again",
        "script",
        tree,
        {},
        {
          build_requires: ["postgresql = 15"],
          steps: [{ name: "ping", run: "psql -tAc 'select 40 + 2'" }],
        },
      ),
      ["BuilderStatus.BUILDING", "PG-again"],
    );
    const s = await waitForState(builder().client, "WAITING");
    assert.equal(s["build_status"], "BuildStatus.OK");
    assert.match(await fetchText(`${builder().url}/filecache/buildlog`), /^42$/m);
    assert.equal(await builder().client.call("clean"), "BuilderStatus.IDLE");
  });
});
