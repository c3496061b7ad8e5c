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
// answer is JSON on the following lines, or `Fault CODE: message`; a call with no
// expected answer must not fault either. {"$base64": "..."} stands for a base64 value;
// "$NAME" in a call is replaced by a variable the test provides (e.g. "$LIBRARIAN" for
// the test librarian's URL). A line `... wait STATE` waits until status() reports that
// builder_status (e.g. `... wait WAITING`). Anything else in a block is an error.
//
// In expected JSON, a string that is a whole `<name>` is a wildcard for a value that
// differs from machine to machine, and only the names in WILDCARDS exist, each with a
// real check: an example must not pass whatever the server answers. An unknown name is
// an error in the transcript, found when it is read.

import assert from "node:assert/strict";
import type { XmlRpcValue } from "../src/rpc/codec.js";
import { VERSION } from "../src/version.js";
import { RpcFault, type RpcClient } from "./client.js";

/** What the wildcards are checked against, known to the test that starts the builder. */
export interface MachineValues {
  /** The architecture the builder was configured with ([builder] architecturetag). */
  readonly arch?: string;
}

interface Wildcard {
  /** What the wildcard stands for, for error messages. */
  readonly means: string;
  /** null when `value` is acceptable, otherwise why not. */
  check(value: unknown, machine: MachineValues): string | null;
}

const pattern =
  (re: RegExp): Wildcard["check"] =>
  (value) =>
    typeof value === "string" && re.test(value) ? null : `does not match ${re}`;

export const WILDCARDS: Readonly<Record<string, Wildcard>> = {
  "<version>": {
    means: "this program's version (package.json)",
    check: (value) => (value === VERSION ? null : `is not ${JSON.stringify(VERSION)}`),
  },
  "<sha1>": { means: "a SHA-1: 40 lowercase hex digits", check: pattern(/^[0-9a-f]{40}$/) },
  "<arch>": {
    means: "the builder's architecture tag",
    check: (value, machine) => {
      if (machine.arch === undefined) return "cannot be checked: the test gave no architecture";
      return value === machine.arch ? null : `is not ${JSON.stringify(machine.arch)}`;
    },
  },
  // A probe's complaint quotes psql, whose words depend on the machine (not installed,
  // no socket, refused); what the builder itself says is fixed.
  "<psql failure>": {
    means: "why psql could not connect here",
    check: pattern(
      /^connecting with psql (could not be started: |timed out after \d+ s$|exited with status \d+|was killed by SIG[A-Z0-9]+)/,
    ),
  },
};

const isWildcardText = (v: unknown): v is string => typeof v === "string" && /^<[^<>]*>$/.test(v);

/** Throws naming the first `<name>` in `expected` that is not a known wildcard. */
function checkWildcardNames(expected: unknown, line: number): void {
  if (isWildcardText(expected)) {
    if (!(expected in WILDCARDS)) {
      throw new Error(
        `line ${line}: unknown wildcard ${JSON.stringify(expected)} (known: ${Object.keys(WILDCARDS).join(", ")})`,
      );
    }
  } else if (typeof expected === "object" && expected !== null) {
    for (const v of Object.values(expected)) checkWildcardNames(v, line);
  }
}

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

const STATES = ["IDLE", "BUILDING", "ABORTING", "WAITING"];

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
      const state = text.slice("... wait ".length).trim();
      if (!STATES.includes(state)) {
        throw new Error(`line ${line}: cannot wait for ${JSON.stringify(state)}: not a state`);
      }
      steps.push({ line, wait: state });
      continue;
    }
    if (text.trim() === "") continue;
    if (!text.startsWith(">>> ")) {
      throw new Error(`line ${line}: neither a call nor a wait: ${JSON.stringify(text)}`);
    }
    const m = /^>>> ([a-z_]+)\((.*)\)\s*$/.exec(text);
    if (!m) throw new Error(`line ${line}: cannot read call ${JSON.stringify(text)}`);
    const args = JSON.parse(`[${m[2] ?? ""}]`) as XmlRpcValue[];
    const expected: string[] = [];
    while (j + 1 < body.length && !/^(>>> |\.\.\. )/.test(body[j + 1]!.text)) {
      expected.push(body[++j]!.text);
    }
    const joined = expected.join("\n").trim();
    const fault = /^Fault (\d+: .*)$/s.exec(joined);
    let expect: Step["expect"];
    if (fault) expect = { fault: fault[1]! };
    else if (joined !== "") {
      let value: unknown;
      try {
        value = JSON.parse(joined);
      } catch (err) {
        throw new Error(`line ${line}: the expected answer is not JSON: ${String(err)}`, {
          cause: err,
        });
      }
      checkWildcardNames(value, line);
      expect = { value };
    }
    steps.push({ line, call: { method: m[1]!, args }, ...(expect ? { expect } : {}) });
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

/** Compare with the named wildcards; throws an assertion error naming the path. */
export function matchExpected(
  actual: unknown,
  expected: unknown,
  where = "$",
  machine: MachineValues = {},
): void {
  if (isWildcardText(expected)) {
    const wildcard = WILDCARDS[expected];
    assert.ok(wildcard, `${where}: unknown wildcard ${expected}`);
    const why = wildcard.check(actual, machine);
    assert.ok(
      why === null,
      `${where}: ${JSON.stringify(actual)} ${why} (${expected}: ${wildcard.means})`,
    );
    return;
  }
  if (Array.isArray(expected)) {
    assert.ok(Array.isArray(actual), `${where}: expected an array, got ${JSON.stringify(actual)}`);
    assert.equal(actual.length, expected.length, `${where}: length of ${JSON.stringify(actual)}`);
    expected.forEach((e, i) => matchExpected(actual[i], e, `${where}[${i}]`, machine));
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
      matchExpected((actual as Record<string, unknown>)[k], e, `${where}.${k}`, machine);
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
  machine: MachineValues = {},
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
    // A fault nobody expected fails the transcript with its text, wherever it happens.
    if (!step.expect || "value" in step.expect) {
      assert.ok(fault === null, `${at}: ${step.call.method}() answered Fault ${fault}`);
    }
    if (!step.expect) continue;
    if ("fault" in step.expect) {
      assert.ok(
        fault !== null,
        `${at}: expected Fault ${step.expect.fault}, got ${JSON.stringify(actual)}`,
      );
      assert.equal(
        fault,
        step.expect.fault,
        `${at}: Fault ${fault}, expected ${step.expect.fault}`,
      );
    } else {
      matchExpected(actual, step.expect.value, at, machine);
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
