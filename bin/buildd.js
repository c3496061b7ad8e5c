#!/usr/bin/env node
// Runs the compiled program (npm ci builds dist/ through the `prepare` script).
//
// `serve` starts the thread that spawns every command first: it then loads side by side
// with the program instead of after it, and the first command at start-up (dpkg) does
// not wait for it (docs/performance.md, "Spawning on a thread of its own").
if (process.argv[2] === "serve") (await import("../dist/spawner.js")).startSpawnThread();
await import("../dist/cli.js");
