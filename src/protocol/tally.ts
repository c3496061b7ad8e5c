// Counts kept where things happen (RPC calls in rpc/, finished builds in builder/) and
// read by /metrics at scrape time. Plain numbers in a Map: recording is a lookup and an
// increment, cheap enough for the status() fast path, and the layer that records needs
// no metrics library (prom-client loads only with the web surface, after listening).

/** Label values in a fixed order, e.g. ["status", "none"] for [method, fault]. */
export type LabelValues = readonly string[];

const keyOf = (labels: LabelValues): string => labels.join("\u0000");

export class Tally {
  private readonly counts = new Map<string, { labels: LabelValues; n: number }>();

  inc(labels: LabelValues, by = 1): void {
    const key = keyOf(labels);
    const entry = this.counts.get(key);
    if (entry) entry.n += by;
    else this.counts.set(key, { labels: [...labels], n: by });
  }

  entries(): { labels: LabelValues; value: number }[] {
    return [...this.counts.values()].map((e) => ({ labels: e.labels, value: e.n }));
  }
}

export interface HistogramEntry {
  readonly labels: LabelValues;
  /** Cumulative counts, one per bound in `bounds` (observations ≤ that bound). */
  readonly cumulative: readonly number[];
  readonly sum: number;
  readonly count: number;
}

export class HistogramTally {
  private readonly series = new Map<
    string,
    { labels: LabelValues; buckets: number[]; sum: number; count: number }
  >();

  /** `bounds`: upper bounds of the buckets, ascending (+Inf is implied). */
  constructor(readonly bounds: readonly number[]) {}

  observe(labels: LabelValues, value: number): void {
    const key = keyOf(labels);
    let s = this.series.get(key);
    if (!s) {
      s = {
        labels: [...labels],
        buckets: new Array<number>(this.bounds.length).fill(0),
        sum: 0,
        count: 0,
      };
      this.series.set(key, s);
    }
    const i = this.bounds.findIndex((b) => value <= b);
    if (i >= 0) s.buckets[i]!++;
    s.sum += value;
    s.count++;
  }

  entries(): HistogramEntry[] {
    return [...this.series.values()].map((s) => {
      let running = 0;
      const cumulative = s.buckets.map((n) => (running += n));
      return { labels: s.labels, cumulative, sum: s.sum, count: s.count };
    });
  }
}
