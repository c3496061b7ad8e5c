// `npm ci` runs this (package.json "prepare"): bundle src/ into dist/cli.js, which
// bin/buildd.js and `npm start` run, and dist/spawn-helper.js beside it, the helper
// process that spawns every command (src/process/spawner.ts finds it next to itself),
// plus the spawner on its own and the chunks they share. A few files start faster than
// ~100 modules. dist/ is not emptied first: a builder still running from it may yet load
// one of its chunks (by a hashed name a rebuild does not reuse).
//
// Dependencies stay external (loaded from node_modules as usual), except execa: it is
// ~150 small modules, and loading them one by one cost ~70-100 ms before the builder's
// first answer (dpkg runs through it during start-up); bundled, that cost all but goes.
// Only the spawn helper loads it.
// Its CommonJS parts call require(), which an ES module bundle provides via the banner.

import { readFileSync } from "node:fs";
import { build } from "esbuild";

const BUNDLED = new Set(["execa"]);
const pkg = JSON.parse(readFileSync(new URL("../package.json", import.meta.url), "utf8"));
const external = Object.keys(pkg.dependencies).filter((name) => !BUNDLED.has(name));

await build({
  entryPoints: {
    cli: "src/cli.ts",
    "spawn-helper": "src/process/spawn-helper.ts",
    spawner: "src/process/spawner.ts",
  },
  // One copy of each module however many entries use it: bin/buildd.js starts the
  // spawn helper through dist/spawner.js before it loads dist/cli.js, and the program
  // must find that same helper, not start a second one.
  splitting: true,
  bundle: true,
  platform: "node",
  target: "node20",
  format: "esm",
  external,
  sourcemap: true,
  outdir: "dist",
  logLevel: "warning",
  banner: {
    js: "import { createRequire as __builddCreateRequire } from 'node:module'; const require = __builddCreateRequire(import.meta.url);",
  },
});
