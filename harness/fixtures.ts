// Test inputs and waiting helpers shared by the integration suites.

import { execFileSync } from "node:child_process";
import { createHash } from "node:crypto";
import fs from "node:fs";
import http from "node:http";
import os from "node:os";
import path from "node:path";
import assert from "node:assert/strict";
import type { RpcClient } from "./client.js";
import type { Librarian } from "./librarian.js";
import type { XmlRpcStruct } from "../src/rpc/codec.js";
import { LOCK_FILE } from "../src/state/lock.js";

export const sha1 = (data: Buffer | string): string =>
  createHash("sha1").update(data).digest("hex");

/** A real gzip tarball of the given files (paths relative to the tarball's root). */
export function makeTarball(files: Record<string, string>): Buffer {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "buildd-tree-"));
  try {
    for (const [rel, content] of Object.entries(files)) {
      const full = path.join(dir, rel);
      fs.mkdirSync(path.dirname(full), { recursive: true });
      fs.writeFileSync(full, content);
    }
    return execFileSync("tar", ["-czf", "-", "-C", dir, "."], { maxBuffer: 1 << 30 });
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

/** Serve `body` from the librarian and ensurepresent it (downloaded or already cached). */
export async function putInCache(
  client: RpcClient,
  librarian: Librarian,
  body: Buffer,
  name = `file-${sha1(body).slice(0, 8)}`,
): Promise<string> {
  const sum = sha1(body);
  const url = librarian.add(`/${name}`, body);
  const [present, info] = (await client.call("ensurepresent", sum, url, "", "")) as [
    boolean,
    string,
  ];
  assert.ok(present && (info === "Download" || info === "Cache"), `ensurepresent: ${info}`);
  return sum;
}

export async function status(client: RpcClient): Promise<XmlRpcStruct> {
  return (await client.call("status")) as XmlRpcStruct;
}

/** Poll status() until builder_status is `state` (e.g. "WAITING"). */
export async function waitForState(
  client: RpcClient,
  state: string,
  timeoutMs = 60_000,
): Promise<XmlRpcStruct> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const s = await status(client);
    if (s["builder_status"] === `BuilderStatus.${state}`) return s;
    if (Date.now() > deadline) {
      throw new Error(`builder did not reach ${state}: ${JSON.stringify(s)}`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** Poll until `check` returns true (e.g. a line appears in the build log). */
export async function eventually(
  what: string,
  check: () => boolean | Promise<boolean>,
  timeoutMs = 30_000,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for: ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

export async function fetchText(url: string): Promise<string> {
  const res = await fetch(url);
  assert.equal(res.status, 200, url);
  return res.text();
}

/** Whether a process with this PID exists (zombies count as gone). */
export function alive(pid: number): boolean {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, "utf8");
    return !/^\d+ \(.*\) Z/.test(stat);
  } catch {
    return false;
  }
}

/** PIDs of processes whose command line contains `marker`. */
export function pidsWithMarker(marker: string): number[] {
  const out: number[] = [];
  for (const name of fs.readdirSync("/proc")) {
    if (!/^\d+$/.test(name) || Number(name) === process.pid) continue;
    try {
      const cmd = fs.readFileSync(`/proc/${name}/cmdline`, "utf8").replace(/\0/g, " ");
      if (cmd.includes(marker) && alive(Number(name))) out.push(Number(name));
    } catch {
      // gone meanwhile
    }
  }
  return out;
}

/**
 * A plain GET/HEAD over node:http. fetch() adds `Cache-Control: no-cache` to conditional
 * requests (as the Fetch standard says), which rightly defeats a 304; managers do not.
 */
export function httpGet(
  url: string,
  headers: Record<string, string> = {},
  method = "GET",
): Promise<{
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: Buffer;
}> {
  return new Promise((resolve, reject) => {
    const req = http.request(url, { method, headers, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on("data", (c: Buffer) => chunks.push(c));
      res.on("end", () =>
        resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }),
      );
      res.on("error", reject);
    });
    req.on("error", reject);
    req.end();
  });
}

/**
 * What a file cache directory holds, sorted, without the builder's lock file
 * (`.buildd.lock`, see src/state/lock.ts): entries and any temporary left behind.
 */
export function cacheListing(dir: string): string[] {
  return fs
    .readdirSync(dir)
    .filter((name) => !name.startsWith(LOCK_FILE))
    .sort();
}
