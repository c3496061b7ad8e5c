// Loading a package in slices. Requiring Express, helmet and prom-client at once is
// 120–180 ms of synchronous module loading (about 70 packages), and the builder answers
// nothing meanwhile: a manager's status() that arrives then waits for all of it
// (bench/journal.ts saw it as the worst call of a build). Required here first, one
// package per turn of the event loop, deepest dependencies first, each is in Node's
// module cache by the time its dependent asks for it, and no single turn holds the loop
// for more than the largest package alone (about a tenth of the whole).
//
// Each dependency is resolved from the manifest of the package that depends on it, so it
// is the very module that package will load, whatever the layout of node_modules. A
// dependency that cannot be required (an ES module, a broken or missing optional one) is
// skipped: its dependent then loads it as it would have anyway.

import fs from "node:fs";
import { createRequire } from "node:module";
import path from "node:path";

const nextTurn = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

/** The package.json of package `name`, found from a file inside it; null if none. */
function manifestOf(file: string, name: string): string | null {
  for (let dir = path.dirname(file); ;) {
    const candidate = path.join(dir, "package.json");
    try {
      if ((JSON.parse(fs.readFileSync(candidate, "utf8")) as { name?: unknown }).name === name) {
        return candidate;
      }
    } catch {
      // no manifest here, or not one we can read: look further up
    }
    const up = path.dirname(dir);
    if (up === dir) return null;
    dir = up;
  }
}

function dependenciesOf(manifest: string): string[] {
  const json = JSON.parse(fs.readFileSync(manifest, "utf8")) as { dependencies?: object };
  return Object.keys(json.dependencies ?? {});
}

/**
 * Require each CommonJS package of `names` (as `from` resolves it) and everything it
 * depends on, one package per turn of the event loop. Never throws: what fails to load here is
 * left for the real import to load, or to report.
 */
export async function preloadInSlices(
  names: readonly string[],
  from: string = import.meta.url,
): Promise<void> {
  const loaded = new Set<string>();
  const visit = async (require: NodeJS.Require, name: string): Promise<void> => {
    let main: string;
    try {
      main = require.resolve(name);
    } catch {
      return;
    }
    if (loaded.has(main)) return;
    loaded.add(main);
    const manifest = manifestOf(main, name);
    if (manifest !== null) {
      let deps: string[] = [];
      try {
        deps = dependenciesOf(manifest);
      } catch {
        // unreadable manifest: the package alone
      }
      const own = createRequire(manifest);
      for (const dep of deps) await visit(own, dep);
    }
    await nextTurn();
    try {
      require(name);
    } catch {
      // left to the real import
    }
  };
  const root = createRequire(from);
  for (const name of names) await visit(root, name);
}
