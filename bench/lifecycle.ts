// lifecycle: build() → WAITING for a no-op `script` build (one step running `true`),
// N times with clean() between, against spawning `true` directly and waiting for it to
// exit, the same number of times, interleaved. Target: ≤ 50 ms absolute overhead.
//
// WAITING is seen by polling status() every POLL_MS on a keep-alive connection, so the
// figure includes up to one poll interval plus one status() round trip.

import { spawn } from "node:child_process";
import { startLibrarian } from "../harness/librarian.js";
import { makeTarball, putInCache } from "../harness/fixtures.js";
import { createClient } from "../harness/client.js";
import {
  atMost,
  interleave,
  main,
  median,
  percentile,
  Report,
  startBuilder,
  timeMs,
  waitForState,
} from "./lib.js";

const N = 20;
const WARMUP = 2;
const POLL_MS = 2;

function spawnTrue(): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn("true", [], { stdio: "ignore" });
    child.once("error", reject);
    child.once("exit", (code) => (code === 0 ? resolve() : reject(new Error(`true: ${code}`))));
  });
}

await main("lifecycle", async () => {
  const report = new Report("lifecycle");
  const builder = await startBuilder();
  try {
    const librarian = await startLibrarian();
    let chroot: string;
    try {
      chroot = await putInCache(createClient(builder.url), librarian, makeTarball({ x: "x" }));
    } finally {
      await librarian.close();
    }
    const conn = builder.conn;
    let id = 0;
    const oneBuild = async (): Promise<number> => {
      const buildId = `bench-noop-${++id}`;
      let final: Record<string, unknown> = {};
      const ms = await timeMs(async () => {
        const r = await conn.call(
          "build",
          buildId,
          "script",
          chroot,
          {},
          {
            steps: [{ name: "noop", run: ["true"] }],
          },
        );
        if (!Array.isArray(r) || r[0] !== "BuilderStatus.BUILDING") {
          throw new Error(`build() answered ${JSON.stringify(r)}`);
        }
        final = await waitForState(conn, "WAITING", POLL_MS, 60_000);
      });
      if (final["build_status"] !== "BuildStatus.OK") {
        throw new Error(`the no-op build ended ${JSON.stringify(final)}`);
      }
      await conn.call("clean");
      return ms;
    };
    for (let i = 0; i < WARMUP; i++) {
      await oneBuild();
      await timeMs(spawnTrue);
    }
    const ours: number[] = [];
    const ref: number[] = [];
    await interleave(
      N,
      async () => {
        ours.push(await oneBuild());
      },
      async () => {
        ref.push(await timeMs(spawnTrue));
      },
    );
    const refName = "spawn `true`";
    for (const [label, p] of [
      ["p50", 50],
      ["p90", 90],
    ] as const) {
      const value = percentile(ours, p);
      const refValue = percentile(ref, p);
      report.add({
        name: `build_to_waiting.${label}`,
        value,
        unit: "ms",
        ref: { name: refName, value: refValue },
        samples: ours.length,
      });
      report.add({
        name: `overhead.${label}`,
        value: value - refValue,
        unit: "ms",
        ref: { name: refName, value: refValue },
        ratio: value / refValue,
        target: atMost(value - refValue, 50, "ms"),
        samples: ours.length,
      });
    }
    report.note(
      `N=${N} interleaved (after ${WARMUP} warm-ups), status() polled every ${POLL_MS} ms; ` +
        `median build() → WAITING ${median(ours).toFixed(1)} ms`,
    );
    console.log(`  -> ${report.write({ oursMs: ours, refMs: ref })}`);
  } finally {
    await builder.stop();
  }
});
