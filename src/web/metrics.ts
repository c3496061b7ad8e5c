// /metrics: the builder's figures in Prometheus text format, from prom-client. Nothing is
// counted here: each figure is read at scrape time from the module that owns it (rpc/
// for calls, the journal's feed for builds, filecache/ for downloads and the cache), so
// a scrape is a handful of reads and the fast path never waits on a metrics library.

import type * as PromClient from "prom-client";
import type { HistogramTally, LabelValues, Tally } from "../protocol/tally.js";
import { BuilderStatus } from "../protocol/states.js";
import type { BuildbotStatus } from "../protocol/buildbot.js";
import type { WebDeps } from "./deps.js";
import { shortName } from "./json.js";

type Prom = typeof PromClient;

export interface Metrics {
  readonly contentType: string;
  render(): Promise<string>;
}

const toLabels = (names: readonly string[], values: LabelValues): Record<string, string> =>
  Object.fromEntries(names.map((n, i) => [n, values[i] ?? ""]));

/** A counter whose values are those of a Tally (set, not incremented, at each scrape). */
function tallyCounter(
  prom: Prom,
  register: PromClient.Registry,
  name: string,
  help: string,
  labelNames: readonly string[],
  read: () => Tally,
): void {
  new prom.Counter({
    name,
    help,
    labelNames,
    registers: [register],
    collect() {
      this.reset();
      for (const e of read().entries()) this.inc(toLabels(labelNames, e.labels), e.value);
    },
  });
}

/** A counter or gauge with one unlabelled value, read at scrape time. */
function single(
  prom: Prom,
  register: PromClient.Registry,
  kind: "counter" | "gauge",
  name: string,
  help: string,
  read: () => number,
): void {
  if (kind === "gauge") {
    new prom.Gauge({
      name,
      help,
      registers: [register],
      collect() {
        this.set(read());
      },
    });
    return;
  }
  new prom.Counter({
    name,
    help,
    registers: [register],
    collect() {
      this.reset();
      this.inc(read());
    },
  });
}

/**
 * A histogram whose buckets are those of a HistogramTally. prom-client's Histogram only
 * counts what it observes itself, so this one reports the tally's buckets instead of its
 * own (empty) ones; the text format is prom-client's.
 */
function tallyHistogram(
  prom: Prom,
  register: PromClient.Registry,
  name: string,
  help: string,
  labelNames: readonly string[],
  read: () => HistogramTally,
): void {
  type Snapshot = PromClient.MetricObjectWithValues<PromClient.MetricValueWithName<string>>;
  const snapshot = (): Snapshot => {
    const tally = read();
    const values: PromClient.MetricValueWithName<string>[] = [];
    for (const e of tally.entries()) {
      const labels = toLabels(labelNames, e.labels);
      tally.bounds.forEach((le, i) =>
        values.push({
          metricName: `${name}_bucket`,
          labels: { ...labels, le },
          value: e.cumulative[i] ?? 0,
        }),
      );
      values.push({
        metricName: `${name}_bucket`,
        labels: { ...labels, le: "+Inf" },
        value: e.count,
      });
      values.push({ metricName: `${name}_sum`, labels, value: e.sum });
      values.push({ metricName: `${name}_count`, labels, value: e.count });
    }
    // prom-client's types declare `type` as an enum; at run time it is the family's name.
    const type = "histogram" as unknown as PromClient.MetricType;
    return { name, help, type, aggregator: "sum", values, collect: () => undefined };
  };
  class FromTally extends prom.Histogram<string> {
    override get(): Promise<Snapshot> {
      return Promise.resolve(snapshot());
    }
    /** What the registry renders text from (prom-client calls it when a metric has it). */
    getForPromString(): Promise<Snapshot> {
      return Promise.resolve(snapshot());
    }
  }
  new FromTally({ name, help, labelNames, buckets: [...read().bounds], registers: [register] });
}

const STATES = [
  BuilderStatus.IDLE,
  BuilderStatus.BUILDING,
  BuilderStatus.ABORTING,
  BuilderStatus.WAITING,
] as const;

