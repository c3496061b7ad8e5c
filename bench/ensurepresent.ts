// ensurepresent: MB/s and CPU-seconds of ensurepresent() for a 1 GiB file from nginx on
// loopback (sendfile), and the builder's peak RSS growth meanwhile. References in the
// same run, interleaved: `dd` writing the same bytes with fsync on the cache's file system
// (conv=fsync: the durable limit, since a name in the cache must survive power loss) and
// `openssl dgst -sha1` of the file (the hash bound). Targets: ≥ 0.98× dd+fsync; CPU ≤ the
// reference daemon's (1.61 CPU-s per GiB measured for launchpad-buildd 254 here, or the
// peer's own when BENCH_PEER_URL and BENCH_PEER_PID are given); RSS growth ≤ 32 MiB.
//
// BENCH_PEER_URL=http://host:port/rpc: also download through a reference daemon that
// an operator runs beside this one (the benchmark never installs one); each round it
// gets a file of its own (its cache would answer "Cache" otherwise). BENCH_PEER_PID: its
// PID, for its CPU-seconds (from /proc; it must run on this machine).
//
// Each round downloads into a fresh builder (a fresh process: the file is not cached
// and the RSS baseline is clean). The peak is reset (/proc/<pid>/clear_refs 5) just
// before the call and read (VmHWM) just after.

import fs from "node:fs";
import path from "node:path";
import {
  atLeastRatio,
  atMost,
  cpuSecondsOf,
  GiB,
  interleave,
  loadAverage,
  main,
  makeBigFile,
  MB,
  median,
  memoryOf,
  MiB,
  Report,
  resetPeakRss,
  RpcConn,
  runMeasured,
  startBuilder,
  startFileServer,
  syncDisks,
  tempDir,
  type BigFile,
} from "./lib.js";

const ROUNDS = Number(process.env["BENCH_DOWNLOAD_ROUNDS"] ?? 3);
/** launchpad-buildd 254 here: 1.61 CPU-s for 1 GiB from nginx (no fsync). */
const REFERENCE_DAEMON_CPU_S_PER_GIB = 1.61;
const PEER_URL = process.env["BENCH_PEER_URL"] || null;
const PEER_PID = process.env["BENCH_PEER_PID"] ? Number(process.env["BENCH_PEER_PID"]) : null;

interface Run {
  ms: number;
  cpuS: number;
}

async function ddFsync(file: BigFile, dir: string): Promise<Run> {
  const dest = path.join(dir, "dd-fsync.bin");
  try {
    return await runMeasured(
      ["dd", `if=${file.path}`, `of=${dest}`, "bs=1M", "conv=fsync", "status=none"],
      { stdout: "ignore" },
    );
  } finally {
    fs.rmSync(dest, { force: true });
  }
}

async function opensslSha1(file: BigFile): Promise<Run> {
  const r = await runMeasured(["openssl", "dgst", "-sha1", "-r", file.path]);
  if (!r.stdout.startsWith(file.sha1)) throw new Error(`openssl: ${r.stdout.trim()}`);
  return r;
}

async function viaPeer(url: string, file: BigFile, fileUrl: string): Promise<Run> {
  const conn = new RpcConn(url.replace(/\/rpc\/?$/, ""));
  try {
    const cpu0 = PEER_PID === null ? 0 : cpuSecondsOf(PEER_PID);
    const t0 = performance.now();
    const got = await conn.call("ensurepresent", file.sha1, fileUrl, "", "");
    const ms = performance.now() - t0;
    if (JSON.stringify(got) !== JSON.stringify([true, "Download"])) {
      throw new Error(`the peer's ensurepresent answered ${JSON.stringify(got)}`);
    }
    return { ms, cpuS: PEER_PID === null ? NaN : cpuSecondsOf(PEER_PID) - cpu0 };
  } finally {
    conn.close();
  }
}

