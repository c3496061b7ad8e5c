// Fault injection: drive a builder (a child process) through download / build / WAITING /
// clean cycles and SIGKILL it at random instants, then start it again on the same
// directories and check what must hold whatever instant it died at:
//
//   - every file in the cache directory named by a SHA-1 hashes to its name;
//   - no temporary file is left in the cache directory;
//   - a WAITING builder serves every file its filemap lists, and its build log;
//   - a build that was running comes back WAITING with BuildStatus.BUILDERFAIL;
//   - a state the manager was told (WAITING with a filemap, IDLE after clean()) is the
//     state it comes back in;
//   - no process of any build is alive.
//
// Used by test/faults.test.ts (about a minute) and bench/soak.ts (as long as asked). The
// random choices come from one seed, printed, so a failing run can be replayed with
// BUILDD_FAULT_SEED; the instants themselves also depend on the machine's timing.

import assert from "node:assert/strict";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import type { XmlRpcStruct, XmlRpcValue } from "../src/rpc/codec.js";
import { makeBuilderDirs, startBuilderProcess, type BuilderProcess } from "./builder.js";
import { httpGet, makeTarball, pidsWithMarker, sha1, status } from "./fixtures.js";
import { prng, type FaultFigures, type FaultRunOptions, type Phase } from "./fault-plan.js";

export { PHASES, chooseSeed, prng } from "./fault-plan.js";
export type { FaultFigures, FaultRunOptions, Phase } from "./fault-plan.js";

/** What the manager knew when the builder was killed, and so what must hold after. */
type Expectation =
  | { kind: "idle" }
  | { kind: "running"; buildId: string; aborted: boolean }
  | { kind: "waiting"; before: XmlRpcStruct }
  | { kind: "cleaning"; before: XmlRpcStruct; answeredIdle: boolean };

const SHA1_NAME = /^[0-9a-f]{40}$/;

class Run {
  readonly random: () => number;
  readonly figures: FaultFigures;
  readonly dirs = makeBuilderDirs({
    // A budget small enough that downloads evict: results that are not held as they
    // are stored would be evicted, and a WAITING builder would then list a lost file.
    cache: { max_size: "3M", min_free: "1M" },
    build: { kill_grace: 1 },
    // Above info: the builder must be found without its "listening" log line.
    log: { level: "warn" },
  });
  readonly gates = openDirectory(fs.mkdtempSync(path.join(os.tmpdir(), "buildd-faults-")));
  /** In the argv of every process a build leaves running; no other process has it. */
  readonly marker: string;
  readonly tree = makeTarball({ README: "a tree for fault injection\n" });
  builder: BuilderProcess | null = null;
  cycle = 0;
  slot = 0;
  /** What is going on, for failure messages. */
  where = "start";

  constructor(readonly opts: FaultRunOptions) {
    this.random = prng(opts.seed);
    this.figures = {
      seed: opts.seed,
      cycles: 0,
      restarts: 0,
      kills: { download: 0, build: 0, waiting: 0, clean: 0 },
      completed: 0,
      ms: 0,
    };
    // A sleep duration nobody else uses (the other suites' markers end in .1, .5, .7).
    this.marker = `7${String(process.pid).padStart(7, "0")}.0099`;
  }

  between(min: number, max: number): number {
    return Math.floor(min + this.random() * (max - min));
  }

  get client(): BuilderProcess["client"] {
    assert.ok(this.builder, "the builder is running");
    return this.builder.client;
  }

  fail(message: string): never {
    const out = this.builder?.logText() ?? "";
    throw new FaultFound(
      `fault injection, seed ${this.opts.seed} (replay: BUILDD_FAULT_SEED=${this.opts.seed}), ` +
        `cycle ${this.cycle}, ${this.where}: ${message}` +
        (out ? `\nbuilder output:\n${out.slice(-4000)}` : ""),
    );
  }

  async check(what: string, fn: () => Promise<void> | void): Promise<void> {
    try {
      await fn();
    } catch (err) {
      if (err instanceof FaultFound) throw err;
      this.fail(`${what}: ${err instanceof Error ? err.message : String(err)}`);
    }
  }

  /**
   * A fresh file the librarian serves, sometimes slowly so that a kill lands mid-download.
   * Paths are reused in turn, so a long run does not keep every body in memory.
   */
  download(slow: boolean): { sum: string; url: string } {
    const body = Buffer.alloc(this.between(16 * 1024, 256 * 1024) * 4);
    for (let i = 0; i < body.length; i += 4) body.writeUInt32LE((this.random() * 2 ** 32) >>> 0, i);
    const sum = sha1(body);
    const url = this.opts.librarian.add(
      `/faults-${this.opts.seed}-${this.slot++ % 8}`,
      body,
      slow
        ? { kind: "slow", bytesPerChunk: 32 * 1024, intervalMs: this.between(5, 30) }
        : undefined,
    );
    return { sum, url };
  }

