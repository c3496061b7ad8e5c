// unpack: time to unpack the real bookworm chroot tarball with our unpack()
// (src/backends/unpack.ts: `tar -xvv --index-file`, every member checked, output to a
// build log) against plain `tar -xf` of the same file, RUNS runs each, interleaved, each
// into a fresh directory (synced before the next run, all removed at the end).
// Target: ≤ 1.05×. Then the same pair into tmpfs (/dev/shm), informational: without the
// disk, whose writeback moves the on-disk ratio by more than the unpack adds, it shows
// what our unpack costs over tar itself.
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
import { processRunner, spawnHelperPid } from "../src/process/runner.js";
import {
  atMostRatio,
  childCpuSeconds,
  cpuSecondsOf,
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

interface Pair {
  ours: number[];
  ref: number[];
  oursCpu: number[];
  refCpu: number[];
}

/** /dev/shm when it is a tmpfs with room for a tree or two (an unpacked chroot: ~0.5 GB). */
function inMemoryRoot(): string | null {
  try {
    const mounts = fs.readFileSync("/proc/mounts", "utf8");
    if (!/^\S+ \/dev\/shm tmpfs /m.test(mounts)) return null;
    const st = fs.statfsSync("/dev/shm");
    return st.bavail * st.bsize > 2 * 1024 ** 3 ? "/dev/shm" : null;
  } catch {
    return null;
  }
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
  const logDir = tempDir("unpack-log");
  // Our unpack's tar (and zstd) are the spawn helper's children, reaped by it; the
  // helper's own CPU is the spawning and relaying.
  const helper = await spawnHelperPid();
  if (helper === undefined) throw new Error("the spawn helper did not start");
  const oursCpuSoFar = (): number => {
    const own = process.cpuUsage();
    return cpuSecondsOf(helper) + childCpuSeconds(helper) + (own.user + own.system) / 1e6;
  };
  let logBytes = 0;
  const loads: string[] = [loadAverage().text];

  /**
   * RUNS interleaved unpacks of ours and of `tar -xf`, each into a fresh directory under
   * `root`. On a disk, every tree stays until the end: removing one and unpacking the
   * next straight after measures ext4, not tar (creating an inode next to thousands
   * deleted seconds before makes the allocator check each of them: recently_deleted() in
   * ext4_create, seen with perf at half of tar's 12 s of system time, and by how much
   * depended on the run's place in the sequence, 2.99 s to 15.99 s for the same unpack);
   * a sync puts the previous run's writeback behind us. In memory (tmpfs) neither
   * applies, and each tree is removed at once.
   */
  async function measure(root: string, onDisk: boolean): Promise<Pair> {
    const pair: Pair = { ours: [], ref: [], oursCpu: [], refCpu: [] };
    let run = 0;
    const fresh = (): string => {
      const dest = path.join(root, `root-${run++}`);
      fs.mkdirSync(dest);
      return dest;
    };
    const trees: string[] = [];
    const dispose = (dest: string): void => {
      if (!onDisk) {
        fs.rmSync(dest, { recursive: true, force: true });
        return;
      }
      trees.push(dest);
      syncDisks();
    };
    if (onDisk) syncDisks();
    // CPU-seconds: tar and its decompressor (waited-for children: of the spawn helper for
    // ours, of this process for the reference), plus, for ours, the helper's own and this
    // process's (reading and checking the listing). Far steadier than wall time on a
    // shared disk, where one run of plain tar here took 7 s and the next 17 s.
    await interleave(
      RUNS,
      async () => {
        const dest = fresh();
        const log = BuildLog.create(path.join(logDir, "buildlog"), {
          maxBytes: 1e9,
          scrubber: createScrubber([]),
        });
        try {
          const c0 = oursCpuSoFar();
          pair.ours.push(
            await timeMs(() => unpack(processRunner, tarball!, dest, { log, track: (p) => p })),
          );
          pair.oursCpu.push(oursCpuSoFar() - c0);
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
          pair.ref.push(await timeMs(() => tarXf(tarball!, dest)));
          pair.refCpu.push(childCpuSeconds() - c0);
        } finally {
          dispose(dest);
          loads.push(loadAverage().text);
        }
      },
    );
    for (const dest of trees) fs.rmSync(dest, { recursive: true, force: true });
    return pair;
  }

  // The same in memory, where the disk's writeback and allocator do not come into it:
  // what the unpack adds to tar itself (the listing, its checks, the namespace). First,
  // while the disk is quiet: after the on-disk pair, its trees' writeback and removal
  // went on for seconds and took the CPU from whichever unpack came next.
  let memory: Pair | null = null;
  const shm = inMemoryRoot();
  if (shm === null) {
    report.note("no tmpfs at /dev/shm with room for the trees: the in-memory pair not run");
  } else {
    const dir = fs.mkdtempSync(path.join(shm, "buildd-bench-unpack-"));
    try {
      memory = await measure(dir, false);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  }

  const work = tempDir("unpack");
  const disk = await measure(work, true);
  removeDir(work);
  const value = median(disk.ours) / 1000;
  const refValue = median(disk.ref) / 1000;
  report.add({
    name: "chroot",
    value,
    unit: "s",
    ref: { name: "tar -xf", value: refValue },
    target: atMostRatio(value / refValue, 1.05),
    samples: disk.ours.length,
  });
  report.add({
    name: "chroot_cpu",
    value: median(disk.oursCpu),
    unit: "CPU-s",
    ref: { name: "tar -xf (tar and zstd)", value: median(disk.refCpu) },
    target: null,
    samples: disk.oursCpu.length,
  });
  if (memory !== null) {
    const inMemory = median(memory.ours) / 1000;
    report.add({
      name: "chroot_in_memory",
      value: inMemory,
      unit: "s",
      ref: { name: "tar -xf, both into tmpfs", value: median(memory.ref) / 1000 },
      target: null,
      samples: memory.ours.length,
    });
  }
  report.note(
    `${path.basename(tarball)} (${(fs.statSync(tarball).size / MiB).toFixed(0)} MiB), median of ${RUNS} interleaved; ` +
      `our build log ${logBytes} bytes; load average ${loads.join(" → ")}`,
  );
  console.log(`  -> ${report.write({ tarball, disk, memory, loads })}`);
});
