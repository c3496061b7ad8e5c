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
import { extractTranscripts, runTranscript } from "../harness/transcript.js";

const docs = fs
  .readdirSync("docs")
  .filter((f) => f.endsWith(".md"))
  .map((f) => path.join("docs", f));

describe("executable docs", () => {
  let builder: TestBuilder;
  let lib: Librarian;
  const vars: Record<string, string> = {};
  before(async () => {
    builder = await startTestBuilder();
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
      runTranscript(transcript, builder.client, vars));
  }
});
