// Executable examples for the JSON API: every ```api block in docs/*.md is run against a
// real builder by test/api-docs.test.ts. A block is a list of exchanges:
//
//     GET /api/v1/builds?limit=5      a request: GET or POST, and a path
//     200                             the expected HTTP status
//     {"builds": []}                  the expected JSON body (optional), on any lines
//
// In the expected JSON a whole string `<name>` is a wildcard with a real check: the
// transcripts' (harness/transcript.ts: `<version>`, `<sha1>`, `<arch>`, …) and the
// API's own, below. An unknown name is an error in the example, found when it is read.

import assert from "node:assert/strict";
import { WILDCARDS as RPC_WILDCARDS, type MachineValues } from "./transcript.js";

interface Wildcard {
  readonly means: string;
  check(value: unknown, machine: MachineValues): string | null;
}

const whole = (v: unknown): boolean => typeof v === "number" && Number.isSafeInteger(v) && v >= 0;

export const API_WILDCARDS: Readonly<Record<string, Wildcard>> = {
  ...RPC_WILDCARDS,
  "<time>": {
    means: "a time in UTC, ISO 8601",
    check: (v) =>
      typeof v === "string" &&
      /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/.test(v) &&
      new Date(v).toISOString() === v
        ? null
        : "is not an ISO 8601 time in UTC",
  },
  "<seconds>": {
    means: "a number of seconds, 0 or more",
    check: (v) => (typeof v === "number" && v >= 0 ? null : "is not a number ≥ 0"),
  },
  "<bytes>": {
    means: "a number of bytes",
    check: (v) => (whole(v) ? null : "is not a whole number ≥ 0"),
  },
  "<count>": { means: "a count", check: (v) => (whole(v) ? null : "is not a whole number ≥ 0") },
};

export interface Exchange {
  readonly line: number;
  readonly method: "GET" | "POST";
  readonly path: string;
  readonly status: number;
  /** undefined: the body is not checked. */
  readonly body?: unknown;
}

export interface ApiExample {
  readonly file: string;
  readonly line: number;
  readonly exchanges: readonly Exchange[];
}

const REQUEST = /^(GET|POST) (\/\S*)$/;
const isWildcardText = (v: unknown): v is string => typeof v === "string" && /^<[^<>]*>$/.test(v);

function checkNames(expected: unknown, line: number): void {
  if (isWildcardText(expected)) {
    if (!(expected in API_WILDCARDS)) {
      throw new Error(
        `line ${line}: unknown wildcard ${JSON.stringify(expected)} (known: ${Object.keys(API_WILDCARDS).join(", ")})`,
      );
    }
  } else if (typeof expected === "object" && expected !== null) {
    for (const v of Object.values(expected)) checkNames(v, line);
  }
}

export function extractApiExamples(file: string, markdown: string): ApiExample[] {
  const lines = markdown.split("\n");
  const out: ApiExample[] = [];
  for (let i = 0; i < lines.length; i++) {
    if (lines[i]?.trim() !== "```api") continue;
    const start = i + 1;
    const body: { text: string; line: number }[] = [];
    for (i++; i < lines.length && lines[i]?.trim() !== "```"; i++) {
      body.push({ text: lines[i] ?? "", line: i + 1 });
    }
    out.push({ file, line: start, exchanges: parseExchanges(body) });
  }
  return out;
}

function parseExchanges(body: { text: string; line: number }[]): Exchange[] {
  const out: Exchange[] = [];
  for (let j = 0; j < body.length; j++) {
    const { text, line } = body[j]!;
    if (text.trim() === "") continue;
    const req = REQUEST.exec(text.trim());
    if (!req)
      throw new Error(
        `line ${line}: expected a request line (GET|POST /path), got ${JSON.stringify(text)}`,
      );
    const statusLine = body[++j];
    if (!statusLine || !/^\d{3}$/.test(statusLine.text.trim())) {
      throw new Error(`line ${line + 1}: expected the HTTP status (e.g. 200) after ${text.trim()}`);
    }
    const json: string[] = [];
    while (j + 1 < body.length && !REQUEST.test(body[j + 1]!.text.trim()))
      json.push(body[++j]!.text);
    const joined = json.join("\n").trim();
    let expected: unknown;
    if (joined !== "") {
      try {
        expected = JSON.parse(joined);
      } catch (err) {
        throw new Error(`line ${line}: the expected body is not JSON: ${String(err)}`, {
          cause: err,
        });
      }
      checkNames(expected, line);
    }
    out.push({
      line,
      method: req[1] as "GET" | "POST",
      path: req[2]!,
      status: Number(statusLine.text.trim()),
      ...(expected === undefined ? {} : { body: expected }),
    });
  }
  return out;
}

/** Compare with the wildcards; throws an assertion error naming the JSON path. */
export function matchJson(
  actual: unknown,
  expected: unknown,
  where: string,
  machine: MachineValues,
): void {
  if (isWildcardText(expected)) {
    const w = API_WILDCARDS[expected];
    assert.ok(w, `${where}: unknown wildcard ${expected}`);
    const why = w.check(actual, machine);
    assert.ok(why === null, `${where}: ${JSON.stringify(actual)} ${why} (${expected}: ${w.means})`);
    return;
  }
  if (Array.isArray(expected)) {
    assert.ok(Array.isArray(actual), `${where}: expected an array, got ${JSON.stringify(actual)}`);
    assert.equal(actual.length, expected.length, `${where}: length of ${JSON.stringify(actual)}`);
    expected.forEach((e, i) => matchJson(actual[i], e, `${where}[${i}]`, machine));
    return;
  }
  if (typeof expected === "object" && expected !== null) {
    assert.ok(
      typeof actual === "object" && actual !== null && !Array.isArray(actual),
      `${where}: expected an object, got ${JSON.stringify(actual)}`,
    );
    assert.deepEqual(
      Object.keys(actual).sort(),
      Object.keys(expected).sort(),
      `${where}: keys of ${JSON.stringify(actual)}`,
    );
    for (const [k, e] of Object.entries(expected)) {
      matchJson((actual as Record<string, unknown>)[k], e, `${where}.${k}`, machine);
    }
    return;
  }
  assert.deepEqual(actual, expected, `${where}: ${JSON.stringify(actual)}`);
}

export async function runApiExample(
  ex: ApiExample,
  baseUrl: string,
  machine: MachineValues = {},
): Promise<void> {
  for (const x of ex.exchanges) {
    const at = `${ex.file}:${x.line} ${x.method} ${x.path}`;
    const res = await fetch(`${baseUrl}${x.path}`, { method: x.method });
    const text = await res.text();
    assert.equal(res.status, x.status, `${at}: HTTP ${res.status}, expected ${x.status}: ${text}`);
    if (x.body === undefined) continue;
    assert.match(res.headers.get("content-type") ?? "", /^application\/json/, `${at}: not JSON`);
    matchJson(JSON.parse(text) as unknown, x.body, at, machine);
  }
}
