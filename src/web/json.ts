// The facts as the JSON API (and the page's script) shows them: snake_case keys, times
// as ISO 8601 in UTC, durations in seconds, states and results without their prefix.
// Each shape is built from named fields, never by copying a record, so nothing that
// should not be shown (build arguments) can slip through.

import type { BuildbotStatus } from "../protocol/buildbot.js";
import type { SlotHolder } from "../protocol/slots.js";
import type { BuildInfo, DownloadInfo, SlotsInfo, WebDeps } from "./deps.js";

export const shortName = (s: string): string => s.replace(/^Build(er)?Status\./, "");
const iso = (ms: number | null): string | null => (ms === null ? null : new Date(ms).toISOString());

export interface BuildJson {
  seq: number;
  build_id: string;
  type: string;
  started_at: string;
  ended_at: string | null;
  duration_seconds: number | null;
  result: string | null;
  cleaned: boolean;
}

export function buildJson(b: BuildInfo): BuildJson {
  return {
    seq: b.seq,
    build_id: b.buildId,
    type: b.buildType,
    started_at: iso(b.startedAt)!,
    ended_at: iso(b.endedAt),
    duration_seconds: b.endedAt === null ? null : (b.endedAt - b.startedAt) / 1000,
    result: b.buildStatus === null ? null : shortName(b.buildStatus),
    cleaned: b.cleanedAt !== null,
  };
}

export function buildDetailJson(b: BuildInfo): BuildJson & Record<string, unknown> {
  return {
    ...buildJson(b),
    backend: b.backend,
    chroot_sha1: b.chrootSha1,
    filemap: { ...b.filemap },
    results: { ...b.results },
    dependencies: b.dependencies,
  };
}

export interface DownloadJson {
  sha1: string;
  url: string;
  bytes: number;
  total: number | null;
  started_at: string;
  rate_bytes_per_second: number;
}

export function downloadJson(d: DownloadInfo, now: number): DownloadJson {
  const seconds = (now - d.startedAt) / 1000;
  return {
    sha1: d.sha1,
    url: d.url,
    bytes: d.bytes,
    total: d.total,
    started_at: iso(d.startedAt)!,
    rate_bytes_per_second: seconds > 0 ? Math.round(d.bytes / seconds) : 0,
  };
}

export interface CurrentBuildJson {
  seq: number | null;
  build_id: string;
  type: string | null;
  step: string | null;
  started_at: string | null;
  ended_at: string | null;
  elapsed_seconds: number | null;
  result: string | null;
  cleaning: boolean;
}

export interface StatusJson {
  state: string;
  version: string;
  architecture: string;
  draining: boolean;
  build: CurrentBuildJson | null;
  downloads: DownloadJson[];
}

export function statusJson(deps: WebDeps): StatusJson {
  const now = (deps.now ?? Date.now)();
  const s = deps.status();
  let build: CurrentBuildJson | null = null;
  if (s.build) {
    // The journal's record of the same build: its type and times (matched by id, in case
    // the two were read on either side of a transition).
    const rec = deps.currentBuild();
    const info = rec && rec.buildId === s.build.id ? rec : null;
    const step = s.build.extra["build_step"];
    const end = info?.endedAt ?? now;
    build = {
      seq: info?.seq ?? null,
      build_id: s.build.id,
      type: info?.buildType ?? null,
      step: typeof step === "string" ? step : null,
      started_at: info ? iso(info.startedAt) : null,
      ended_at: iso(info?.endedAt ?? null),
      elapsed_seconds: info ? Math.max(0, (end - info.startedAt) / 1000) : null,
      result: s.build.result ? shortName(s.build.result) : null,
      cleaning: s.build.cleaning === true,
    };
  }
  return {
    state: shortName(s.state),
    version: s.version,
    architecture: deps.architecture,
    draining: deps.draining(),
    build,
    downloads: deps.downloads().map((d) => downloadJson(d, now)),
  };
}

export interface BuildbotJson {
  master: string;
  name: string;
  state: string;
  since: string;
  last_error: string | null;
  next_attempt_at: string | null;
  builders: string[];
  running: { builder: string; command_id: string; command: string; started_at: string }[];
  connects: number;
  commands: number;
  command_failures: number;
}

export function buildbotJson(b: BuildbotStatus): BuildbotJson {
  return {
    master: b.master,
    name: b.name,
    state: b.state,
    since: iso(b.since)!,
    last_error: b.lastError,
    next_attempt_at: iso(b.nextAttemptAt),
    builders: [...b.builders],
    running: b.running.map((c) => ({
      builder: c.builder,
      command_id: c.commandId,
      command: c.command,
      started_at: iso(c.startedAt)!,
    })),
    connects: b.connects,
    commands: b.commands,
    command_failures: b.commandFailures,
  };
}

const holderJson = (h: SlotHolder): { kind: string; label: string } => ({
  kind: h.kind,
  label: h.label,
});

export function slotsJson(s: SlotsInfo): {
  max: number;
  held: { kind: string; label: string }[];
  waiting: { kind: string; label: string }[];
} {
  return { max: s.max, held: s.held.map(holderJson), waiting: s.waiting.map(holderJson) };
}
