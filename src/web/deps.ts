// What the web surface is handed by the composition root (src/app.ts): read-only views
// of state that other modules own, and the few actions an operator may take. The web
// edge never touches files or processes itself; every fact arrives through here.

import type { Logger } from "pino";
import type { BuildResult } from "../protocol/states.js";
import type { StatusSnapshot } from "../protocol/status.js";
import type { HistogramTally, Tally } from "../protocol/tally.js";
import type { BuildbotStatus } from "../protocol/buildbot.js";
import type { SlotHolder } from "../protocol/slots.js";

/** One build as the journal keeps it (only the fields that may be shown: no arguments). */
export interface BuildInfo {
  readonly seq: number;
  readonly buildId: string;
  readonly buildType: string;
  readonly backend: string;
  readonly chrootSha1: string;
  readonly filemap: Readonly<Record<string, string>>;
  /** Epoch milliseconds. */
  readonly startedAt: number;
  readonly endedAt: number | null;
  readonly buildStatus: BuildResult | null;
  readonly dependencies: string;
  readonly results: Readonly<Record<string, string>>;
  readonly cleanedAt: number | null;
}

export interface DownloadInfo {
  readonly sha1: string;
  /** Without credentials. */
  readonly url: string;
  readonly bytes: number;
  readonly total: number | null;
  /** Epoch milliseconds. */
  readonly startedAt: number;
}

export interface DownloadTotals {
  readonly bytes: number;
  readonly completed: number;
  readonly failures: Readonly<Record<string, number>>;
}

export interface CacheFigures {
  readonly usedBytes: number;
  /** 0: no budget. */
  readonly budgetBytes: number;
  readonly freeBytes: number;
  /** 0: no reserve. */
  readonly reserveBytes: number;
  readonly entries: number;
  readonly evictions: number;
}

export interface CapabilityInfo {
  readonly name: string;
  readonly version: string | null;
  /** Public properties only (secret-looking ones are never handed in). */
  readonly properties: Readonly<Record<string, string>>;
  readonly available: boolean;
  readonly reason: string;
}

export interface LogChunk {
  readonly offset: number;
  readonly nextOffset: number;
  readonly size: number;
  readonly text: string;
}

export interface SlotsInfo {
  /** [buildbot] max_builds: builds of both kinds at once. */
  readonly max: number;
  readonly held: readonly SlotHolder[];
  readonly waiting: readonly SlotHolder[];
}

export interface WebDeps {
  readonly architecture: string;
  readonly log: Logger;
  /** The same check as /rpc's; null: no authentication. */
  readonly authorize: ((header: string | undefined) => boolean) | null;
  /** The builder's snapshot, downloads included. */
  status(): StatusSnapshot;
  /** The build status() describes (from build() until clean() has finished), or null. */
  currentBuild(): BuildInfo | null;
  builds(limit: number): readonly BuildInfo[];
  build(seq: number): BuildInfo | null;
  /** Part of the current build's log; null when there is none. */
  readLog(offset: number, max: number): LogChunk | null;
  downloads(): readonly DownloadInfo[];
  downloadTotals(): DownloadTotals;
  cache(): CacheFigures;
  capabilities(): readonly CapabilityInfo[];
  /** Capability names the builder is reserved for ([builder] only_if_requires). */
  readonly requiredCapabilities: readonly string[];
  draining(): boolean;
  drain(): void;
  undrain(): void;
  /** The Buildbot worker connection, or null when no [buildbot] master is set. */
  buildbot(): BuildbotStatus | null;
  /** The build slots the Launchpad side and the Buildbot side share. */
  slots(): SlotsInfo;
  readonly rpcStats: { readonly calls: Tally; readonly latency: HistogramTally };
  readonly buildStats: { readonly builds: Tally; readonly duration: HistogramTally };
  readonly now?: () => number;
}