await main("ensurepresent", async () => {
  const report = new Report("ensurepresent");
  const dir = tempDir("ensurepresent");
  const file = makeBigFile(dir);
  const server = await startFileServer(dir, report);
  const loads: string[] = [loadAverage().text];
  try {
    const url = `${server.url}/big.bin`;
    const dd: Run[] = [];
    const sha: Run[] = [];
    const ours: Run[] = [];
    const peer: Run[] = [];
    const growth: number[] = [];
    let peakResetWorked = true;
    await opensslSha1(file); // warm-up: page cache
    let round = 0;
    await interleave(
      ROUNDS,
      async () => {
        syncDisks();
        dd.push(await ddFsync(file, dir));
        sha.push(await opensslSha1(file));
        if (PEER_URL !== null) {
          const own = makeBigFile(dir, `peer-${round}.bin`);
          syncDisks();
          try {
            peer.push(await viaPeer(PEER_URL, own, `${server.url}/${path.basename(own.path)}`));
          } finally {
            fs.rmSync(own.path, { force: true });
          }
        }
        round++;
      },
      async () => {
        const builder = await startBuilder({
          download: { max_size: "2G", total_timeout: 600 },
          cache: { max_size: "10G", min_free: "1G" },
        });
        try {
          await builder.conn.status();
          syncDisks();
          peakResetWorked &&= resetPeakRss(builder.pid);
          const before = memoryOf(builder.pid);
          const cpu0 = cpuSecondsOf(builder.pid);
          const t0 = performance.now();
          const result = await builder.conn.call("ensurepresent", file.sha1, url, "", "");
          const ms = performance.now() - t0;
          const cpuS = cpuSecondsOf(builder.pid) - cpu0;
          if (JSON.stringify(result) !== JSON.stringify([true, "Download"])) {
            throw new Error(`ensurepresent answered ${JSON.stringify(result)}`);
          }
          ours.push({ ms, cpuS });
          const after = memoryOf(builder.pid);
          // Without a peak reset, VmHWM may still be a start-up peak: growth is then
          // measured from the RSS before, which can only overstate it.
          growth.push(after.hwm - before.rss);
        } finally {
          await builder.stop();
        }
        loads.push(loadAverage().text);
      },
    );
    const rate = (runs: Run[]): number => file.size / MB / (median(runs.map((r) => r.ms)) / 1000);
    const cpuPerGiB = (runs: Run[]): number => median(runs.map((r) => r.cpuS)) / (file.size / GiB);
    const oursRate = rate(ours);
    report.add({
      name: "throughput",
      value: oursRate,
      unit: "MB/s",
      ref: { name: "dd + fsync of the same bytes on the cache's file system", value: rate(dd) },
      target: atLeastRatio(oursRate / rate(dd), 0.98),
      samples: ours.length,
    });
    report.add({
      name: "throughput_vs_sha1",
      value: oursRate,
      unit: "MB/s",
      ref: { name: "openssl dgst -sha1 of the file (page cache)", value: rate(sha) },
      target: null,
      samples: ours.length,
    });
    const oursCpu = cpuPerGiB(ours);
    const peerCpu = peer.length > 0 && PEER_PID !== null ? cpuPerGiB(peer) : null;
    const refCpu = peerCpu ?? REFERENCE_DAEMON_CPU_S_PER_GIB;
    report.add({
      name: "cpu",
      value: oursCpu,
      unit: "CPU-s/GiB",
      ref: {
        name:
          peerCpu === null
            ? "launchpad-buildd 254 measured earlier here (no fsync)"
            : "the peer daemon, same run",
        value: refCpu,
      },
      target: atMost(oursCpu, Number(refCpu.toFixed(2)), "CPU-s/GiB"),
      samples: ours.length,
    });
    report.add({
      name: "cpu_vs_dd",
      value: oursCpu,
      unit: "CPU-s/GiB",
      ref: { name: "dd + fsync (CPU of the copy alone)", value: cpuPerGiB(dd) },
      target: null,
    });
    report.add({
      name: "cpu_vs_sha1",
      value: oursCpu,
      unit: "CPU-s/GiB",
      ref: { name: "openssl dgst -sha1 (CPU of the hash alone)", value: cpuPerGiB(sha) },
      target: null,
    });
    if (peer.length > 0) {
      report.add({
        name: "throughput_vs_peer",
        value: oursRate,
        unit: "MB/s",
        ref: { name: `the peer daemon at ${PEER_URL}, same run`, value: rate(peer) },
        target: null,
        samples: peer.length,
      });
    }
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
        `MB = 10^6 bytes; CPU from /proc (user + system, all threads); ` +
        `RSS growth = VmHWM after − VmRSS before (worst round); load average ${loads.join(" → ")}` +
        (peakResetWorked
          ? ""
          : "; could not reset VmHWM (clear_refs), so growth may be overstated"),
    );
    console.log(
      `  -> ${report.write({ ours, dd, sha1: sha, peer, rssGrowthBytes: growth, loads })}`,
    );
  } finally {
    await server.stop();
  }
});