  async ensure(file: { sum: string; url: string }): Promise<XmlRpcValue> {
    return this.client.call("ensurepresent", file.sum, file.url, "", "");
  }

  async start(): Promise<void> {
    this.where = "starting the builder";
    try {
      this.builder = await startBuilderProcess(this.dirs, {
        timeoutMs: 120_000,
        entry: this.opts.entry ?? "tsx",
      });
    } catch (err) {
      this.builder = null;
      this.fail(err instanceof Error ? err.message : String(err));
    }
  }

  async kill(phase: Phase, after: Expectation, delayMs: number): Promise<void> {
    assert.ok(this.builder);
    const pid = this.builder.pid;
    const how = await this.builder.kill("SIGKILL");
    if (how !== "SIGKILL") this.fail(`the builder exited by itself (${how}) before the kill`);
    this.figures.kills[phase]++;
    this.opts.log?.(
      `cycle ${this.cycle}: SIGKILL ${pid} in ${phase} after ${delayMs} ms (${after.kind})`,
    );
    this.builder = null;
    await this.start();
    this.figures.restarts++;
    await this.checkAfterRestart(after);
  }

  // ----- the invariants --------------------------------------------------------------

  async checkCache(): Promise<void> {
    for (const name of fs.readdirSync(this.dirs.filecache)) {
      const full = path.join(this.dirs.filecache, name);
      if (name.startsWith(".tmp-")) this.fail(`a temporary file is left in the cache: ${name}`);
      if (!SHA1_NAME.test(name) || !fs.statSync(full).isFile()) continue;
      const actual = sha1(fs.readFileSync(full));
      if (actual !== name) this.fail(`cache file ${name} holds content whose SHA-1 is ${actual}`);
    }
  }

  async checkNoProcesses(): Promise<void> {
    const deadline = Date.now() + 20_000;
    for (;;) {
      const left = pidsWithMarker(this.marker);
      if (left.length === 0) return;
      if (Date.now() > deadline) {
        const cmds = left.map((pid) => {
          try {
            return `${pid}: ${fs.readFileSync(`/proc/${pid}/cmdline`, "utf8").replace(/\0/g, " ")}`;
          } catch {
            return `${pid}`;
          }
        });
        this.fail(`processes of a build are still alive: ${cmds.join("; ")}`);
      }
      await sleep(100);
    }
  }

  /** WAITING: every listed file is served with its content, and so is the build log. */
  async checkServed(s: XmlRpcStruct): Promise<void> {
    const url = this.builder?.url;
    assert.ok(url);
    const buildId = String(s["build_id"]);
    const filemap = (s["filemap"] ?? {}) as Record<string, string>;
    for (const [name, sum] of Object.entries(filemap)) {
      const res = await httpGet(`${url}/filecache/${sum}`);
      if (res.status !== 200) this.fail(`WAITING lists ${name} (${sum}), served ${res.status}`);
      const got = sha1(res.body);
      if (got !== sum) this.fail(`WAITING lists ${name} as ${sum}, served content is ${got}`);
    }
    if (s["build_status"] === "BuildStatus.OK") {
      const names = Object.keys(filemap).sort();
      if (names.join() !== "out/blob.bin,out/result.txt") {
        this.fail(`an OK build lists ${JSON.stringify(names)}`);
      }
      if (filemap["out/result.txt"] !== sha1(`result of ${buildId}\n`)) {
        this.fail(`out/result.txt of ${buildId} is not that build's result`);
      }
    }
    const log = await httpGet(`${url}/filecache/buildlog`);
    if (log.status !== 200) this.fail(`WAITING, but /filecache/buildlog answers ${log.status}`);
    if (s["build_status"] === "BuildStatus.OK" && !log.body.includes(`begin ${buildId}\n`)) {
      this.fail(`the build log of ${buildId} is not that build's log`);
    }
  }

