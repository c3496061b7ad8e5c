// A fleet of buildd workers under one real Buildbot master (Debian's 3.7): three `buildd
// serve` processes, each started from its own `buildd create-worker` directory as an
// operator would. The master routes builds by the capabilities the workers declare
// (contrib/buildbot/buildd_capabilities.py's requires(), fed by the worker info), the
// chosen worker maps the capability's properties, secret ones included, into the step's
// environment and scrubs the secret from the log; and builds forced together spread over
// the fleet, each on one worker, none past its own [buildbot] max_builds.
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import {
  buildbotMissing,
  removeDir,
  RESULTS,
  startBuildbotMaster,
  tempDir,
  type BuildbotMaster,
  type BuildJson,
} from "../harness/buildbot-master.js";
import {
  startWorkerDir,
  type ServedWorker,
  type SlotsApi,
} from "../harness/buildbot-worker-dir.js";
import { eventually } from "../harness/fixtures.js";

// Under CI nothing skips: a missing buildbot must fail the run, not hide it.
const skip = process.env["CI"] === "true" ? false : buildbotMissing();

const PG_SECRET = "pg-Secret-8842-xyzzy";

/** The fleet: name, password, the master's max_builds and buildd's own. */
const FLEET = [
  { name: "fleet-pg", password: "fleet-pg-pw-1", master: 2, buildd: 2 },
  { name: "fleet-plain", password: "fleet-plain-pw-2", master: 2, buildd: 2 },
  // The master would give it two builds at once; buildd's own limit is one.
  { name: "fleet-narrow", password: "fleet-narrow-pw-3", master: 2, buildd: 1 },
] as const;

const BUILDERS = `
  from buildd_capabilities import requires

  def builder(name, *steps_, **kw):
      c['builders'].append(util.BuilderConfig(
          name=name, workernames=WORKERS, factory=util.BuildFactory(list(steps_)),
          collapseRequests=False, **kw))

  pg = requires('pgcap >= 13')
  builder('needs-pgcap', steps.ShellCommand(name='env', command=
      'echo "port=$PGPORT host=$PGHOST password=$PGPASSWORD"; echo "requires=$BUILDD_REQUIRES"; '
      'echo "cache=$BUILDD_SHARED_CACHE"'), canStartBuild=pg, env=pg.env)
  old = requires('pgcap << 13')
  builder('needs-old-pgcap', steps.ShellCommand(name='env', command='echo "port=$PGPORT"'),
          canStartBuild=old, env=old.env)
  c['builders'].append(util.BuilderConfig(name='old-pgcap-here', workernames=['fleet-pg'],
      factory=util.BuildFactory([steps.ShellCommand(name='env', command='echo "port=$PGPORT"',
                                                    env={'BUILDD_REQUIRES': 'pgcap << 13'})])))
  absent = requires('othercap')
  builder('needs-absent', steps.ShellCommand(name='never', command='echo should not run'),
          canStartBuild=absent, env=absent.env)
  for name in ['fleet-a', 'fleet-b']:
      builder(name, steps.ShellCommand(name='work', command=
          'echo "cache=$BUILDD_SHARED_CACHE"; date +%s.%N; sleep 1.5; date +%s.%N'))
`;

interface Span {
  readonly worker: string;
  readonly start: number;
  readonly end: number;
}

/** The most spans open at one moment. */
function mostAtOnce(spans: readonly Span[]): number {
  const edges = spans.flatMap((s) => [
    { t: s.start, d: 1 },
    { t: s.end, d: -1 },
  ]);
  edges.sort((a, b) => a.t - b.t || a.d - b.d); // an end before a start at the same time
  let open = 0;
  let most = 0;
  for (const e of edges) most = Math.max(most, (open += e.d));
  return most;
}

