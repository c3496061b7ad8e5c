// `buildd drain` / `buildd undrain`: over the JSON API (POST /api/v1/drain, /undrain;
// docs/api.md). A draining builder finishes its current build and refuses build() until
// undrained, also after a restart. `drain --wait` returns once no build is running, so
// a maintenance script can drain, wait, and then stop or upgrade the builder.

import { BuilderClient, readAll } from "./client.js";
import { CliError } from "./errors.js";
import type { Target } from "./target.js";

const POLL_MS = 1000;

interface ApiStatus {
  readonly state: string;
  readonly draining: boolean;
  readonly build: { readonly build_id: string; readonly result: string | null } | null;
}

function parseStatus(text: string, what: string): ApiStatus {
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch {
    throw new CliError(`${what}: the answer is not JSON: ${text.slice(0, 200)}`);
  }
  if (typeof v !== "object" || v === null || typeof (v as ApiStatus).state !== "string") {
    throw new CliError(`${what}: the answer has no state: ${text.slice(0, 200)}`);
  }
  return v as ApiStatus;
}

async function api(client: BuilderClient, method: string, path: string): Promise<ApiStatus> {
  const res = await client.request(method, path, { accept: "application/json" });
  const text = await readAll(res.body);
  if (res.status === 404) {
    throw new CliError(
      `the builder at ${client.target.base} has no ${path} (HTTP 404): it predates the JSON API (docs/api.md)`,
    );
  }
  if (res.status !== 200) {
    throw new CliError(
      `${method} ${path} answered HTTP ${res.status}: ${text.trim().slice(0, 300)}`,
    );
  }
  return parseStatus(text, `${method} ${path}`);
}

const running = (s: ApiStatus): boolean => s.state === "BUILDING" || s.state === "ABORTING";

export async function drain(
  target: Target,
  opts: { wait?: boolean },
  out: NodeJS.WritableStream,
): Promise<void> {
  const client = new BuilderClient(target);
  let s = await api(client, "POST", "/api/v1/drain");
  const build = s.build && running(s) ? ` build ${s.build.build_id} runs on;` : "";
  out.write(`draining ${target.base}:${build} build() is refused until buildd undrain\n`);
  if (!opts.wait) return;
  while (running(s)) {
    await new Promise((r) => setTimeout(r, POLL_MS));
    s = await api(client, "GET", "/api/v1/status");
  }
  out.write(`no build is running (the builder is ${s.state})\n`);
}

export async function undrain(target: Target, out: NodeJS.WritableStream): Promise<void> {
  const s = await api(new BuilderClient(target), "POST", "/api/v1/undrain");
  out.write(`${target.base} takes builds again (it is ${s.state})\n`);
}
