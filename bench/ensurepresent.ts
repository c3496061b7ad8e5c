// ensurepresent: MB/s of ensurepresent() for a 1 GiB file from a fast local file server
// (nginx, sendfile), and the builder process's peak RSS growth while it runs; reference:
// node:crypto SHA-1 of the same file read from the page cache (the CPU bound of a
// verified download). Targets: ≥ 0.9× the SHA-1 rate; RSS growth ≤ 32 MiB.
//
// Interleaved: each round hashes the file, then downloads it into a fresh builder (a
// fresh process, so the file is not cached and the RSS baseline is clean). The peak is
// reset (/proc/<pid>/clear_refs 5) just before the call and read (VmHWM) just after.

import { createHash } from "node:crypto";
import fs from "node:fs";
import path from "node:path";
import { pipeline } from "node:stream/promises";
import {
  atLeastRatio,
  atMost,
  GiB,
  interleave,
  main,
  makeBigFile,
  MB,
  median,
  memoryOf,
  MiB,
  Report,
  resetPeakRss,
  startBuilder,
  startFileServer,
  tempDir,
  timeMs,
  type BigFile,
} from "./lib.js";

const ROUNDS = 3;

async function sha1OfFile(file: BigFile): Promise<number> {
  const hash = createHash("sha1");
  const ms = await timeMs(() =>
    pipeline(fs.createReadStream(file.path, { highWaterMark: MiB }), hash),
  );
  if (hash.digest("hex") !== file.sha1) throw new Error("SHA-1 of the test file changed");
  return ms;
}

/**
 * The other physical limit: writing the same bytes durably (write + fsync) on the file
 * system the cache lives on. ensurepresent must fsync before it answers, so on a slow
 * disk this, not hashing, is what it can reach.
 */
async function durableWrite(file: BigFile, dir: string): Promise<number> {
  const dest = path.join(dir, "durable-write.bin");
  try {
    return await timeMs(async () => {
      const out = fs.createWriteStream(dest, { flush: true, highWaterMark: MiB });
      await pipeline(fs.createReadStream(file.path, { highWaterMark: MiB }), out);
    });
  } finally {
    fs.rmSync(dest, { force: true });
  }
}

await main("ensurepresent", async () => {
  const report = new Report("ensurepresent");
  const dir = tempDir("ensurepresent");
  const file = makeBigFile(dir);
  const server = await startFileServer(dir, report);
  try {
    const url = `${server.url}/big.bin`;
    const refMs: number[] = [];
    const diskMs: number[] = [];
    const oursMs: number[] = [];
    const growth: number[] = [];
    let peakResetWorked = true;
    await sha1OfFile(file); // warm-up: page cache and JIT
    await interleave(
      ROUNDS,
      async () => {
        refMs.push(await sha1OfFile(file));
        diskMs.push(await durableWrite(file, dir));
      },
      async () => {
        const builder = await startBuilder({
          download: { max_size: "2G", total_timeout: 600 },
          cache: { max_size: "10G", min_free: "1G" },
        });
        try {
          await builder.conn.status();
          peakResetWorked &&= resetPeakRss(builder.pid);
          const before = memoryOf(builder.pid);
          let result: unknown;
          oursMs.push(
            await timeMs(async () => {
              result = await builder.conn.call("ensurepresent", file.sha1, url, "", "");
            }),
          );
          if (JSON.stringify(result) !== JSON.stringify([true, "Download"])) {
            throw new Error(`ensurepresent answered ${JSON.stringify(result)}`);
          }
          const after = memoryOf(builder.pid);
          // Without a peak reset, VmHWM may still be a start-up peak: growth is then
          // measured from the RSS before, which can only overstate it.
          growth.push(after.hwm - before.rss);
        } finally {
          await builder.stop();
        }
      },
    );
    const ours = file.size / MB / (median(oursMs) / 1000);
    const ref = file.size / MB / (median(refMs) / 1000);
    report.add({
      name: "throughput",
      value: ours,
      unit: "MB/s",
      ref: { name: "node:crypto SHA-1 from page cache", value: ref },
      target: atLeastRatio(ours / ref, 0.9),
      samples: oursMs.length,
    });
    const disk = file.size / MB / (median(diskMs) / 1000);
    report.add({
      name: "throughput_vs_disk",
      value: ours,
      unit: "MB/s",
      ref: { name: "write + fsync of the same bytes on the cache's disk", value: disk },
      target: null,
      samples: oursMs.length,
    });
    const worstGrowth = Math.max(...growth) / MiB;
    report.add({
      name: "peak_rss_growth",
      value: worstGrowth,
      unit: "MiB",
      ref: { name: "the 32 MiB budget", value: 32 },
      target: atMost(worstGrowth, 32, "MiB"),
      samples: growth.length,
    });
    report.note(
      `${ROUNDS} rounds, medians; ${file.size / GiB} GiB from ${server.kind}; ` +
        `MB = 10^6 bytes; RSS growth = VmHWM after − VmRSS before (worst round)` +
        (peakResetWorked
          ? ""
          : "; could not reset VmHWM (clear_refs), so growth may be overstated"),
    );
    console.log(
      `  -> ${report.write({ oursMs, refMs, rssGrowthBytes: growth, server: server.kind })}`,
    );
  } finally {
    await server.stop();
  }
});
