// Runs every ```api block in docs/*.md against a real builder that has run one script
// build (API-1) and cleaned it, as docs/api.md says.
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { after, before, describe, test } from "node:test";
import { startTestBuilder, type TestBuilder } from "../harness/builder.js";
import { makeTarball, putInCache, waitForState } from "../harness/fixtures.js";
import { startLibrarian, type Librarian } from "../harness/librarian.js";
import { extractApiExamples, runApiExample } from "../harness/api-examples.js";
import type { MachineValues } from "../harness/transcript.js";

const machine: MachineValues = { arch: "riscv64" };

const docs = fs
  .readdirSync("docs")
  .filter((f) => f.endsWith(".md"))
  .map((f) => path.join("docs", f));

describe("executable API examples", () => {
  let builder: TestBuilder;
  let lib: Librarian;
  before(async () => {
    builder = await startTestBuilder({ builder: { architecturetag: machine.arch! } });
    lib = await startLibrarian();
    const tree = makeTarball({ "test.sh": "echo all tests passed | tee report.txt\n" });
    const sha1 = await putInCache(builder.client, lib, tree, "tree.tar.gz");
    await builder.client.call(
      "build",
      "API-1",
      "script",
      sha1,
      {},
      {
        steps: [{ name: "test", run: "sh test.sh" }],
        artifacts: ["report.txt"],
      },
    );
    await waitForState(builder.client, "WAITING");
    await builder.client.call("clean");
  });
  after(async () => {
    await builder?.stop();
    await lib?.close();
  });

  const all = docs.flatMap((file) => extractApiExamples(file, fs.readFileSync(file, "utf8")));
  test("the docs contain API examples", () => {
    assert.ok(all.length >= 8, `found ${all.length}`);
  });
  for (const ex of all) {
    test(`${ex.file}:${ex.line}`, () => runApiExample(ex, builder.url, machine));
  }

  // The runner itself: an example must not pass whatever the server answers.
  describe("an example fails", () => {
    const run = (body: string): Promise<void> => {
      const [ex] = extractApiExamples("example.md", `\`\`\`api\n${body}\n\`\`\`\n`);
      assert.ok(ex);
      return runApiExample(ex, builder.url, machine);
    };
    test("on another HTTP status, with the body", () =>
      assert.rejects(run("GET /api/v1/builds/1/log\n200"), /HTTP 404, expected 200: .*is gone/));
    test("on a value that differs, naming where", () =>
      assert.rejects(run('GET /api/v1/downloads\n200\n{"downloads": [1]}'), /downloads: length/));
    test("on a key too many or too few", () =>
      assert.rejects(run('GET /healthz\n200\n{"alive": true, "well": true}'), /keys of/));
    test("when a wildcard's value is wrong: the API's and the transcripts'", async () => {
      await assert.rejects(
        run('GET /healthz\n200\n{"alive": "<time>"}'),
        /alive: true is not an ISO 8601 time/,
      );
      await assert.rejects(
        run('GET /healthz\n200\n{"alive": "<count>"}'),
        /alive: true is not a whole number/,
      );
      await assert.rejects(
        run('GET /readyz\n200\n{"ready": "<sha1>", "reasons": []}'),
        /ready: true does not match/,
      );
    });
    test("when it names a wildcard that does not exist", () =>
      assert.throws(() => run('GET /healthz\n200\n{"alive": "<anything>"}'), /unknown wildcard/));
    test("on a line that is not a request", () =>
      assert.throws(() => run("FETCH /healthz\n200"), /expected a request line/));
  });
});
