// Executable transcripts: the examples in docs/*.md are run against a real builder by
// test/docs.test.ts, so the documentation cannot drift from the code.
//
// A transcript is a fenced block tagged `transcript`:
//
//     >>> echo("Hello World")
//     ["Hello World"]
//     >>> abort()
//     Fault 8002: Builder is not BUILDING when asked to abort
//
// A call is `method(args)` where args are JSON values separated by commas. The expected
// answer is JSON on the following lines, or `Fault CODE: message`. In expected JSON a
// string "<...>" (e.g. "<version>", "<sha1>") matches any value; {"$base64": "..."}
// stands for a base64 value; "$NAME" in a call is replaced by a variable the test
// provides (e.g. "$LIBRARIAN" for the test librarian's URL). A line `... wait STATE`
// waits until status() reports that builder_status (e.g. `... wait WAITING`).

import assert from "node:assert/strict";
import type { XmlRpcValue } from "../src/rpc/codec.js";
import { RpcFault, type RpcClient } from "./client.js";

export interface Step {
  readonly line: number;
  readonly call?: { method: string; args: XmlRpcValue[] };
  readonly expect?: { fault: string } | { value: unknown };
  readonly wait?: string;
}

export interface Transcript {
  readonly file: string;
  readonly line: number;
  readonly steps: readonly Step[];
}

export function extractTranscripts(file: string, markdown: string): Transcript[] {
  const lines = markdown.split("\n");
  const out: Transcript[] = [];
  for (let i = 0; i < lines.length; i++) {
    if (lines[i]?.trim() !== "```transcript") continue;
    const start = i + 1;
    const body: { text: string; line: number }[] = [];
    for (i++; i < lines.length && lines[i]?.trim() !== "```"; i++) {
      body.push({ text: lines[i] ?? "", line: i + 1 });
    }
    out.push({ file, line: start, steps: parseSteps(body) });
  }
  return out;
}

function parseSteps(body: { text: string; line: number }[]): Step[] {
  const steps: Step[] = [];
  for (let j = 0; j < body.length; j++) {
    const { text, line } = body[j]!;
    if (text.startsWith("... wait ")) {
      steps.push({ line, wait: text.slice("... wait ".length).trim() });
      continue;
    }
    if (!text.startsWith(">>> ")) continue;
    const m = /^>>> ([a-z_]+)\((.*)\)\s*$/.exec(text);
    if (!m) throw new Error(`line ${line}: cannot read call ${JSON.stringify(text)}`);
    const args = JSON.parse(`[${m[2] ?? ""}]`) as XmlRpcValue[];
    const expected: string[] = [];
    while (j + 1 < body.length && !/^(>>> |\.\.\. )/.test(body[j + 1]!.text)) {
      expected.push(body[++j]!.text);
    }
    const joined = expected.join("\n").trim();
    const fault = /^Fault (\d+: .*)$/s.exec(joined);
    steps.push({
      line,
      call: { method: m[1]!, args },
      ...(joined === ""
        ? {}
        : { expect: fault ? { fault: fault[1]! } : { value: JSON.parse(joined) as unknown } }),
    });
  }
  return steps;
}

/** Turn a wire value into the JSON shape transcripts are written in. */
export function toTranscriptJson(v: XmlRpcValue): unknown {
  if (Buffer.isBuffer(v)) return { $base64: v.toString("base64") };
  if (v instanceof Date) return v.toISOString();
  if (Array.isArray(v)) return v.map(toTranscriptJson);
  if (typeof v === "object" && v !== null) {
    return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, toTranscriptJson(x)]));
  }
  return v;
}

/** Compare with "<...>" wildcards; throws an assertion error naming the path. */
export function matchExpected(actual: unknown, expected: unknown, where = "$"): void {
  if (typeof expected === "string" && /^<[^>]*>$/.test(expected)) return;
  if (Array.isArray(expected)) {
    assert.ok(Array.isArray(actual), `${where}: expected an array, got ${JSON.stringify(actual)}`);
    assert.equal(actual.length, expected.length, `${where}: array length`);
    expected.forEach((e, i) => matchExpected(actual[i], e, `${where}[${i}]`));
    return;
  }
  if (typeof expected === "object" && expected !== null) {
    assert.ok(typeof actual === "object" && actual !== null, `${where}: expected an object`);
    assert.deepEqual(
      Object.keys(actual).sort(),
      Object.keys(expected).sort(),
      `${where}: keys of ${JSON.stringify(actual)}`,
    );
    for (const [k, e] of Object.entries(expected)) {
      matchExpected((actual as Record<string, unknown>)[k], e, `${where}.${k}`);
    }
    return;
  }
  assert.deepEqual(actual, expected, where);
}

function substitute(v: XmlRpcValue, vars: Readonly<Record<string, string>>): XmlRpcValue {
  if (typeof v === "string") {
    return v.replace(/\$([A-Z_]+)/g, (all, name: string) => vars[name] ?? all);
  }
  if (Array.isArray(v)) return v.map((x) => substitute(x, vars));
  if (typeof v === "object" && v !== null && !Buffer.isBuffer(v) && !(v instanceof Date)) {
    return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, substitute(x, vars)]));
  }
  return v;
}

export async function runTranscript(
  t: Transcript,
  client: RpcClient,
  vars: Readonly<Record<string, string>> = {},
): Promise<void> {
  for (const step of t.steps) {
    const at = `${t.file}:${step.line}`;
    if (step.wait) {
      await waitForState(client, `BuilderStatus.${step.wait}`, at);
      continue;
    }
    if (!step.call) continue;
    let actual: unknown;
    let fault: string | null = null;
    try {
      actual = toTranscriptJson(
        await client.call(step.call.method, ...step.call.args.map((a) => substitute(a, vars))),
      );
    } catch (err) {
      if (!(err instanceof RpcFault)) throw err;
      fault = `${err.faultCode}: ${err.faultString}`;
    }
    if (!step.expect) continue;
    if ("fault" in step.expect) {
      assert.equal(fault, step.expect.fault, `${at}: fault`);
    } else {
      assert.equal(fault, null, `${at}: unexpected fault`);
      matchExpected(actual, step.expect.value, at);
    }
  }
}

async function waitForState(client: RpcClient, state: string, at: string): Promise<void> {
  const deadline = Date.now() + 120_000;
  for (;;) {
    const status = await client.call("status");
    if (typeof status === "object" && status !== null && "builder_status" in status) {
      if (status.builder_status === state) return;
    }
    if (Date.now() > deadline) throw new Error(`${at}: builder never reached ${state}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}
