// The downloads in progress and their running totals: the one owner of "what is being
// fetched right now, how far along, and how did past downloads end". EnsurePresent
// writes here; status(), the page, the JSON API and /metrics only read.
//
// Updating a download's byte count is a field write per chunk, so counting costs the
// download nothing measurable; readers compute rates when they ask.

import { scrubText } from "../log/scrub.js";
import type { DownloadSnapshot } from "../protocol/status.js";

export interface DownloadProgress extends DownloadSnapshot {
  /** The URL with any userinfo removed. */
  readonly url: string;
  /** Epoch milliseconds. */
  readonly startedAt: number;
}

export interface DownloadTotals {
  /** Body bytes received by every download since start-up (finished or not). */
  readonly bytes: number;
  readonly completed: number;
  /** Failed downloads by cause (lowercase: "timeout", "digest_mismatch", …). */
  readonly failures: Readonly<Record<string, number>>;
}

interface Entry {
  sha1: string;
  url: string;
  bytes: number;
  total: number | null;
  startedAt: number;
}

/** A URL as it may be shown: userinfo removed (also from one that does not parse). */
function showableUrl(url: string): string {
  try {
    const u = new URL(url);
    u.username = "";
    u.password = "";
    return u.toString();
  } catch {
    return scrubText(url);
  }
}

/** One download as EnsurePresent reports it. */
export interface DownloadHandle {
  /** The response head arrived: its Content-Length, if any. */
  total(bytes: number | undefined): void;
  /** More body bytes arrived. */
  progress(bytes: number): void;
  /** It ended: null when it succeeded, else the cause. */
  end(failure: string | null): void;
}

export class Downloads {
  private readonly live = new Map<string, Entry>();
  private bytes = 0;
  private completed = 0;
  private readonly failures: Record<string, number> = {};

  constructor(private readonly now: () => number = Date.now) {}

  begin(sha1: string, url: string): DownloadHandle {
    const entry: Entry = {
      sha1,
      url: showableUrl(url),
      bytes: 0,
      total: null,
      startedAt: this.now(),
    };
    this.live.set(sha1, entry);
    let ended = false;
    return {
      total: (n) => (entry.total = n ?? null),
      progress: (n) => {
        entry.bytes += n;
        this.bytes += n;
      },
      end: (failure) => {
        if (ended) return;
        ended = true;
        this.live.delete(sha1);
        if (failure === null) this.completed++;
        else this.failures[failure] = (this.failures[failure] ?? 0) + 1;
      },
    };
  }

  /** The downloads in progress, oldest first (copies: readers cannot change them). */
  list(): DownloadProgress[] {
    return [...this.live.values()].map((e) => ({ ...e }));
  }

  /** What status() shows: the same, without URLs. */
  snapshot(): DownloadSnapshot[] {
    const out: DownloadSnapshot[] = [];
    for (const e of this.live.values()) out.push({ sha1: e.sha1, bytes: e.bytes, total: e.total });
    return out;
  }

  totals(): DownloadTotals {
    return { bytes: this.bytes, completed: this.completed, failures: { ...this.failures } };
  }
}
