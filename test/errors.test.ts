import assert from "node:assert/strict";
import fs from "node:fs";
import { test } from "node:test";
import { ERRORS } from "../src/errors.js";

test("docs/errors.md lists exactly the codes of the registry, with their fault codes", () => {
  const doc = fs.readFileSync("docs/errors.md", "utf8");
  const rows = [...doc.matchAll(/^\|\s*`(BUILDD_ERR_[A-Z_]+)`\s*\|\s*([^|]+?)\s*\|/gm)].map(
    (m) => `${m[1]} ${m[2]!.trim()}`,
  );
  const expected = Object.entries(ERRORS).map(([k, v]) => `${k} ${v.faultCode ?? "—"}`);
  assert.deepEqual(rows, expected);
});
