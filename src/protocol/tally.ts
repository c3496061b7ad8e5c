// Counts kept where things happen (RPC calls in rpc/, finished builds in builder/) and
// read by /metrics at scrape time. Plain numbers in a Map: recording is a lookup and an
// increment, cheap enough for the status() fast path, and the layer that records needs
// no metrics library (prom-client loads only with the web surface, after listening).

/** Label values in a fixed order, e.g. ["status", "none"] for [method, fault]. */
export type LabelValues = readonly string[];

const keyOf = (labels: LabelValues): string => labels.join("\u0000");

/** One labelled count; a caller that counts the same labels often holds it. */
export interface Count {
  readonly labels: LabelValues;
  n: number;
}

export class Tally {
  private readonly counts = new Map<string, Count>();

  /** The count for `labels`, made (at 0) on first use. */
  count(labels: LabelValues): Count {
    const key = keyOf(labels);
    let entry = this.counts.get(key);
    if (entry === undefined) {
      entry = { labels: [...labels], n: 0 };
      this.counts.set(key, entry);
    }
    return entry;
  }

  inc(labels: LabelValues, by = 1): void {
    this.count(labels).n += by;
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

/** One labelled histogram; a caller that observes the same labels often holds it. */
export class HistogramSeries {
  readonly buckets: number[];
  sum = 0;
  count = 0;

  constructor(
    readonly labels: LabelValues,
    private readonly bounds: readonly number[],
  ) {
    this.buckets = new Array<number>(bounds.length).fill(0);
  }

  observe(value: number): void {
    const bounds = this.bounds;
    for (let i = 0; i < bounds.length; i++) {
      if (value <= bounds[i]!) {
        this.buckets[i]!++;
        break;
      }
    }
    this.sum += value;
    this.count++;
  }
}

export class HistogramTally {
  private readonly all = new Map<string, HistogramSeries>();

  /** `bounds`: upper bounds of the buckets, ascending (+Inf is implied). */
  constructor(readonly bounds: readonly number[]) {}

  /** The histogram for `labels`, made (empty) on first use. */
  series(labels: LabelValues): HistogramSeries {
    const key = keyOf(labels);
    let s = this.all.get(key);
    if (s === undefined) {
      s = new HistogramSeries([...labels], this.bounds);
      this.all.set(key, s);
    }
    return s;
  }

  observe(labels: LabelValues, value: number): void {
    this.series(labels).observe(value);
  }

  entries(): HistogramEntry[] {
    return [...this.all.values()].map((s) => {
      let running = 0;
      const cumulative = s.buckets.map((n) => (running += n));
      return { labels: s.labels, cumulative, sum: s.sum, count: s.count };
    });
  }
}