export function createMetrics(prom: Prom, deps: WebDeps): Metrics {
  const register = new prom.Registry();
  prom.collectDefaultMetrics({ register, prefix: "buildd_" });

  tallyCounter(
    prom,
    register,
    "buildd_builds_total",
    "Builds finished since start-up, by type and result.",
    ["type", "result"],
    () => deps.buildStats.builds,
  );
  tallyHistogram(
    prom,
    register,
    "buildd_build_duration_seconds",
    "How long finished builds ran, by type.",
    ["type"],
    () => deps.buildStats.duration,
  );
  new prom.Gauge({
    name: "buildd_builder_state",
    help: "The builder's state: 1 for the current one, 0 for the others.",
    labelNames: ["state"],
    registers: [register],
    collect() {
      const now = deps.status().state;
      for (const s of STATES) this.set({ state: shortName(s) }, s === now ? 1 : 0);
    },
  });
  single(
    prom,
    register,
    "gauge",
    "buildd_draining",
    "1 while the builder is draining (takes no new builds).",
    () => (deps.draining() ? 1 : 0),
  );
  single(
    prom,
    register,
    "gauge",
    "buildd_downloads_in_progress",
    "Downloads (ensurepresent) running now.",
    () => deps.downloads().length,
  );
  single(
    prom,
    register,
    "counter",
    "buildd_download_bytes_total",
    "Bytes received by downloads since start-up.",
    () => deps.downloadTotals().bytes,
  );
  new prom.Counter({
    name: "buildd_download_failures_total",
    help: "Downloads that failed since start-up, by cause.",
    labelNames: ["cause"],
    registers: [register],
    collect() {
      this.reset();
      for (const [cause, n] of Object.entries(deps.downloadTotals().failures))
        this.inc({ cause }, n);
    },
  });
  single(
    prom,
    register,
    "gauge",
    "buildd_cache_bytes",
    "Bytes held by the file cache.",
    () => deps.cache().usedBytes,
  );
  single(
    prom,
    register,
    "gauge",
    "buildd_cache_entries",
    "Files in the file cache.",
    () => deps.cache().entries,
  );
  single(
    prom,
    register,
    "counter",
    "buildd_cache_evictions_total",
    "Cache entries evicted to make room since start-up.",
    () => deps.cache().evictions,
  );
  tallyCounter(
    prom,
    register,
    "buildd_rpc_calls_total",
    "XML-RPC calls answered since start-up, by method and fault code (none: no fault).",
    ["method", "fault"],
    () => deps.rpcStats.calls,
  );
  tallyHistogram(
    prom,
    register,
    "buildd_rpc_duration_seconds",
    "Time from a decoded request to its encoded answer, by method.",
    ["method"],
    () => deps.rpcStats.latency,
  );
  buildbotMetrics(prom, register, deps);

  return { contentType: register.contentType, render: () => register.metrics() };
}

/** The shared build slots, and the Buildbot connection when there is one. */
function buildbotMetrics(prom: Prom, register: PromClient.Registry, deps: WebDeps): void {
  single(
    prom,
    register,
    "gauge",
    "buildd_build_slots",
    "Builds that may run at once, of both kinds together ([buildbot] max_builds).",
    () => deps.slots().max,
  );
  new prom.Gauge({
    name: "buildd_build_slots_held",
    help: "Build slots in use, by kind of coordinator (launchpad, buildbot).",
    labelNames: ["kind"],
    registers: [register],
    collect() {
      const held = deps.slots().held;
      for (const kind of ["launchpad", "buildbot"] as const) {
        this.set({ kind }, held.filter((h) => h.kind === kind).length);
      }
    },
  });
  single(
    prom,
    register,
    "gauge",
    "buildd_build_slots_waiting",
    "Buildbot steps waiting for a free build slot.",
    () => deps.slots().waiting.length,
  );
  if (deps.buildbot() === null) return;
  const bb = (): BuildbotStatus => deps.buildbot()!;
  single(
    prom,
    register,
    "gauge",
    "buildd_buildbot_connected",
    "1 while the worker is attached to its Buildbot master, else 0.",
    () => (bb().state === "connected" ? 1 : 0),
  );
  single(
    prom,
    register,
    "counter",
    "buildd_buildbot_connects_total",
    "Connections to the Buildbot master made since start-up.",
    () => bb().connects,
  );
  single(
    prom,
    register,
    "gauge",
    "buildd_buildbot_commands_running",
    "Buildbot commands (steps, transfers) running now.",
    () => bb().running.length,
  );
  single(
    prom,
    register,
    "counter",
    "buildd_buildbot_commands_total",
    "Buildbot commands started since start-up.",
    () => bb().commands,
  );
  single(
    prom,
    register,
    "counter",
    "buildd_buildbot_command_failures_total",
    "Buildbot commands that ended with an error (not a non-zero exit) since start-up.",
    () => bb().commandFailures,
  );
}
