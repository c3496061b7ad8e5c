// The status page in a real headless Chromium (Debian's, driven by playwright-core) while a
// real script build runs and a slow download is in flight: what a person would see, with
// no reload — the state, the step changing, new log lines, the download's byte count
// rising, the finished build in the history. A screenshot is saved under
// .cache/test-output/ whatever happens, so a failure can be looked at.
import assert from "node:assert/strict";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { after, before, describe, test } from "node:test";
import { chromium, type BrowserContext, type Page } from "playwright-core";
import { startTestBuilder, type TestBuilder } from "../harness/builder.js";
import { eventually, makeTarball, putInCache, sha1, status } from "../harness/fixtures.js";
import { startLibrarian, type Librarian } from "../harness/librarian.js";

const CHROMIUM = "/usr/bin/chromium";
const OUTPUT = path.resolve(".cache/test-output");

describe("the status page in Chromium", { timeout: 180_000 }, () => {
  let b: TestBuilder;
  let lib: Librarian;
  let context: BrowserContext;
  let profile: string;
  let page: Page;
  before(async () => {
    assert.ok(
      fs.existsSync(CHROMIUM),
      `${CHROMIUM} is missing: install Debian's chromium (scripts/test-deps.sh does)`,
    );
    b = await startTestBuilder();
    lib = await startLibrarian();
    profile = fs.mkdtempSync(path.join(os.tmpdir(), "buildd-chromium-"));
    context = await chromium.launchPersistentContext(profile, {
      executablePath: CHROMIUM,
      headless: true,
      args: [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
      ],
      viewport: { width: 412, height: 915 }, // a phone
    });
    page = context.pages()[0] ?? (await context.newPage());
  });
  after(async () => {
    if (page) {
      fs.mkdirSync(OUTPUT, { recursive: true });
      await page
        .screenshot({ path: path.join(OUTPUT, "status-page.png"), fullPage: true })
        .catch(() => undefined);
    }
    await context?.close();
    if (profile) fs.rmSync(profile, { recursive: true, force: true });
    await b?.stop();
    await lib?.close();
  });

  const text = (selector: string): Promise<string> =>
    page.locator(selector).first().innerText({ timeout: 5000 });
  /** Wait until `selector`'s text matches, as a person watching the page would. */
  const until = async (selector: string, re: RegExp, what: string): Promise<void> => {
    await eventually(
      `${what} (${selector} ~ ${re})`,
      async () => re.test(await text(selector).catch(() => "")),
      60_000,
    );
  };

  test("it follows a build and a download without a reload", async () => {
    const tree = await putInCache(
      b.client,
      lib,
      makeTarball({
        "one.sh": 'for i in 1 2 3 4 5; do echo "first step line $i"; sleep 0.6; done\n',
        "two.sh": 'for i in 1 2 3 4; do echo "second step line $i"; sleep 0.6; done\n',
      }),
    );
    await page.goto(`${b.url}/`);
    await until("#state", /^IDLE$/, "the page shows an idle builder");
    // Marked now: a reload would lose it.
    await page.evaluate(() => Object.assign(globalThis, { notReloaded: true }));

    const body = Buffer.alloc(640 * 1024, "d");
    const url = lib.add("/slow-page", body, { kind: "slow", bytesPerChunk: 8192, intervalMs: 80 });
    const download = b.client.call("ensurepresent", sha1(body), url, "", "");
    await b.client.call(
      "build",
      "PAGE-1",
      "script",
      tree,
      {},
      {
        steps: [
          { name: "first", run: "sh one.sh" },
          { name: "second", run: "sh two.sh" },
        ],
      },
    );

    await until("#state", /^BUILDING$/, "the state changes");
    await until("#build-id", /^PAGE-1$/, "the build's id");
    await until("#build-type", /^script$/, "the build's type");
    await until("#build-step", /^first$/, "the first step");

    // The download's byte count rises.
    await until("#downloads td.sha1", new RegExp(`^${sha1(body)}$`), "the download appears");
    const bytes = async (): Promise<number> =>
      Number(await page.locator("#downloads td.bytes").first().getAttribute("data-bytes"));
    const firstBytes = await bytes();
    await eventually("the byte count rises", async () => (await bytes()) > firstBytes, 30_000);
    assert.match(await text("#downloads td.bytes"), / \/ 640\.0 KiB$/);

    // New log lines appear as they are written.
    await until("#log", /first step line 1/, "the first log line");
    assert.doesNotMatch(await text("#log"), /first step line 5/, "lines appear one by one");
    await until("#log", /first step line 5/, "a later log line");
    await until("#build-step", /^second$/, "the step changes");
    await until("#log", /second step line 4/, "the last step's lines");
    fs.mkdirSync(OUTPUT, { recursive: true });
    await page.screenshot({ path: path.join(OUTPUT, "status-page-building.png"), fullPage: true });

    await until("#state", /^WAITING$/, "the build ends");
    await until("#build-result", /^OK$/, "its result");
    assert.deepEqual(await download, [true, "Download"]);
    await until("#no-downloads", /No downloads in progress/, "the download ends");
    await b.client.call("clean");
    await eventually(
      "the builder is idle",
      async () => (await status(b.client))["builder_status"] === "BuilderStatus.IDLE",
    );

    await until("#state", /^IDLE$/, "idle again");
    assert.ok(await page.locator("#build dl").isHidden(), "no build details when idle");
    assert.ok(await page.locator("#no-build").isVisible(), "says there is no build");
    await until("#history tr:first-child td.build-id", /^PAGE-1$/, "the build in the history");
    await until("#history tr:first-child td.result", /^OK$/, "its result in the history");
    assert.equal(
      await page.evaluate(() => (globalThis as { notReloaded?: boolean }).notReloaded),
      true,
      "the page was not reloaded",
    );
  });

  test("without its script the page still says everything", async () => {
    const p = await context.newPage();
    try {
      await p.route("**/assets/page.js", (r) => r.abort());
      await p.goto(`${b.url}/`);
      assert.equal(await p.locator("#state").innerText(), "IDLE");
      assert.match(await p.locator("#history").innerText(), /PAGE-1\s+script\s+OK/);
      assert.match(await p.locator("#cache").innerText(), /Entries\s+\d+/);
    } finally {
      await p.close();
    }
  });
});