describe("a fleet of buildd serve workers under one master", { skip }, () => {
  let master: BuildbotMaster;
  let workers: ServedWorker[] = [];
  let pghost: string;
  const byName = new Map<string, ServedWorker>();

  before(async () => {
    // The capability's socket directory: a directory under /tmp the step's environment
    // names stays visible in its sandbox.
    pghost = tempDir("buildd-pgcap-");
    master = await startBuildbotMaster({
      workers: FLEET.map((w) => ({ name: w.name, password: w.password, maxBuilds: w.master })),
      builders: BUILDERS,
    });
    workers = await Promise.all(
      FLEET.map((w) =>
        startWorkerDir({
          masterPort: master.workerPort,
          name: w.name,
          password: w.password,
          maxBuilds: w.buildd,
          ...(w.name === "fleet-pg"
            ? {
                lines: {
                  capabilities: [
                    `pgcap 12 host=${pghost} port=5412`,
                    `pgcap 15 host=${pghost} port=5433`,
                  ],
                  capability_env: ["pgcap PGPORT=port PGHOST=host PGPASSWORD=password"],
                },
                secretLines: ["[capabilities]", `pgcap 15 password=${PG_SECRET}`],
              }
            : {}),
        }),
      ),
    );
    workers.forEach((w, i) => byName.set(FLEET[i]!.name, w));
    await Promise.all(FLEET.map((w) => master.waitForWorker(w.name, true)));
  });
  after(async () => {
    await Promise.all(workers.map((w) => w.stop()));
    await master?.stop();
    if (pghost) removeDir(pghost);
  });

  async function workerNames(): Promise<Map<number, string>> {
    return new Map((await master.workers()).map((w) => [w.workerid, w.name]));
  }

  const stepLog = (buildId: number, name: string): Promise<string> => master.stepLog(buildId, name);

  test("requires(): only the worker with the capability runs it, with its environment; a secret scrubbed", async () => {
    const pgWorker = byName.get("fleet-pg")!;
    const caps = await pgWorker.json<{ capabilities: { name: string; available: boolean }[] }>(
      "/api/v1/capabilities",
    );
    assert.ok(
      caps.capabilities.some((c) => c.name === "pgcap" && c.available),
      JSON.stringify(caps),
    );

    const absent = await master.forceBuild("needs-absent");
    const forced = await Promise.all([1, 2, 3].map(() => master.forceBuild("needs-pgcap")));
    const done = await Promise.all(forced.map((f) => master.waitForBuild(f.buildrequestId)));
    const names = await workerNames();
    for (const d of done) {
      const text = await stepLog(d.build!.buildid, "env");
      assert.equal(d.results, RESULTS.SUCCESS, text);
      assert.equal(names.get(d.build!.workerid), "fleet-pg", "only the worker that has pgcap");
      assert.match(text, new RegExp(`^port=5433 host=${pghost} password=\\*{8}$`, "m"));
      assert.match(text, /^requires=pgcap >= 13$/m);
      assert.match(text, new RegExp(`^cache=${pgWorker.dir}/var/shared-cache$`, "m"));
      assert.doesNotMatch(text, new RegExp(PG_SECRET), "the secret never reaches the master");
    }
    // The master asked the helper about the others and was told why not.
    for (const other of ["fleet-plain", "fleet-narrow"]) {
      await eventually(`the master's reason for ${other}`, () =>
        master
          .masterLog()
          .includes(`builder needs-pgcap does not start on worker ${other}: no capability pgcap`),
      );
    }
    assert.doesNotMatch(master.masterLog(), new RegExp(PG_SECRET));
    const info = (await master.workers()).find((w) => w.name === "fleet-pg")!.workerinfo;
    assert.doesNotMatch(JSON.stringify(info), new RegExp(PG_SECRET));

    // What no worker has never starts anywhere.
    assert.deepEqual(await master.builds(absent.buildrequestId), [], "no build started");
    for (const w of FLEET) {
      await eventually(`the master's reason for ${w.name} and othercap`, () =>
        master
          .masterLog()
          .includes(
            `builder needs-absent does not start on worker ${w.name}: no capability othercap`,
          ),
      );
    }
    await master.cancelBuildRequest(absent.buildrequestId);
    assert.equal((await master.waitForBuild(absent.buildrequestId)).results, RESULTS.CANCELLED);
  });

  // The worker info once kept one entry per capability name, so of two versions of one
  // capability the master saw only the last declared; it now carries both.
  test("two versions of a capability: the master routes by either", async () => {
    // On the worker, BUILDD_REQUIRES picks the version that satisfies it.
    const here = await master.forceBuild("old-pgcap-here");
    const hereDone = await master.waitForBuild(here.buildrequestId);
    const hereText = await stepLog(hereDone.build!.buildid, "env");
    assert.equal(hereDone.results, RESULTS.SUCCESS, hereText);
    assert.match(hereText, /^port=5412$/m);

    // The master sees both versions in the worker info and routes by the older one.
    const forced = await master.forceBuild("needs-old-pgcap");
    const refusal = "builder needs-old-pgcap does not start on worker fleet-pg";
    let started: BuildJson | undefined;
    await eventually(
      "a build of needs-old-pgcap, or the master's refusal",
      async () => {
        started = (await master.builds(forced.buildrequestId))[0];
        return started !== undefined || master.masterLog().includes(refusal);
      },
      20_000,
    );
    if (started === undefined) {
      await master.cancelBuildRequest(forced.buildrequestId);
      const line = master
        .masterLog()
        .split("\n")
        .find((l) => l.includes(refusal));
      assert.fail(`the master refused pgcap 12 on fleet-pg: ${line}`);
    }
    const { results, build } = await master.waitForBuild(forced.buildrequestId);
    const text = await stepLog(build!.buildid, "env");
    assert.equal(results, RESULTS.SUCCESS, text);
    assert.equal((await workerNames()).get(build!.workerid), "fleet-pg");
    assert.match(text, /^port=5412$/m, "the environment of the version that satisfies it");
  });

  test("six builds forced at once spread over the fleet, none past a worker's max_builds", async (t) => {
    // Sample every worker's slots while the builds run: never more held than it allows.
    let sampling = true;
    const mostHeld = new Map<string, number>();
    const sampler = (async () => {
      while (sampling) {
        for (const w of FLEET) {
          const s = await byName.get(w.name)!.json<SlotsApi>("/api/v1/slots");
          mostHeld.set(w.name, Math.max(mostHeld.get(w.name) ?? 0, s.held.length));
        }
        await new Promise((r) => setTimeout(r, 100));
      }
    })();
    const forced = await Promise.all(
      ["fleet-a", "fleet-b", "fleet-a", "fleet-b", "fleet-a", "fleet-b"].map((b) =>
        master.forceBuild(b),
      ),
    );
    const done = await Promise.all(
      forced.map((f) => master.waitForBuild(f.buildrequestId, 90_000)),
    );
    sampling = false;
    await sampler;

    const names = await workerNames();
    const spans: Span[] = [];
    const builds: BuildJson[] = [];
    for (const d of done) {
      const b = d.build!;
      const text = await stepLog(b.buildid, "work");
      const worker = names.get(b.workerid)!;
      assert.equal(
        d.results,
        RESULTS.SUCCESS,
        `build ${b.buildid} on ${worker}: results ${d.results}, "${b.state_string}"; ` +
          `its steps ${JSON.stringify((await master.steps(b.buildid)).map((s) => [s.name, s.results, s.state_string]))}; ` +
          `its log:\n${text}\n${byName.get(worker)!.logText().slice(-4000)}`,
      );
      assert.equal((await master.builds(b.buildrequestid)).length, 1, "one build per request");
      // It ran on the worker the master names: that worker's shared cache is in its log.
      const dirs = workers.filter((w) => text.includes(`cache=${w.dir}/var/shared-cache\n`));
      assert.deepEqual(
        dirs.map((w) => w.dir),
        [byName.get(worker)!.dir],
        `build ${b.buildid} ran on ${worker} and only there`,
      );
      const [start, end] = text
        .split("\n")
        .filter((l) => /^\d+\.\d+$/.test(l))
        .map(Number);
      spans.push({ worker, start: start!, end: end! });
      builds.push(b);
    }

    const t0 = Math.min(...spans.map((s) => s.start));
    t.diagnostic(
      spans
        .map((s) => `${s.worker} ${(s.start - t0).toFixed(1)}–${(s.end - t0).toFixed(1)} s`)
        .join(", "),
    );

    // Concurrency across workers: by the master's own times (whole seconds) two builds on
    // different workers overlap, and so do the steps' own clocks.
    const at = (b: BuildJson, k: string): number => b[k] as number;
    const overlapping = builds.some((x) =>
      builds.some(
        (y) =>
          x.workerid !== y.workerid &&
          at(x, "started_at") < at(y, "complete_at") &&
          at(y, "started_at") < at(x, "complete_at"),
      ),
    );
    assert.ok(overlapping, "builds on two workers ran at the same time (master's times)");
    assert.ok(mostAtOnce(spans) >= 2, JSON.stringify(spans));
    assert.ok(new Set(spans.map((s) => s.worker)).size >= 2, "at least two workers took builds");

    for (const w of FLEET) {
      const mine = spans.filter((s) => s.worker === w.name);
      assert.ok(mostAtOnce(mine) <= w.buildd, `${w.name} ran ${mostAtOnce(mine)} at once`);
      assert.ok((mostHeld.get(w.name) ?? 0) <= w.buildd, `${w.name} held too many slots`);
    }
  });
});
