// Every process the builder starts goes through the one runner (src/process/): a lint rule
// in eslint.config.js refuses node:child_process and execa anywhere else in src/. These
// tests prove the rule is there and bites; `npm run lint` applies it to every file.
import assert from "node:assert/strict";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { test } from "node:test";
import { ESLint } from "eslint";

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const eslint = new ESLint({ cwd: ROOT });

const SPAWNING = [
  'import { spawn } from "node:child_process";\nexport const s = spawn;\n',
  'import { execFile } from "child_process";\nexport const e = execFile;\n',
  'import { execa } from "execa";\nexport const e = execa;\n',
  'export const load = () => import("node:child_process");\n',
  'export const load = () => import("execa");\n',
];

async function boundaryErrors(code: string, file: string): Promise<string[]> {
  const [result] = await eslint.lintText(code, { filePath: path.join(ROOT, file) });
  return result!.messages
    .filter((m) => m.ruleId === "no-restricted-imports" || m.ruleId === "no-restricted-syntax")
    .map((m) => m.message);
}

test("outside src/process/, importing node:child_process or execa fails the lint", async () => {
  for (const code of SPAWNING) {
    for (const file of ["src/backends/new.ts", "src/capabilities/new.ts", "src/new.ts"]) {
      const errors = await boundaryErrors(code, file);
      assert.equal(errors.length, 1, `${file}: ${code}`);
      assert.match(errors[0]!, /through the ProcessRunner \(src\/process\/runner\.ts\)/);
    }
  }
});

test("the runner itself may spawn", async () => {
  for (const code of SPAWNING) {
    assert.deepEqual(await boundaryErrors(code, "src/process/new.ts"), [], code);
  }
});
