// Runs every test file with node's test runner and checks that tests really ran.
// Node 20 does not expand `**` and neither does sh, so the files are listed here
// (flat test/*.test.ts); with no files node would report 0 tests and still exit 0.
// Pass file names to run a subset: `npm run test:run -- test/codec.test.ts`.
//
// Under CI=true this is the gate: it refuses to run unless root, and any skipped or
// todo test fails the run, because the chroot, PostgreSQL, Python-interop and dpkg
// tests are part of what must pass, not optional extras that may quietly not run.
// Outside CI a skip is allowed but listed, with its reason, at the end of the output.

import { spawn } from "node:child_process";
import fs from "node:fs";
import path from "node:path";

const ci = process.env.CI === "true";
if (ci && process.getuid?.() !== 0) {
  console.error(
    "run-tests: CI=true requires root: the chroot, dpkg and PostgreSQL tests must run, not skip",
  );
  process.exit(1);
}

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
// A report of this run only: several runs may share the tree, and a stale or foreign
// report must never be read as this run's. It is kept as last-run.tap afterwards.
const tap = path.join(".cache", `run-${process.pid}.tap`);
fs.rmSync(tap, { force: true });
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

/**
 * Every test or suite the TAP report marks `# SKIP` or `# TODO`, with the names of the
 * suites around it. The summary's `# skipped` count is not enough: a skipped describe()
 * is not counted there, and neither are the tests inside it.
 */
function directives(text) {
  const found = [];
  const stack = [];
  for (const line of text.split("\n")) {
    const indent = /^ */.exec(line)[0].length;
    const depth = Math.floor(indent / 4);
    const subtest = /^\s*# Subtest: (.*)$/.exec(line);
    if (subtest) {
      stack.length = depth;
      stack[depth] = subtest[1];
      continue;
    }
    // `ok 3 - name # SKIP reason`; a `#` inside the name is escaped as `\#`.
    const m = /^\s*(?:not )?ok \d+ - (.*?)(?<!\\) # (SKIP|TODO)(?: (.*))?$/.exec(line);
    if (!m) continue;
    const unescape = (s) => s.replace(/\\(.)/g, "$1");
    found.push({
      kind: m[2],
      name: [...stack.slice(0, depth), m[1]].map(unescape).join(" > "),
      reason: m[3] ? unescape(m[3]) : "",
    });
  }
  return found;
}

function report(list) {
  const bar = "=".repeat(78);
  const lines = list.map(
    (d) => `  ${d.kind} ${d.name}\n      ${d.reason || "(no reason given: add one to the test)"}`,
  );
  return `${bar}\n${list.length} test(s) or suite(s) did not run:\n${lines.join("\n")}\n${bar}`;
}

const child = spawn(process.execPath, args, { stdio: "inherit" });
child.on("exit", (code, signal) => {
  const text = fs.existsSync(tap) ? fs.readFileSync(tap, "utf8") : "";
  if (text) fs.renameSync(tap, path.join(".cache", "last-run.tap"));
  const count = (name) => Number(new RegExp(`^# ${name} (\\d+)$`, "m").exec(text)?.[1] ?? NaN);
  const [tests, pass, fail, skipped, todo] = ["tests", "pass", "fail", "skipped", "todo"].map(
    count,
  );
  // Every file holds at least one test: fewer tests than files means a file was not run
  // (or ran none), which must not pass as green.
  if (!(tests >= files.length)) {
    console.error(`run-tests: the runner reported ${tests} tests for ${files.length} test files`);
    process.exit(1);
  }
  console.log(`\n${files.length} test files, ${tests} tests`);
  console.log(`${pass} passed, ${fail} failed, ${skipped} skipped, ${todo} todo`);
  const notRun = directives(text);
  if (notRun.length > 0 || skipped > 0 || todo > 0) {
    if (notRun.length === 0) notRun.push({ kind: "SKIP", name: "(unnamed)", reason: "" });
    if (ci) {
      console.error(`\n${report(notRun)}`);
      console.error("run-tests: CI=true: skipped or todo tests fail the gate");
      process.exit(1);
    }
    console.log(`\n${report(notRun)}`);
    console.log("(under CI=true these fail the run)");
  }
  process.exit(signal ? 1 : (code ?? 1));
});
