// Declared build arguments: a key no build type declares is refused by build() before
// anything changes, naming the nearest known key; every key a Launchpad manager sends is
// declared; docs/buildtypes.md lists exactly the declared keys.
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import Database from "better-sqlite3";
import { after, before, describe, test } from "node:test";
import type { TestBuilder } from "../harness/builder.js";
import { RpcFault } from "../harness/client.js";
import { putInCache, status } from "../harness/fixtures.js";
import type { Librarian } from "../harness/librarian.js";
import {
  cleanBuilder,
  fetchBuildLog,
  runScriptBuild,
  startScenario,
  type Scenario,
} from "../harness/scenario.js";
import {
  argumentsOf,
  checkArgumentNames,
  editDistance,
  nearestName,
} from "../src/buildtypes/arguments.js";
import { defaultRegistry } from "../src/buildtypes/registry.js";
import type { XmlRpcStruct } from "../src/rpc/codec.js";

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");

/** What a Launchpad manager sends for a binarypackage build (its extraBuildArgs). */
const LAUNCHPAD_BINARYPACKAGE_ARGS: XmlRpcStruct = {
  arch_indep: true,
  arch_tag: "amd64",
  archive_private: false,
  archive_purpose: "PRIMARY",
  archives: ["deb http://ftpmaster.internal/ubuntu noble main"],
  build_debug_symbols: false,
  build_url: "https://launchpad.example/ubuntu/+source/hello/2.10-3/+build/1",
  builder_constraints: [],
  distribution: "ubuntu",
  fast_cleanup: true,
  image_type: "chroot",
  ogrecomponent: "main",
  series: "noble",
  suite: "noble-proposed",
  trusted_keys: [],
};

describe("the nearest known name", () => {
  test("edit distance counts a swap of neighbours as one edit", () => {
    assert.equal(editDistance("timeout", "timeout"), 0);
    assert.equal(editDistance("timout", "timeout"), 1);
    assert.equal(editDistance("tiemout", "timeout"), 1);
    assert.equal(editDistance("", "abc"), 3);
    assert.equal(editDistance("kitten", "sitting"), 3);
  });

  test("a close typo gets a suggestion, a wild guess none", () => {
    const known = ["steps", "environment", "secrets", "artifacts", "timeout", "image_type"];
    assert.equal(nearestName("artifact", known), "artifacts");
    assert.equal(nearestName("timout", known), "timeout");
    assert.equal(nearestName("Steps", known), "steps");
    assert.equal(nearestName("imagetype", known), "image_type");
    assert.equal(nearestName("enviroment", known), "environment");
    assert.equal(nearestName("xyz", known), null);
    assert.equal(nearestName("zzzzzzzz", known), null);
  });
});

