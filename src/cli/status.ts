// `buildd status`: what the builder is doing, for a person: its state, the build (id,
// step, result, files), and the end of the log while it builds. From info() and
// status() over XML-RPC, which every builder answers, and where the builder has the JSON
// API (docs/api.md) also whether it drains, its downloads in progress and its cache.

import { BuilderStatus } from "../protocol/states.js";
import { asStringStruct } from "../protocol/values.js";
import { BuilderClient, readAll, shortName, str } from "./client.js";
import { formatBytes, formatDuration, table } from "./format.js";
import type { Target } from "./target.js";

/** How many lines of the log tail `status` shows. */
const TAIL_LINES = 10;

interface ApiDownload {
  readonly url: string;
  readonly bytes: number;
  readonly total: number | null;
  readonly rate_bytes_per_second: number;
}
interface ApiStatus {
  readonly draining?: boolean;
  readonly downloads?: readonly ApiDownload[];
  readonly build?: { readonly elapsed_seconds?: number } | null;
}
interface ApiCache {
  readonly used_bytes: number;
  readonly budget_bytes: number;
  readonly free_bytes: number;
  readonly reserve_bytes: number;
  readonly entries: number;
}

/** A JSON API answer, or null where the builder has no such endpoint (an older one). */
async function apiGet<T>(client: BuilderClient, path: string): Promise<T | null> {
  const res = await client.request("GET", path, { accept: "application/json" });
  const text = await readAll(res.body);
  if (res.status !== 200) return null;
  try {
    return JSON.parse(text) as T;
  } catch {
    return null;
  }
}

export async function status(
  target: Target,
  opts: { json?: boolean },
  out: NodeJS.WritableStream,
): Promise<void> {
  const client = new BuilderClient(target);
  const [info, s, api, cache] = await Promise.all([
    client.call("info"),
    client.status(),
    apiGet<ApiStatus>(client, "/api/v1/status"),
    apiGet<ApiCache>(client, "/api/v1/cache"),
  ]);
  if (opts.json) {
    const { logtail, ...rest } = s;
    const tail = Buffer.isBuffer(logtail) ? logtail.toString("utf8") : undefined;
    const wire = { ...rest, ...(tail === undefined ? {} : { logtail: tail }) };
    out.write(`${JSON.stringify({ url: target.base, info, status: wire, api, cache }, null, 2)}\n`);
    return;
  }
  const [protocol, arch, types] = Array.isArray(info) ? info : [];
  const rows: string[][] = [
    ["builder", target.base],
    [
      "version",
      `${str(s, "builder_version") ?? "?"} (protocol ${String(protocol)}, ${String(arch)}, builds ${Array.isArray(types) ? types.join(", ") : "?"})`,
    ],
    [
      "state",
      `${shortName(str(s, "builder_status"))}${api?.draining ? " (draining: build() is refused until buildd undrain)" : ""}`,
    ],
  ];
  const id = str(s, "build_id");
  if (id !== null) rows.push(["build", id]);
  const step = str(s, "build_step");
  if (step !== null) rows.push(["step", step]);
  const elapsed = api?.build?.elapsed_seconds;
  if (typeof elapsed === "number") rows.push(["elapsed", formatDuration(elapsed * 1000)]);
  const result = str(s, "build_status");
  if (result !== null) rows.push(["result", shortName(result)]);
  const deps = str(s, "dependencies");
  if (deps) rows.push(["dependencies", deps]);
  const files = asStringStruct(s["filemap"]);
  if (files) {
    for (const [name, sha1] of Object.entries(files)) rows.push(["file", `${name}  ${sha1}`]);
  }
  if (s["cleaning"] === true) rows.push(["cleaning", "clean() is removing the build's files"]);
  for (const d of api?.downloads ?? []) {
    const of = d.total === null ? "" : `/${formatBytes(d.total)}`;
    rows.push([
      "download",
      `${d.url}  ${formatBytes(d.bytes)}${of} at ${formatBytes(d.rate_bytes_per_second)}/s`,
    ]);
  }
  if (cache) {
    const budget = cache.budget_bytes === 0 ? "no budget" : `of ${formatBytes(cache.budget_bytes)}`;
    rows.push([
      "cache",
      `${formatBytes(cache.used_bytes)} ${budget}, ${cache.entries} entries; ${formatBytes(cache.free_bytes)} free (reserve ${formatBytes(cache.reserve_bytes)})`,
    ]);
  }
  out.write(table(rows));
  const tail = s["logtail"];
  if (str(s, "builder_status") === BuilderStatus.BUILDING && Buffer.isBuffer(tail)) {
    const lines = tail.toString("utf8").split("\n");
    // The tail starts mid-line: drop the partial first line unless it is all there is.
    const shown = lines.length > 1 ? lines.slice(1) : lines;
    out.write(`\nlog (last lines; buildd logs --follow for all of it):\n`);
    out.write(`${shown.slice(-TAIL_LINES).join("\n").replace(/\n?$/, "\n")}`);
  }
}
