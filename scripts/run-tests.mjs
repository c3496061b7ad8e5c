// Runs every test file with node's test runner and checks that tests really ran.
// Node 20 does not expand `**` and neither does sh, so the files are listed here
// (flat test/*.test.ts); with no files node would report 0 tests and still exit 0.
// Pass file names to run a subset: `npm run test:run -- test/codec.test.ts`.

import { spawn } from "node:child_process";
import fs from "node:fs";
import path from "node:path";

const given = process.argv.slice(2);
const files = given.length
  ? given
  : fs
      .readdirSync("test")
      .filter((f) => f.endsWith(".test.ts"))
      .sort()
      .map((f) => path.join("test", f));
if (files.length === 0) {
  console.error("run-tests: no test files found under test/");
  process.exit(1);
}

fs.mkdirSync(".cache", { recursive: true });
const tap = path.join(".cache", "last-run.tap");
const args = [
  "--import",
  "tsx",
  "--test",
  "--test-concurrency=3",
  "--test-timeout=900000",
  "--test-reporter=spec",
  "--test-reporter-destination=stdout",
  "--test-reporter=tap",
  `--test-reporter-destination=${tap}`,
  ...files,
];
const child = spawn(process.execPath, args, { stdio: "inherit" });
child.on("exit", (code, signal) => {
  const text = fs.existsSync(tap) ? fs.readFileSync(tap, "utf8") : "";
  const count = (name) => Number(new RegExp(`^# ${name} (\\d+)$`, "m").exec(text)?.[1] ?? NaN);
  const [tests, pass, fail, skipped] = ["tests", "pass", "fail", "skipped"].map(count);
  // Every file holds at least one test: fewer tests than files means a file was not run
  // (or ran none), which must not pass as green.
  if (!(tests >= files.length)) {
    console.error(`run-tests: the runner reported ${tests} tests for ${files.length} test files`);
    process.exit(1);
  }
  console.log(`\n${files.length} test files, ${tests} tests`);
  console.log(`${pass} passed, ${fail} failed, ${skipped} skipped`);
  process.exit(signal ? 1 : (code ?? 1));
});