  async checkAfterRestart(after: Expectation): Promise<void> {
    this.where = `after restarting from ${after.kind}`;
    await this.checkCache();
    let s = await status(this.client);
    const state = s["builder_status"];
    const same = (before: XmlRpcStruct): boolean =>
      state === "BuilderStatus.WAITING" &&
      s["build_id"] === before["build_id"] &&
      s["build_status"] === before["build_status"] &&
      canonical(s["filemap"] ?? null) === canonical(before["filemap"] ?? null);
    switch (after.kind) {
      case "idle":
        if (state !== "BuilderStatus.IDLE") this.fail(`IDLE before the kill, now ${show(s)}`);
        break;
      case "running": {
        const ok = after.aborted
          ? ["BuildStatus.BUILDERFAIL", "BuildStatus.ABORTED"]
          : ["BuildStatus.BUILDERFAIL"];
        if (
          state !== "BuilderStatus.WAITING" ||
          s["build_id"] !== after.buildId ||
          !ok.includes(String(s["build_status"]))
        ) {
          this.fail(`build ${after.buildId} was running; after restart ${show(s)}`);
        }
        break;
      }
      case "waiting":
        if (!same(after.before)) this.fail(`WAITING ${show(after.before)}; now ${show(s)}`);
        break;
      case "cleaning": {
        if (state === "BuilderStatus.WAITING" && !("filemap" in s) && "filemap" in after.before) {
          // A clean still being finished: it must end IDLE by itself.
          const deadline = Date.now() + 30_000;
          while (s["builder_status"] === "BuilderStatus.WAITING" && Date.now() < deadline) {
            await sleep(100);
            s = await status(this.client);
          }
          if (s["builder_status"] !== "BuilderStatus.IDLE") {
            this.fail(`a clean() interrupted by the kill never ended: ${show(s)}`);
          }
        } else if (after.answeredIdle && state !== "BuilderStatus.IDLE") {
          this.fail(`clean() had answered IDLE; after restart ${show(s)}`);
        } else if (state !== "BuilderStatus.IDLE" && !same(after.before)) {
          this.fail(`killed during clean() of ${show(after.before)}; now ${show(s)}`);
        }
        break;
      }
    }
    if (s["builder_status"] === "BuilderStatus.WAITING") await this.checkServed(s);
    await this.checkNoProcesses();
  }

  // ----- one cycle -------------------------------------------------------------------

  /** The kill for this cycle: a phase, or none (the cycle runs to the end). */
  choosePhase(): Phase | null {
    const r = this.random();
    if (r < 0.25) return "download";
    if (r < 0.6) return "build";
    if (r < 0.75) return "waiting";
    if (r < 0.9) return "clean";
    return null;
  }

  async runCycle(): Promise<void> {
    this.cycle++;
    this.figures.cycles++;
    const killIn = this.choosePhase();
    const buildId = `F${this.opts.seed % 10000}-${this.cycle}`;

    // download: the tree (cached after the first cycle, unless evicted) and fresh files.
    this.where = "download";
    const treeUrl = this.opts.librarian.add(`/faults-tree-${this.opts.seed}`, this.tree);
    const treeSum = sha1(this.tree);
    const files = [this.download(true), this.download(this.random() < 0.5)];
    const downloads = files.map((f) => this.ensure(f).catch(() => null));
    if (killIn === "download") {
      const delay = this.between(0, 900);
      await sleep(delay);
      await this.kill("download", { kind: "idle" }, delay);
      await Promise.all(downloads);
      return;
    }
    await Promise.all(downloads);
    await this.check("ensurepresent of the tree", async () => {
      const [present, info] = (await this.client.call(
        "ensurepresent",
        treeSum,
        treeUrl,
        "",
        "",
      )) as [boolean, string];
      assert.ok(present, info);
    });

    // build: a script that writes two artifacts and leaves processes behind, then waits
    // for its gate, so that a kill in this phase is certain to find it running.
    this.where = `build ${buildId}`;
    const gate = path.join(this.gates, buildId);
    const m = this.marker;
    const steps = [
      {
        name: "write",
        run:
          `echo begin ${buildId}; mkdir -p out; echo "result of ${buildId}" > out/result.txt; ` +
          `head -c ${this.between(1, 256 * 1024)} /dev/urandom > out/blob.bin`,
      },
      {
        name: "wait",
        run:
          `setsid sleep ${m} & (setsid sleep ${m} &); ` +
          `while [ ! -e "$GATE" ]; do sleep 0.02; done; echo done ${m}`,
      },
    ];
    await this.check("build()", async () => {
      const reply = await this.client.call(
        "build",
        buildId,
        "script",
        treeSum,
        {},
        { steps, artifacts: ["out/*"], environment: { GATE: gate } },
      );
      assert.deepEqual(reply, ["BuilderStatus.BUILDING", buildId]);
    });
    // Meanwhile a download, to race the results being stored (and evict).
    const racing = this.ensure(this.download(this.random() < 0.5)).catch(() => null);
    if (killIn === "build") {
      const delay = this.between(0, 1200);
      await sleep(delay);
      let aborted = false;
      if (this.random() < 0.2) {
        aborted = true;
        await this.client.call("abort").catch(() => null);
        await sleep(this.between(0, 100));
      }
      await this.kill("build", { kind: "running", buildId, aborted }, delay);
      await racing;
      return;
    }
    fs.writeFileSync(gate, "");
    let s = await this.waitFor("WAITING", 120_000);
    await racing;
    await this.check("the finished build", () =>
      assert.equal(s["build_status"], "BuildStatus.OK", show(s)),
    );

    // WAITING: the manager fetches the files while another download runs.
    this.where = `WAITING with ${buildId}`;
    await this.check("WAITING", () => this.checkServed(s));
    if (killIn === "waiting") {
      const url = this.builder!.url;
      const busy = [
        this.ensure(this.download(true)).catch(() => null),
        ...Object.values((s["filemap"] ?? {}) as Record<string, string>).map((sum) =>
          httpGet(`${url}/filecache/${sum}`).catch(() => null),
        ),
        httpGet(`${url}/filecache/buildlog`).catch(() => null),
      ];
      const delay = this.between(0, 150);
      await sleep(delay);
      await this.kill("waiting", { kind: "waiting", before: s }, delay);
      await Promise.all(busy);
      s = await status(this.client);
      if (s["builder_status"] !== "BuilderStatus.WAITING") return;
    }
    await this.checkNoProcesses();

    // clean
    this.where = `clean() of ${buildId}`;
    if (killIn === "clean") {
      let answeredIdle = false;
      const cleaning = this.client
        .call("clean")
        .then((v) => (answeredIdle = v === "BuilderStatus.IDLE"))
        .catch(() => null);
      const delay = this.between(0, 60);
      await sleep(delay);
      const before = s;
      await this.kill("clean", { kind: "cleaning", before, answeredIdle }, delay);
      await cleaning;
      return;
    }
    await this.check("clean()", async () =>
      assert.equal(await this.client.call("clean"), "BuilderStatus.IDLE"),
    );
    this.figures.completed++;
  }

