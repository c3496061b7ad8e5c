import assert from "node:assert/strict";
import fs from "node:fs";
import { Writable } from "node:stream";
import { test } from "node:test";
import { BuilddError, ERRORS, isBuilddError } from "../src/errors.js";
import { FetchError } from "../src/filecache/fetch.js";
import { createLogger } from "../src/logger.js";
import { decodeMethodResponse, encodeMethodCall, type MethodResponse } from "../src/rpc/codec.js";
import { createDispatcher, type MethodTable } from "../src/rpc/dispatcher.js";

interface Row {
  readonly code: string;
  readonly fault: string;
  readonly when: string;
}

/** The rows of docs/errors.md's table whose first cell is a `BUILDD_ERR_…` code. */
function documentedRows(): Row[] {
  const doc = fs.readFileSync("docs/errors.md", "utf8");
  const rows: Row[] = [];
  for (const line of doc.split("\n")) {
    if (!/^\|\s*`BUILDD_ERR_/.test(line)) continue;
    // Cells are split on unescaped pipes; a pipe inside a cell is written `\|`.
    const cells = line
      .replace(/^\|/, "")
      .replace(/\|\s*$/, "")
      .split(/(?<!\\)\|/)
      .map((c) => c.trim().replace(/\\\|/g, "|"));
    assert.equal(cells.length, 3, `three cells in ${JSON.stringify(line)}`);
    const code = /^`(BUILDD_ERR_[A-Z_]+)`$/.exec(cells[0]!)?.[1];
    assert.ok(code, `a code in ${JSON.stringify(cells[0])}`);
    rows.push({ code, fault: cells[1]!, when: cells[2]! });
  }
  return rows;
}

const registry = Object.entries(ERRORS).map(([code, spec]) => ({
  code,
  fault: spec.faultCode === null ? "—" : String(spec.faultCode),
  when: spec.summary,
}));

test("docs/errors.md lists exactly the codes of the registry, in its order, with their fault codes", () => {
  assert.deepEqual(
    documentedRows().map((r) => `${r.code} ${r.fault}`),
    registry.map((r) => `${r.code} ${r.fault}`),
  );
});

test("docs/errors.md says for each code exactly what the registry's summary says", () => {
  const documented = new Map(documentedRows().map((r) => [r.code, r.when]));
  for (const { code, when } of registry) {
    assert.equal(documented.get(code), when, `the text documented for ${code}`);
  }
});

test("a download's failure is a registry error with a BUILDD_ERR_FETCH_ code and no fault code", () => {
  const err = new FetchError("BUILDD_ERR_FETCH_TIMEOUT", "no data for 10 ms");
  assert.ok(isBuilddError(err, "BUILDD_ERR_FETCH_TIMEOUT"));
  assert.equal(err.faultCode, null);
  assert.equal(err.reason, "no data for 10 ms");
  const fetchCodes = Object.keys(ERRORS).filter((c) => c.startsWith("BUILDD_ERR_FETCH_"));
  assert.ok(fetchCodes.length > 0);
  for (const code of fetchCodes) {
    assert.equal(
      ERRORS[code as keyof typeof ERRORS].faultCode,
      null,
      `${code} is answered as a value`,
    );
  }
});

// The dispatcher itself, with a method table of failures: which errors a real method can
// throw unexpectedly depends on the disk and the kernel, so the table makes them certain.
test("the dispatcher answers unexpected errors with BUILDD_ERR_INTERNAL's registry entry", async () => {
  const logged: string[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, cb) {
      logged.push(chunk.toString("utf8"));
      cb();
    },
  });
  const methods: MethodTable = {
    crash: {
      params: [],
      handler: () => {
        throw new Error("disk on fire");
      },
    },
    // A registry error that is not meant for the wire must not leak as a fault of its own.
    offwire: {
      params: [],
      handler: () => {
        throw new BuilddError("BUILDD_ERR_LOCKED", "held by pid 1");
      },
    },
    refused: {
      params: [],
      handler: () => {
        throw new BuilddError("BUILDD_ERR_ILLEGAL_STATE", "Builder is not IDLE");
      },
    },
  };
  const dispatcher = createDispatcher(methods, createLogger("info", sink), 64);
  const call = async (name: string): Promise<MethodResponse> =>
    decodeMethodResponse(await dispatcher.dispatch(Buffer.from(encodeMethodCall(name, []))));
  const fault = (faultCode: number, faultString: string): MethodResponse => ({
    kind: "fault",
    fault: { faultCode, faultString },
  });

  assert.deepEqual(
    await call("crash"),
    fault(ERRORS.BUILDD_ERR_INTERNAL.faultCode, "internal error: disk on fire"),
  );
  assert.deepEqual(
    await call("offwire"),
    fault(ERRORS.BUILDD_ERR_INTERNAL.faultCode, "internal error: held by pid 1"),
  );
  assert.deepEqual(
    await call("refused"),
    fault(ERRORS.BUILDD_ERR_ILLEGAL_STATE.faultCode, "Builder is not IDLE"),
  );
  assert.match(logged.join(""), /disk on fire/, "an unexpected error is logged");
});
