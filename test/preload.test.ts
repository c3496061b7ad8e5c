// The web surface's packages are loaded a package per turn of the event loop
// (src/web/preload.ts): each dependency from its dependent's own view, deepest first, and
// nothing that fails to load stops the rest.

import assert from "node:assert/strict";
import fs from "node:fs";
import { createRequire } from "node:module";
import os from "node:os";
import path from "node:path";
import { after, describe, it } from "node:test";
import { preloadInSlices } from "../src/web/preload.js";

const root = fs.mkdtempSync(path.join(os.tmpdir(), "buildd-preload-"));
after(() => fs.rmSync(root, { recursive: true, force: true }));

/** A package in `dir`/node_modules whose module records, when loaded, that it was. */
function pkg(dir: string, name: string, deps: Record<string, string>, body?: string): void {
  const at = path.join(dir, "node_modules", name);
  fs.mkdirSync(at, { recursive: true });
  fs.writeFileSync(path.join(at, "package.json"), JSON.stringify({ name, dependencies: deps }));
  fs.writeFileSync(
    path.join(at, "index.js"),
    body ??
      `(globalThis.__preloadOrder ??= []).push([${JSON.stringify(name)}, globalThis.__preloadTurn]);\n`,
  );
}

describe("preloadInSlices", () => {
  it("loads the dependencies first, each as its dependent resolves it, and skips what fails", async () => {
    pkg(root, "top", { mid: "1", broken: "1", missing: "1" });
    pkg(root, "mid", { leaf: "1" });
    // Two copies of leaf: mid must get the one next to it, not the top-level one.
    pkg(root, "leaf", {}, `throw new Error("the wrong copy of leaf");\n`);
    pkg(path.join(root, "node_modules", "mid"), "leaf", {});
    pkg(root, "broken", {}, `throw new Error("cannot load");\n`);
    const g = globalThis as { __preloadOrder?: [string, number][]; __preloadTurn?: number };
    delete g.__preloadOrder;
    // Counts the turns of the event loop while the packages load.
    g.__preloadTurn = 0;
    let spinning = true;
    const spin = (): void => {
      g.__preloadTurn!++;
      if (spinning) setImmediate(spin);
    };
    setImmediate(spin);

    const from = path.join(root, "main.js");
    await preloadInSlices(["top"], from);
    spinning = false;

    // Read through the global: TypeScript takes it to be still deleted.
    const order: [string, number][] = (globalThis as typeof g).__preloadOrder ?? [];
    assert.deepEqual(
      order.map(([name]) => name),
      ["leaf", "mid", "top"],
    );
    // Each in a turn of its own: the loop ran between one package and the next.
    const turns = order.map(([, turn]) => turn);
    assert.equal(new Set(turns).size, 3, `loaded in turns ${turns.join(", ")}`);
    const require = createRequire(from);
    const cached = Object.keys(require.cache);
    assert.ok(cached.includes(path.join(root, "node_modules/mid/node_modules/leaf/index.js")));
    assert.ok(!cached.includes(path.join(root, "node_modules/leaf/index.js")));
    assert.ok(cached.includes(path.join(root, "node_modules/top/index.js")));
  });

  it("resolves nothing it cannot find, without throwing", async () => {
    await preloadInSlices(["no-such-package"], path.join(root, "main.js"));
  });
});
