// Runs every `transcript` block in docs/*.md against a real builder. Transcripts may use
// $TREE (a cached tarball holding test.sh, see below) and $LIBRARIAN (a real librarian
// serving /tree.tar.gz and /hello.txt).
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { after, before, describe, test } from "node:test";
import { startTestBuilder, type TestBuilder } from "../harness/builder.js";
import { makeTarball, putInCache } from "../harness/fixtures.js";
import { startLibrarian, type Librarian } from "../harness/librarian.js";
import { extractTranscripts, runTranscript, type MachineValues } from "../harness/transcript.js";

// Configured rather than the machine's own, so "<arch>" is checked against a value the
// builder can only report by reading its configuration.
const machine: MachineValues = { arch: "riscv64" };

const docs = fs
  .readdirSync("docs")
  .filter((f) => f.endsWith(".md"))
  .map((f) => path.join("docs", f));

describe("executable docs", () => {
  let builder: TestBuilder;
  let lib: Librarian;
  const vars: Record<string, string> = {};
  before(async () => {
    builder = await startTestBuilder({ builder: { architecturetag: machine.arch! } });
    lib = await startLibrarian();
    const tree = makeTarball({
      "test.sh": "echo all tests passed | tee report.txt\n",
      "fail.sh": "echo 1 test failed; exit 1\n",
    });
    vars["TREE"] = await putInCache(builder.client, lib, tree, "tree.tar.gz");
    lib.add("/hello.txt", Buffer.from("hello\n"));
    vars["LIBRARIAN"] = lib.url;
  });
  after(async () => {
    await builder.stop();
    await lib.close();
  });

  const all = docs.flatMap((file) => extractTranscripts(file, fs.readFileSync(file, "utf8")));
  test("the docs contain transcripts", () => {
    assert.ok(all.length >= 8, `found ${all.length}`);
  });
  for (const transcript of all) {
    test(`${transcript.file}:${transcript.line}`, () =>
      runTranscript(transcript, builder.client, vars, machine));
  }

  // The runner itself: an example must not pass whatever the server answers.
  describe("a transcript fails", () => {
    const run = (body: string): Promise<void> => {
      const [t] = extractTranscripts("example.md", `\`\`\`transcript\n${body}\n\`\`\`\n`);
      assert.ok(t);
      return runTranscript(t, builder.client, vars, machine);
    };
    test("on a fault after a call with no expected answer, with the fault's text", () =>
      assert.rejects(run(">>> clean()"), /clean\(\) answered Fault 8002: Builder is not WAITING/));
    test("on a fault where a value was expected, with the fault's text", () =>
      assert.rejects(run(">>> abort()\n[]"), /abort\(\) answered Fault 8002: Builder is not/));
    test("on a value where a fault was expected", () =>
      assert.rejects(run(">>> echo()\nFault 8002: x"), /expected Fault 8002: x, got \[\]/));
    test("when a wildcard's value is wrong", async () => {
      await assert.rejects(
        run('>>> status()\n{"builder_status": "BuilderStatus.IDLE", "builder_version": "<sha1>"}'),
        /builder_version: ".*" does not match/,
      );
      await assert.rejects(run('>>> echo("amd64")\n["<arch>"]'), /"amd64" is not "riscv64"/);
      await assert.rejects(run('>>> echo("0.0.0")\n["<version>"]'), /"0.0.0" is not/);
    });
    test("when it names a wildcard that does not exist", () =>
      assert.throws(() => run('>>> echo(1)\n["<anything>"]'), /unknown wildcard "<anything>"/));
  });
});
