// filecache: MB/s for GET /filecache/<sha1> of a 1 GiB cached file with 1 and 4 clients
// at once, against nginx (sendfile) serving the very same file from the cache directory.
// Target: ≥ 0.95× nginx at 4 clients. Also the builder's CPU-seconds per GiB sent (from
// /proc), informational. The builder runs from dist/, as `npm start` runs it.
//
// Clients are curl processes (-o /dev/null), so the readers share no event loop with the
// servers; the figure is the aggregate: clients × size / wall time until the last ends.
// The file is in the page cache for both.

import { spawn } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import {
  atLeastRatio,
  cpuSecondsOf,
  loadAverage,
  GiB,
  interleave,
  main,
  makeBigFile,
  MB,
  median,
  Report,
  startBuilder,
  startNginx,
  track,
  type FileServer,
} from "./lib.js";

const ROUNDS = 5;
const CLIENTS = [1, 4];

/** Bytes curl received. */
function curl(url: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const child = track(
      spawn("curl", ["-sS", "--fail", "-o", "/dev/null", "-w", "%{size_download}", url], {
        stdio: ["ignore", "pipe", "pipe"],
      }),
    );
    let out = "";
    let err = "";
    child.stdout!.on("data", (c: Buffer) => (out += c.toString()));
    child.stderr!.on("data", (c: Buffer) => (err += c.toString()));
    child.once("error", reject);
    child.once("exit", (code) =>
      code === 0 ? resolve(Number(out)) : reject(new Error(`curl ${url}: ${code} ${err}`)),
    );
  });
}

/** Aggregate MB/s of `n` parallel GETs of `url`, each expected to be `size` bytes. */
async function getAll(url: string, n: number, size: number): Promise<number> {
  const t0 = performance.now();
  const sizes = await Promise.all(Array.from({ length: n }, () => curl(url)));
  const s = (performance.now() - t0) / 1000;
  if (sizes.some((b) => b !== size)) throw new Error(`short GET of ${url}: ${sizes.join(",")}`);
  return (n * size) / MB / s;
}

await main("filecache", async () => {
  const report = new Report("filecache");
  const builder = await startBuilder({
    download: { max_size: "2G", total_timeout: 600 },
    cache: { max_size: "10G", min_free: "1G" },
  });
  let nginx: FileServer | undefined;
  try {
    // The builder's temporary root holds the file to download and, afterwards, the cache.
    const file = makeBigFile(builder.dirs.dir);
    let server: FileServer;
    try {
      nginx = await startNginx(builder.dirs.dir);
      server = nginx;
    } catch (err) {
      report.skip(`nginx, the reference, is unavailable: ${String(err)}`);
      report.write();
      return;
    }
    const got = await builder.conn.call(
      "ensurepresent",
      file.sha1,
      `${server.url}/big.bin`,
      "",
      "",
    );
    if (JSON.stringify(got) !== JSON.stringify([true, "Download"])) {
      throw new Error(`ensurepresent answered ${JSON.stringify(got)}`);
    }
    fs.rmSync(file.path); // only the cached copy is read from now on
    const cacheRel = path.relative(builder.dirs.dir, builder.dirs.filecache);
    const oursUrl = `${builder.url}/filecache/${file.sha1}`;
    const refUrl = `${server.url}/${cacheRel}/${file.sha1}`;
    await getAll(oursUrl, 1, file.size); // warm-up (and the page cache)
    await getAll(refUrl, 1, file.size);
    const raw: Record<
      string,
      { ours: number[]; nginx: number[]; oursCpuS: number[]; nginxCpuS: number[] }
    > = {};
    const loads: string[] = [loadAverage().text];
    for (const n of CLIENTS) {
      const ours: number[] = [];
      const ref: number[] = [];
      const cpu: number[] = [];
      const refCpu: number[] = [];
      await interleave(
        ROUNDS,
        async () => {
          const cpu0 = cpuSecondsOf(builder.pid);
          ours.push(await getAll(oursUrl, n, file.size));
          cpu.push(cpuSecondsOf(builder.pid) - cpu0);
        },
        async () => {
          const cpu0 = server.cpuSeconds();
          ref.push(await getAll(refUrl, n, file.size));
          refCpu.push(server.cpuSeconds() - cpu0);
        },
      );
      raw[`c${n}`] = { ours, nginx: ref, oursCpuS: cpu, nginxCpuS: refCpu };
      loads.push(loadAverage().text);
      const value = median(ours);
      const refValue = median(ref);
      report.add({
        name: `get.c${n}`,
        value,
        unit: "MB/s",
        ref: { name: "nginx sendfile", value: refValue },
        target: n === 4 ? atLeastRatio(value / refValue, 0.95) : null,
        samples: ours.length,
      });
      const perGiB = median(cpu) / ((n * file.size) / GiB);
      report.add({
        name: `cpu.c${n}`,
        value: perGiB,
        unit: "CPU-s/GiB",
        ref: {
          name: "nginx (master and workers)",
          value: median(refCpu) / ((n * file.size) / GiB),
        },
        target: null,
        samples: cpu.length,
      });
    }
    report.note(
      `${file.size / GiB} GiB cached file, curl clients, aggregate MB/s (10^6 B/s), median of ${ROUNDS}; ` +
        `load average ${loads.join(" → ")}`,
    );
    console.log(`  -> ${report.write({ raw })}`);
  } finally {
    await nginx?.stop();
    await builder.stop();
  }
});
