// The shapes the integration suites repeat, written once: a builder with a librarian and a
// tarball already in its cache; a `script` build started, or run until WAITING; clean();
// the build log. Each checks what every caller checked (build() accepted, clean() answers
// IDLE), so a test states only what is particular to it.

import assert from "node:assert/strict";
import type { XmlRpcStruct, XmlRpcValue } from "../src/rpc/codec.js";
import type { BuilderOverrides } from "../src/app.js";
import {
  startTestBuilder,
  type ConfSections,
  type RawSections,
  type TestBuilder,
} from "./builder.js";
import type { RpcClient } from "./client.js";
import { fetchText, makeTarball, putInCache, status, waitForState } from "./fixtures.js";
import { startLibrarian, type Librarian } from "./librarian.js";

/** The arguments of a `script` build: steps, artifacts, environment, timeout, … */
export type ScriptArgs = Record<string, XmlRpcValue>;

/**
 * build(id, "script", tree, {}, args): resolves with build()'s answer; a refusal rejects
 * with its RpcFault, for tests that expect one.
 */
export function startScriptBuild(
  client: RpcClient,
  id: string,
  tree: string,
  args: ScriptArgs,
): Promise<XmlRpcValue> {
  return client.call("build", id, "script", tree, {}, args);
}

/** Start a `script` build, check it was accepted, and wait for WAITING: the final status. */
export async function runScriptBuild(
  client: RpcClient,
  id: string,
  tree: string,
  args: ScriptArgs,
  opts: { timeoutMs?: number } = {},
): Promise<XmlRpcStruct> {
  assert.deepEqual(await startScriptBuild(client, id, tree, args), ["BuilderStatus.BUILDING", id]);
  return waitForState(client, "WAITING", opts.timeoutMs);
}

/** clean(), which must answer IDLE. */
export async function cleanBuilder(client: RpcClient): Promise<void> {
  assert.equal(await client.call("clean"), "BuilderStatus.IDLE");
}

/**
 * Whatever a test left behind (a failure part-way leaves a build running or WAITING),
 * bring the builder back to IDLE, so that one failing test does not fail the ones after.
 */
export async function returnToIdle(client: RpcClient): Promise<void> {
  const state = (await status(client))["builder_status"];
  if (state === "BuilderStatus.BUILDING") await client.call("abort");
  if (state !== "BuilderStatus.IDLE") {
    await waitForState(client, "WAITING");
    await cleanBuilder(client);
  }
}

/** The current build's log, from /filecache/buildlog (which must answer 200). */
export function fetchBuildLog(url: string): Promise<string> {
  return fetchText(`${url}/filecache/buildlog`);
}

export interface Scenario {
  readonly builder: TestBuilder;
  readonly librarian: Librarian;
  /** SHA-1 of the tarball of `files`, in the builder's cache. */
  readonly tree: string;
  /** Stop the builder (removing its directories) and the librarian. */
  stop(): Promise<void>;
}

/**
 * A builder in this process and a librarian, with `files` made into a tarball and put in
 * the builder's cache: what a suite of script builds starts from.
 */
export async function startScenario(
  files: Record<string, string>,
  sections: ConfSections = {},
  raw: RawSections = {},
  overrides: BuilderOverrides = {},
): Promise<Scenario> {
  const builder = await startTestBuilder(sections, raw, overrides);
  let librarian: Librarian | null = null;
  try {
    librarian = await startLibrarian();
    const tree = await putInCache(builder.client, librarian, makeTarball(files));
    const lib = librarian;
    return {
      builder,
      librarian: lib,
      tree,
      async stop() {
        await builder.stop();
        await lib.close();
      },
    };
  } catch (err) {
    await builder.stop();
    await librarian?.close();
    throw err;
  }
}