describe("declared arguments", () => {
  const registry = defaultRegistry();

  test("every key a Launchpad manager sends for binarypackage is declared", () => {
    const type = registry.get("binarypackage")!;
    assert.doesNotThrow(() => checkArgumentNames(type, LAUNCHPAD_BINARYPACKAGE_ARGS));
  });

  test("docs/buildtypes.md lists exactly the declared keys of each type", () => {
    const doc = fs.readFileSync(path.join(ROOT, "docs/buildtypes.md"), "utf8");
    // A section per type, `## \`<name>\`…`; its argument table's first column names keys.
    const sections = doc.split(/^## /m).slice(1);
    const common = /^Every build type also takes:[\s\S]*?(?=\n\n[^|])/m.exec(doc)?.[0] ?? "";
    const keysIn = (text: string): string[] =>
      [...text.matchAll(/^\| ([^|]+)\|/gm)]
        .flatMap((m) => [...m[1]!.matchAll(/`([a-z_]+)`/g)].map((k) => k[1]!))
        .filter((k) => k !== "argument");
    const commonKeys = keysIn(common);
    assert.ok(commonKeys.length > 0, "docs/buildtypes.md lists the keys every build takes");
    for (const name of registry.names()) {
      const type = registry.get(name)!;
      const section = sections.find((s) => s.startsWith(`\`${name}\``));
      assert.ok(section, `docs/buildtypes.md has a section for ${name}`);
      const table = section.split(/\n\n/).find((block) => /^\| argument/m.test(block)) ?? "";
      const documented = new Set([...commonKeys, ...keysIn(table)]);
      const declared = new Set(argumentsOf(type).map((a) => a.name));
      assert.deepEqual([...documented].sort(), [...declared].sort(), `the keys of ${name}`);
    }
  });
});

describe("build() refuses an unknown argument before anything changes", () => {
  let scenario: Scenario;
  let b: TestBuilder;
  let lib: Librarian;
  let tree: string;

  before(async () => {
    scenario = await startScenario({ "out/report.txt": "report\n" });
    ({ builder: b, librarian: lib, tree } = scenario);
  });
  after(() => scenario.stop());

  const buildRows = (): number => {
    const db = new Database(path.join(b.statedir, "buildd.sqlite"), { readonly: true });
    try {
      return (db.prepare("SELECT COUNT(*) AS n FROM builds").get() as { n: number }).n;
    } finally {
      db.close();
    }
  };

  async function expectRefusal(
    type: string,
    filemap: XmlRpcStruct,
    args: XmlRpcStruct,
    message: RegExp,
  ): Promise<void> {
    const rows = buildRows();
    await assert.rejects(b.client.call("build", "TYPO", type, tree, filemap, args), (e) => {
      assert.ok(e instanceof RpcFault, String(e));
      assert.equal(e.faultCode, 8002);
      assert.match(e.faultString, message);
      return true;
    });
    assert.equal((await status(b.client))["builder_status"], "BuilderStatus.IDLE");
    assert.equal(buildRows(), rows, "no build was journaled");
  }

  const steps = [{ name: "ok", run: "true" }];

  test("`artifact` for `artifacts`, `timout` for `timeout`: named, with the nearest key", async () => {
    await expectRefusal(
      "script",
      {},
      { steps, artifact: ["out/*"] },
      /^script build: unknown argument "artifact"; did you mean "artifacts"\? Known arguments of script builds: build_url, build_requires, steps, .* \(see docs\/buildtypes\.md\)$/,
    );
    await expectRefusal(
      "script",
      {},
      { steps, timout: 1 },
      /^script build: unknown argument "timout"; did you mean "timeout"\?/,
    );
  });

  test("several unknown keys are named in one fault", async () => {
    await expectRefusal(
      "script",
      {},
      { steps, artifact: ["out/*"], qqqqqqqq: 1, timout: 1 },
      /^script build: unknown arguments "artifact" \(did you mean "artifacts"\?\), "qqqqqqqq", "timout" \(did you mean "timeout"\?\)\. Known arguments of script builds: /,
    );
  });

  test("a key close to nothing gets no suggestion", async () => {
    await expectRefusal(
      "script",
      {},
      { steps, qqqqqqqq: 1 },
      /^script build: unknown argument "qqqqqqqq"\. Known arguments of script builds: /,
    );
  });

  test("binarypackage: a typo in a Launchpad key is named", async () => {
    const dsc = await putInCache(b.client, lib, Buffer.from("Format: 1.0\n"), "typo.dsc");
    const { ogrecomponent, ...rest } = LAUNCHPAD_BINARYPACKAGE_ARGS;
    await expectRefusal(
      "binarypackage",
      { "hello_1.0.dsc": dsc },
      { ...rest, ogrecomponnet: ogrecomponent! },
      /^binarypackage build: unknown argument "ogrecomponnet"; did you mean "ogrecomponent"\?/,
    );
  });

  test("the keys every build takes are accepted: build_url is the log's first line", async () => {
    const url = "https://manager.example/builds/42";
    const args = { steps, artifacts: ["out/*"], timeout: 60, build_url: url, build_requires: [] };
    const s = await runScriptBuild(b.client, "ARGS-OK", tree, args);
    assert.equal(s["build_status"], "BuildStatus.OK");
    assert.deepEqual(Object.keys(s["filemap"] as XmlRpcStruct), ["out/report.txt"]);
    const log = await fetchBuildLog(b.url);
    assert.equal(log.split("\n")[0], url);
    await cleanBuilder(b.client);
  });
});
