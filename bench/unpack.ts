// unpack: time to unpack the real bookworm chroot tarball with our unpack()
// (src/backends/unpack.ts: `tar -xvv --index-file`, every member checked, output to a
// build log) against plain `tar -xf` of the same file, RUNS runs each, interleaved, each
// into a fresh directory (synced before the next run, all removed at the end).
// Target: ≤ 1.05×.
//
// The tarball: the test harness's bookworm chroot (harness/debian.ts), which it builds
// with mmdebstrap once per machine (30–100 s) and caches in ~/.cache/buildd-test/, or
// else /tmp/trial-chroot.tar.zst; without mmdebstrap (bench/setup.sh installs it) and
// without either file, the benchmark says so and is skipped.

import { spawn } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { bookwormChroot } from "../harness/debian.js";
import { unpack } from "../src/backends/unpack.js";
import { BuildLog } from "../src/log/buildlog.js";
import { createScrubber } from "../src/log/scrub.js";
import { processRunner } from "../src/process/runner.js";
import {
  atMostRatio,
  childCpuSeconds,
  loadAverage,
  interleave,
  main,
  median,
  MiB,
  Report,
  removeDir,
  syncDisks,
  tempDir,
  timeMs,
} from "./lib.js";

const RUNS = 5;
const CACHE_DIR = path.join(os.homedir(), ".cache", "buildd-test");
const FALLBACK = "/tmp/trial-chroot.tar.zst";

function hasMmdebstrap(): boolean {
  return (process.env["PATH"] ?? "")
    .split(":")
    .some((dir) => dir !== "" && fs.existsSync(path.join(dir, "mmdebstrap")));
}

async function findTarball(): Promise<string | null> {
  if (hasMmdebstrap()) return bookwormChroot();
  return fs.existsSync(FALLBACK) ? FALLBACK : null;
}

function tarXf(tarball: string, dest: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn("tar", ["-xf", tarball, "-C", dest], {
      stdio: ["ignore", "ignore", "pipe"],
    });
    let err = "";
    child.stderr.on("data", (c: Buffer) => (err += c.toString()));
    child.once("error", reject);
    child.once("exit", (code) =>
      code === 0 ? resolve() : reject(new Error(`tar: ${code} ${err}`)),
    );
  });
}

await main("unpack", async () => {
  const report = new Report("unpack");
  const tarball = await findTarball();
  if (tarball === null) {
    report.skip(
      `no chroot tarball: no mmdebstrap to build one into ${CACHE_DIR} (bench/setup.sh installs it) and no ${FALLBACK}`,
    );
    report.write();
    return;
  }
  const work = tempDir("unpack");
  const logDir = tempDir("unpack-log");
  const ours: number[] = [];
  const ref: number[] = [];
  // CPU-seconds: tar and its decompressor (waited-for children), plus, for ours, this
  // process's own (reading and checking the listing). Far steadier than wall time on a
  // shared disk, where one run of plain tar here took 7 s and the next 17 s.
  const oursCpu: number[] = [];
  const refCpu: number[] = [];
  const loads: string[] = [loadAverage().text];
  let run = 0;
  const fresh = (): string => {
    const dest = path.join(work, `root-${run++}`);
    fs.mkdirSync(dest);
    return dest;
  };
  // Every tree stays until the end. Removing one and unpacking the next straight after
  // measures ext4, not tar: creating an inode next to thousands deleted seconds before
  // makes the allocator check each of them (recently_deleted() in ext4_create, seen with
  // perf at half of tar's 12 s of system time), and by how much depended on the run's
  // place in the sequence (2.99 s to 15.99 s for the same unpack). The sync puts the
  // previous run's writeback behind us.
  const trees: string[] = [];
  const dispose = (dest: string): void => {
    trees.push(dest);
    syncDisks();
  };
  let logBytes = 0;
  syncDisks();
  await interleave(
    RUNS,
    async () => {
      const dest = fresh();
      const log = BuildLog.create(path.join(logDir, "buildlog"), {
        maxBytes: 1e9,
        scrubber: createScrubber([]),
      });
      try {
        const c0 = childCpuSeconds();
        const own0 = process.cpuUsage();
        ours.push(
          await timeMs(() => unpack(processRunner, tarball, dest, { log, track: (p) => p })),
        );
        const own = process.cpuUsage(own0);
        oursCpu.push(childCpuSeconds() - c0 + (own.user + own.system) / 1e6);
        logBytes = log.size;
      } finally {
        log.close();
        dispose(dest);
      }
    },
    async () => {
      const dest = fresh();
      try {
        const c0 = childCpuSeconds();
        ref.push(await timeMs(() => tarXf(tarball, dest)));
        refCpu.push(childCpuSeconds() - c0);
      } finally {
        dispose(dest);
        loads.push(loadAverage().text);
      }
    },
  );
  for (const dest of trees) removeDir(dest);
  const value = median(ours) / 1000;
  const refValue = median(ref) / 1000;
  report.add({
    name: "chroot",
    value,
    unit: "s",
    ref: { name: "tar -xf", value: refValue },
    target: atMostRatio(value / refValue, 1.05),
    samples: ours.length,
  });
  report.add({
    name: "chroot_cpu",
    value: median(oursCpu),
    unit: "CPU-s",
    ref: { name: "tar -xf (tar and zstd)", value: median(refCpu) },
    target: null,
    samples: oursCpu.length,
  });
  report.note(
    `${path.basename(tarball)} (${(fs.statSync(tarball).size / MiB).toFixed(0)} MiB), median of ${RUNS} interleaved; ` +
      `our build log ${logBytes} bytes; load average ${loads.join(" → ")}`,
  );
  console.log(
    `  -> ${report.write({ tarball, oursMs: ours, refMs: ref, oursCpu, refCpu, loads })}`,
  );
});
