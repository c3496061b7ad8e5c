#!/usr/bin/env node
// Runs the compiled program (npm ci builds dist/ through the `prepare` script).
//
// `serve` starts the process that spawns every command first: it then loads side by side
// with the program instead of after it, and the first command at start-up (dpkg) does
// not wait for it; forked now, the builder is still small (docs/performance.md,
// "Spawning from a process of its own").
if (process.argv[2] === "serve") (await import("../dist/spawner.js")).startSpawnHelper();
await import("../dist/cli.js");