  async waitFor(state: string, timeoutMs: number): Promise<XmlRpcStruct> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const s = await status(this.client);
      if (s["builder_status"] === `BuilderStatus.${state}`) return s;
      if (Date.now() > deadline) this.fail(`never reached ${state}: ${show(s)}`);
      await sleep(50);
    }
  }

  /** Whatever state a restart left, bring the builder back to IDLE for the next cycle. */
  async toIdle(): Promise<void> {
    this.where = "returning to IDLE";
    const s = await status(this.client);
    if (s["builder_status"] === "BuilderStatus.WAITING") {
      await this.check("clean() after a restart", async () =>
        assert.equal(await this.client.call("clean"), "BuilderStatus.IDLE"),
      );
    }
    const now = await status(this.client);
    if (now["builder_status"] !== "BuilderStatus.IDLE") this.fail(`not IDLE: ${show(now)}`);
  }

  async close(): Promise<void> {
    if (this.builder) await this.builder.kill("SIGKILL");
    // Only on failure can anything be left; never leave it running.
    for (const pid of pidsWithMarker(this.marker)) {
      try {
        process.kill(pid, "SIGKILL");
      } catch {
        // gone meanwhile
      }
    }
    fs.rmSync(this.gates, { recursive: true, force: true });
    fs.rmSync(this.dirs.dir, { recursive: true, force: true });
  }
}

/** Thrown for a broken invariant: a finding, never wrapped again. */
export class FaultFound extends Error {
  override name = "FaultFound";
  /** The figures of the run up to the finding. */
  figures?: FaultFigures;
}

/** JSON with object keys sorted, to compare structs whatever order they arrive in. */
function canonical(v: unknown): string {
  if (Array.isArray(v)) return `[${v.map(canonical).join(",")}]`;
  if (typeof v === "object" && v !== null) {
    const entries = Object.entries(v).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return `{${entries.map(([k, x]) => `${JSON.stringify(k)}:${canonical(x)}`).join(",")}}`;
  }
  return JSON.stringify(v);
}

const show = (s: XmlRpcStruct): string => {
  const { logtail: _logtail, ...rest } = s;
  return JSON.stringify(rest);
};

/** Run cycles until the kill count or the time is used up; throws at the first violation. */
export async function runFaultCycles(opts: FaultRunOptions): Promise<FaultFigures> {
  const run = new Run(opts);
  const started = Date.now();
  try {
    await run.start();
    await run.checkAfterRestart({ kind: "idle" });
    const killCount = (): number => Object.values(run.figures.kills).reduce((a, b) => a + b, 0);
    while (killCount() < opts.maxKills && Date.now() - started < opts.maxMs) {
      await run.runCycle();
      await run.toIdle();
    }
    run.figures.ms = Date.now() - started;
    return run.figures;
  } catch (err) {
    run.figures.ms = Date.now() - started;
    if (err instanceof FaultFound) err.figures = run.figures;
    throw err;
  } finally {
    await run.close();
  }
}

/**
 * A directory build steps may look into: they run as the unprivileged build user, and
 * see it through their private /tmp because the build names it in its environment.
 */
function openDirectory(dir: string): string {
  fs.chmodSync(dir, 0o755);
  return dir;
}
