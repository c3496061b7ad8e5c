// The rpc edge's own figures: calls by method and fault code, and their latency. Kept as
// plain counts (src/protocol/tally.ts) so counting adds a Map lookup to a call, nothing
// more; /metrics reads them when scraped.

import { HistogramTally, Tally, type Count, type HistogramSeries } from "../protocol/tally.js";
import type { CallObserver } from "./dispatcher.js";

/** Seconds: status() answers in well under a millisecond; build() waits for an fsync. */
export const RPC_LATENCY_BUCKETS = [
  0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30,
] as const;

export class RpcStats {
  /** Labels: [method, fault] — method "unknown" for names not in the table, fault "none". */
  readonly calls = new Tally();
  /** Labels: [method]. */
  readonly latency = new HistogramTally(RPC_LATENCY_BUCKETS);

  /**
   * The count and histogram of answered calls, per method: on the hot path a call is one
   * Map lookup, with no label arrays or keys made for it.
   */
  private readonly answered = new Map<string, { count: Count; latency: HistogramSeries }>();

  readonly observe: CallObserver = (method, faultCode, seconds) => {
    const m = method ?? "unknown";
    if (faultCode === null) {
      let mine = this.answered.get(m);
      if (mine === undefined) {
        mine = { count: this.calls.count([m, "none"]), latency: this.latency.series([m]) };
        this.answered.set(m, mine);
      }
      mine.count.n++;
      mine.latency.observe(seconds);
      return;
    }
    this.calls.inc([m, String(faultCode)]);
    this.latency.observe([m], seconds);
  };
}
