import assert from "node:assert/strict";
import fs from "node:fs";
import { test } from "node:test";
import { ERRORS } from "../src/errors.js";

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
