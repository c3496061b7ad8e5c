// The layering rules of .dependency-cruiser.mjs: that they bite (on a fixture tree with
// one violation of each rule), that every module of src/ falls under exactly one layer,
// and that the README's layout names exactly the folders and top-level files of src/.
// `npm run layers` (part of `npm test`) applies the same rules to the real tree.

import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { describe, test } from "node:test";
import { pathToFileURL } from "node:url";

const ROOT = path.resolve(import.meta.dirname, "..");
const CONFIG = path.join(ROOT, ".dependency-cruiser.mjs");

/** A layer as the rule file states it (see its LAYERS table). */
interface Layer {
  readonly name: string;
  readonly path: string;
  readonly may: readonly string[];
}
const { LAYERS } = (await import(pathToFileURL(CONFIG).href)) as { LAYERS: readonly Layer[] };
const FIXTURE = path.join(ROOT, "test/fixtures/layers");
const DEPCRUISE = path.join(ROOT, "node_modules/dependency-cruiser/bin/dependency-cruise.mjs");

interface Violation {
  readonly from: string;
  readonly to: string;
  readonly rule: { readonly name: string };
}

/** Run the depcruise CLI on `dir`/src with our rule file, as `npm run layers` does. */
function depcruise(dir: string, outputType: "json" | "err"): ReturnType<typeof spawnSync> {
  return spawnSync(
    process.execPath,
    [DEPCRUISE, "src", "--config", CONFIG, "--output-type", outputType],
    { cwd: dir, encoding: "utf8" },
  );
}

/** The violations depcruise reports for `dir`/src, as "rule: from → to", sorted. */
function violations(dir: string): string[] {
  const r = depcruise(dir, "json");
  const out = String(r.stdout);
  assert.ok(out.startsWith("{"), `depcruise printed no report: ${String(r.stderr)}`);
  const report = JSON.parse(out) as { summary: { violations: Violation[] } };
  return report.summary.violations
    .map(
      // A package is named by itself, not by where npm happened to install it.
      (v) => `${v.rule.name}: ${v.from} → ${v.to.replace(/^.*node_modules\/([^/]+)\/.*$/, "$1")}`,
    )
    .sort();
}

describe("layering rules", () => {
  test("report an upward import, a cycle and each other broken rule in a fixture tree, and nothing else", () => {
    assert.deepEqual(violations(FIXTURE), [
      "codec-only-in-rpc: src/server.ts → src/rpc/codec.ts",
      "execa-only-in-the-spawn-helper: src/process/stream.ts → execa",
      "express-only-in-web: src/rpc/http.ts → express",
      "layer-log: src/log/buildlog.ts → src/builder/builder.ts",
      "no-cycles: src/state/db.ts → src/state/lock.ts",
      "spawn-helper-is-an-entry: src/process/runner.ts → src/process/spawn-helper.ts",
      "spawn-only-in-the-spawn-helper: src/backends/unpack.ts → child_process",
      "src-not-tests: src/config/config.ts → harness/builder.ts",
    ]);
    // The report `npm run layers` prints (the default) must also fail the run.
    const r = depcruise(FIXTURE, "err");
    assert.match(String(r.stdout), /8 dependency violations/);
    assert.notEqual(r.status, 0, "depcruise must fail the run on a violation");
  });

  test("every module of src/ belongs to exactly one layer", () => {
    const modules = fs
      .readdirSync(path.join(ROOT, "src"), { recursive: true, encoding: "utf8" })
      .filter((f) => f.endsWith(".ts"))
      .map((f) => `src/${f.split(path.sep).join("/")}`);
    assert.ok(modules.length > 0);
    for (const m of modules) {
      const owners = LAYERS.filter((l) => new RegExp(l.path).test(m)).map((l) => l.name);
      assert.equal(
        owners.length,
        1,
        `${m} is in ${owners.length === 0 ? "no layer" : `layers ${owners.join(", ")}`}: give it exactly one in .dependency-cruiser.mjs`,
      );
    }
  });

  test("the layers are listed bottom to top: each may import only layers listed before it", () => {
    const seen = new Set<string>();
    for (const layer of LAYERS) {
      for (const entry of layer.may) {
        if (entry === "*") continue;
        const name = entry.split("/")[0]!;
        assert.ok(seen.has(name), `${layer.name} may import ${entry}, which is not below it`);
      }
      seen.add(layer.name);
    }
  });
});

/** The entries (first words) of the code block under README.md's "## Layout". */
function readmeLayout(): string[] {
  const readme = fs.readFileSync(path.join(ROOT, "README.md"), "utf8");
  const section = /^## Layout\n([\s\S]*?)(?=^## )/m.exec(readme)?.[1];
  assert.ok(section !== undefined, "README.md has a ## Layout section");
  const block = /^```\n([\s\S]*?)^```$/m.exec(section)?.[1];
  assert.ok(block !== undefined, "the Layout section has a code block");
  return block
    .split("\n")
    .filter((l) => l.trim() !== "")
    .map((l) => l.split(/\s+/)[0]!);
}

describe("README.md's layout", () => {
  test("lists every folder and top-level file of src/, one line each", () => {
    const listed = readmeLayout();
    const src = fs.readdirSync(path.join(ROOT, "src"), { withFileTypes: true });
    const expected = src
      .filter((e) => e.isDirectory() || e.name.endsWith(".ts"))
      .map((e) => `src/${e.name}${e.isDirectory() ? "/" : ""}`);
    for (const entry of expected) {
      assert.equal(
        listed.filter((l) => l === entry).length,
        1,
        `README.md's layout lists ${entry} once`,
      );
    }
  });

  test("lists nothing that does not exist", () => {
    for (const entry of readmeLayout()) {
      const stat = fs.statSync(path.join(ROOT, entry), { throwIfNoEntry: false });
      assert.ok(stat !== undefined, `README.md's layout lists ${entry}, which does not exist`);
      assert.equal(stat.isDirectory(), entry.endsWith("/"), `${entry}: folders end in /`);
    }
  });
});
