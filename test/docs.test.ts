// Runs every `transcript` block in docs/*.md against a real builder.
import fs from "node:fs";
import path from "node:path";
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { startTestBuilder, type TestBuilder } from "../harness/builder.js";
import { extractTranscripts, runTranscript } from "../harness/transcript.js";

const docs = fs
  .readdirSync("docs")
  .filter((f) => f.endsWith(".md"))
  .map((f) => path.join("docs", f));

describe("executable docs", () => {
  let builder: TestBuilder;
  before(async () => {
    builder = await startTestBuilder();
  });
  after(() => builder.stop());

  const all = docs.flatMap((file) => extractTranscripts(file, fs.readFileSync(file, "utf8")));
  test("the docs contain transcripts", () => {
    assert.ok(all.length >= 4, `found ${all.length}`);
  });
  for (const transcript of all) {
    test(`${transcript.file}:${transcript.line}`, () => runTranscript(transcript, builder.client));
  }
});
