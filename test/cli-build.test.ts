// `buildd build` drives whole builds from local files against a real builder: it serves
// the inputs, builds, follows the log, fetches and verifies the results, and cleans. Its
// output here is a pipe, so it must be plain lines (no \r, no escape sequences).
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { createHash } from "node:crypto";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { after, before, describe, test } from "node:test";
import { startTestBuilder, type TestBuilder } from "../harness/builder.js";
import { bookwormChroot, chrootTestsUnavailable, makeSourcePackage } from "../harness/debian.js";
import { eventually, sha1, status, waitForState } from "../harness/fixtures.js";
import { buildd } from "./cli-run.js";

function workspace(files: Record<string, string>): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "buildd-cli-ws-"));
  for (const [rel, text] of Object.entries(files)) {
    fs.mkdirSync(path.dirname(path.join(dir, rel)), { recursive: true });
    fs.writeFileSync(path.join(dir, rel), text);
  }
  return dir;
}

/** One word for /bin/sh, whatever it contains. */
const shellQuote = (word: string): string => `'${word.replace(/'/g, `'"'"'`)}'`;

const outDir = (): string => fs.mkdtempSync(path.join(os.tmpdir(), "buildd-cli-out-"));

function assertPlainLines(text: string): void {
  assert.doesNotMatch(text, /\r/, "no carriage returns on a pipe");
  // eslint-disable-next-line no-control-regex
  assert.doesNotMatch(text, /\x1b/, "no escape sequences on a pipe");
}

/**
 * The step lines (`buildd: step NAME (i/n)`) are the steps status() showed while the
 * command polled: a fast step may be missed, but those shown are known, numbered by
 * their place among all the build's steps, and in order.
 */
function assertStepsInOrder(stdout: string, steps: readonly string[]): void {
  const seen = [...stdout.matchAll(/^buildd: step (\S+) \((\d+)\/(\d+)\)$/gm)];
  let last = 0;
  for (const [line, name, i, n] of seen) {
    assert.equal(Number(n), steps.length, line);
    assert.equal(steps[Number(i) - 1], name, line);
    assert.ok(Number(i) > last, `${line} comes after step ${last}`);
    last = Number(i);
  }
}

describe("buildd build script", () => {
  let b: TestBuilder;
  before(async () => {
    b = await startTestBuilder();
  });
  after(async () => {
    await b?.stop();
  });

  test("runs the steps, brings the artifacts home verified, saves the log and cleans", async () => {
    const ws = workspace({ "input.txt": "hello from the workspace\n" });
    const out = outDir();
    const r = await buildd([
      "build",
      "script",
      ws,
      "--url",
      b.url,
      "--build-id",
      "CLI-S1",
      "--step",
      "prepare=mkdir -p out && tr a-z A-Z < input.txt > out/upper.txt",
      "--step",
      "report=echo 'tests: 3 passed' > report.txt; echo step-two-ran",
      "--artifact",
      "report.txt",
      "--artifact",
      "out/*.txt",
      "--out",
      out,
    ]);
    assert.equal(r.code, 0, r.stderr + r.stdout);
    assertPlainLines(r.stdout);
    assert.equal(
      fs.readFileSync(path.join(out, "out/upper.txt"), "utf8"),
      "HELLO FROM THE WORKSPACE\n",
    );
    assert.equal(fs.readFileSync(path.join(out, "report.txt"), "utf8"), "tests: 3 passed\n");
    for (const name of ["report.txt", "out/upper.txt"]) {
      const sum = sha1(fs.readFileSync(path.join(out, name)));
      assert.match(
        r.stdout,
        new RegExp(`^buildd: fetched ${name} \\(.*sha1 ${sum} verified\\)`, "m"),
      );
    }
    // The log is followed on stdout and saved beside the results.
    assert.match(r.stdout, /^step-two-ran$/m);
    assert.match(fs.readFileSync(path.join(out, "buildlog"), "utf8"), /^step-two-ran$/m);
    assertStepsInOrder(r.stdout, ["unpack", "prepare", "report"]);
    assert.match(r.stdout, /^buildd: build CLI-S1 finished: OK after /m);
    assert.deepEqual(
      fs.readdirSync(out).sort(),
      ["buildlog", "out", "report.txt"],
      "no partial files left",
    );
    assert.equal((await status(b.client))["builder_status"], "BuilderStatus.IDLE");
  });

  test("a failing step: exit status 3 (PACKAGEFAIL), the artifacts that exist still fetched", async () => {
    const ws = workspace({ "test.sh": "echo 'FAIL: one' > report.txt\nexit 1\n" });
    const out = outDir();
    const r = await buildd([
      "build",
      "script",
      ws,
      "--url",
      b.url,
      "--step",
      "unit=sh test.sh",
      "--step",
      "never=echo never-runs",
      "-a",
      "report.txt",
      "-o",
      out,
      "--quiet",
    ]);
    assert.equal(r.code, 3, r.stderr + r.stdout);
    assert.match(r.stdout, /finished: PACKAGEFAIL/);
    assert.doesNotMatch(r.stdout, /never-runs/);
    assert.doesNotMatch(r.stdout, /^RUN:/m, "--quiet shows no log");
    assert.equal(fs.readFileSync(path.join(out, "report.txt"), "utf8"), "FAIL: one\n");
    assert.equal((await status(b.client))["builder_status"], "BuilderStatus.IDLE");
  });

  test("steps from a JSON file, an environment variable, and a secret masked in the log", async () => {
    const ws = workspace({});
    const steps = path.join(ws, "..", `${path.basename(ws)}-steps.json`);
    fs.writeFileSync(
      steps,
      JSON.stringify([
        { name: "show", run: ["sh", "-c", 'echo "greeting=$GREETING token=$TOKEN"'] },
      ]),
    );
    const out = outDir();
    const r = await buildd(
      [
        "build",
        "script",
        ws,
        "--url",
        b.url,
        "--steps",
        steps,
        "-e",
        "GREETING=hi",
        "--secret",
        "TOKEN",
        "-o",
        out,
      ],
      { env: { TOKEN: "s3cr3t-value" } },
    );
    assert.equal(r.code, 0, r.stderr + r.stdout);
    assert.match(r.stdout, /^greeting=hi token=\*+$/m);
    assert.doesNotMatch(
      r.stdout + fs.readFileSync(path.join(out, "buildlog"), "utf8"),
      /s3cr3t-value/,
    );
  });

  test("--keep leaves the build WAITING with its files", async () => {
    const r = await buildd([
      "build",
      "script",
      workspace({}),
      "--url",
      b.url,
      "--build-id",
      "CLI-KEEP",
      "--step",
      "x=echo kept > k.txt",
      "-a",
      "k.txt",
      "-o",
      outDir(),
      "--keep",
    ]);
    assert.equal(r.code, 0, r.stderr + r.stdout);
    const s = await status(b.client);
    assert.equal(s["builder_status"], "BuilderStatus.WAITING");
    assert.equal(s["build_id"], "CLI-KEEP");
    // A builder that is not IDLE is not disturbed: the next build is refused before anything is sent.
    const refused = await buildd([
      "build",
      "script",
      workspace({}),
      "--url",
      b.url,
      "--step",
      "x=true",
      "-o",
      outDir(),
    ]);
    assert.equal(refused.code, 1);
    assert.match(refused.stderr, /is WAITING with build CLI-KEEP, not IDLE; wait for it/);
    assert.equal((await status(b.client))["build_id"], "CLI-KEEP");
    await b.client.call("clean");
    await waitForState(b.client, "IDLE");
  });

  test("on a terminal: a progress line redrawn in place above which the log scrolls", async () => {
    const out = outDir();
    // The step waits until the test has seen the progress line, then releases it.
    const gate = fs.mkdtempSync(path.join(os.tmpdir(), "buildd-cli-gate-"));
    fs.chmodSync(gate, 0o755);
    const release = path.join(gate, "release");
    const argv = [
      process.execPath,
      "--import",
      "tsx",
      "src/cli.ts",
      "build",
      "script",
      workspace({}),
      "--url",
      b.url,
      "--step",
      'wait=while [ ! -e "$GATE" ]; do sleep 0.1; done; echo after-the-wait',
      // Named in the environment: a step's private /tmp keeps what the build names.
      "--env",
      `GATE=${release}`,
      "-o",
      out,
    ];
    // script(1) gives the command a pseudo-terminal; -e passes its exit status on.
    const child = spawn("script", ["-qefc", argv.map(shellQuote).join(" "), "/dev/null"], {
      stdio: ["ignore", "pipe", "inherit"],
    });
    let text = "";
    child.stdout.on("data", (c: Buffer) => (text += c.toString("utf8")));
    const code = new Promise<number | null>((resolve) => child.on("close", resolve));
    // eslint-disable-next-line no-control-regex
    const bar = /\r\x1b\[Kbuilding \[[#.]+\] 2\/2 wait /;
    await eventually("the progress line shows the waiting step", () => bar.test(text));
    fs.writeFileSync(release, "");
    assert.equal(await code, 0, text);
    assert.match(text, /after-the-wait/);
    assert.match(text, /buildd: build \S+ finished: OK/);
    assert.ok(fs.existsSync(path.join(out, "buildlog")));
  });

  test("Ctrl-C aborts the build, which is still collected and cleaned: exit status 8 (ABORTED)", async () => {
    const out = outDir();
    const child = spawn(
      process.execPath,
      [
        "--import",
        "tsx",
        "src/cli.ts",
        "build",
        "script",
        workspace({}),
        "--url",
        b.url,
        "--step",
        "long=echo long-step-started; sleep 60",
        "-o",
        out,
      ],
      { stdio: ["ignore", "pipe", "pipe"] },
    );
    let text = "";
    child.stdout.on("data", (c: Buffer) => (text += c.toString("utf8")));
    child.stderr.on("data", (c: Buffer) => (text += c.toString("utf8")));
    const exited = new Promise<number | null>((resolve) => child.on("close", resolve));
    await eventually("the step runs and its output is shown", () =>
      /^long-step-started$/m.test(text),
    );
    child.kill("SIGINT");
    assert.equal(await exited, 8, text);
    assert.match(text, /interrupted: aborting the build/);
    assert.match(text, /finished: ABORTED/);
    assert.ok(fs.existsSync(path.join(out, "buildlog")), "the log is saved");
    assert.equal((await status(b.client))["builder_status"], "BuilderStatus.IDLE");
  });

  test("bad input is refused before anything is sent, saying what to write", async () => {
    const cases: [string[], RegExp][] = [
      [["build", "script", workspace({})], /a script build needs steps: --step 'NAME=COMMAND'/],
      [
        ["build", "script", workspace({}), "--step", "nocommand"],
        /--step "nocommand": write it as NAME=VALUE/,
      ],
      [
        ["build", "script", "/nonexistent/dir", "--step", "a=true"],
        /\/nonexistent\/dir is not a directory/,
      ],
      [
        ["build", "script", workspace({}), "--step", "a=true", "--secret", "NOT_SET_ANYWHERE"],
        /--secret NOT_SET_ANYWHERE: set NOT_SET_ANYWHERE in the environment/,
      ],
      [
        ["build", "script", workspace({}), "--step", "a=true", "--url", "ftp://x"],
        /--url must be an http:\/\/ or https:\/\/ URL, not ftp:/,
      ],
    ];
    for (const [args, message] of cases) {
      const r = await buildd(args.includes("--url") ? args : [...args, "--url", b.url]);
      assert.equal(r.code, 2, `${args.join(" ")}: ${r.stderr}`);
      assert.match(r.stderr, message);
    }
    assert.equal((await status(b.client))["builder_status"], "BuilderStatus.IDLE");
  });
});

describe("buildd build against a builder with a password", () => {
  let b: TestBuilder;
  before(async () => {
    b = await startTestBuilder({ auth: { password: "pw-for-cli" } });
  });
  after(async () => {
    await b?.stop();
  });

  test("credentials from the URL work; without them it says how to give them", async () => {
    const url = new URL(b.url);
    url.username = "buildd";
    url.password = "pw-for-cli";
    const ok = await buildd([
      "build",
      "script",
      workspace({}),
      "--url",
      url.href,
      "--step",
      "a=true",
      "-o",
      outDir(),
    ]);
    assert.equal(ok.code, 0, ok.stderr + ok.stdout);
    assert.doesNotMatch(ok.stdout + ok.stderr, /pw-for-cli/, "the password is never printed");
    const no = await buildd([
      "build",
      "script",
      workspace({}),
      "--url",
      b.url,
      "--step",
      "a=true",
      "-o",
      outDir(),
    ]);
    assert.equal(no.code, 1);
    assert.match(no.stderr, /wants credentials \(HTTP 401\): put them in the URL/);
  });

  test("credentials from the builder's own config", async () => {
    const r = await buildd([
      "build",
      "script",
      workspace({}),
      "--config",
      b.configFile,
      "--url",
      b.url,
      "--step",
      "a=true",
      "-o",
      outDir(),
    ]);
    assert.equal(r.code, 0, r.stderr + r.stdout);
  });
});

const unavailable = chrootTestsUnavailable();
if (unavailable) console.log(`# buildd build binarypackage skipped: ${unavailable}`);

describe("buildd build binarypackage", { skip: unavailable ?? false }, () => {
  let b: TestBuilder;
  before(async () => {
    b = await startTestBuilder({ build: { kill_grace: 2, abort_timeout: 30 } });
  });
  after(async () => {
    await b?.stop();
  });

  test("a tiny source package and a chroot tarball: the .changes and its files on disk, verified", async () => {
    const pkg = await makeSourcePackage({ name: "buildd-cli-hello" });
    const chroot = await bookwormChroot();
    const out = outDir();
    const r = await buildd(
      [
        "build",
        "binarypackage",
        pkg.files[pkg.dsc]!,
        chroot,
        "--url",
        b.url,
        "--build-id",
        "CLI-BP1",
        "-o",
        out,
      ],
      { timeoutMs: 900_000 },
    );
    assert.equal(r.code, 0, r.stderr + r.stdout.slice(-4000));
    assertPlainLines(r.stdout);
    assert.match(r.stdout, /^buildd: chroot: (Download|Cache) /m);
    assertStepsInOrder(r.stdout, [
      "unpack",
      "mount",
      "update",
      "upgrade",
      "unpack-source",
      "install-deps",
      "build",
    ]);
    const changes = fs.readdirSync(out).filter((n) => n.endsWith(".changes"));
    assert.equal(changes.length, 1, `one .changes in ${fs.readdirSync(out).join(", ")}`);
    // Every file the .changes lists is there with the SHA-256 it states: checked
    // independently of the SHA-1s the command verified.
    const text = fs.readFileSync(path.join(out, changes[0]!), "utf8");
    const listed = [
      ...text
        .split("Checksums-Sha256:")[1]!
        .split(/\n(?! )/)[0]!
        .matchAll(/^ ([0-9a-f]{64}) \d+ (\S+)$/gm),
    ];
    assert.ok(
      listed.some((m) => m[2]!.endsWith(".deb")),
      "a .deb is listed",
    );
    for (const [, sum, name] of listed) {
      const got = createHash("sha256")
        .update(fs.readFileSync(path.join(out, name!)))
        .digest("hex");
      assert.equal(got, sum, name);
    }
    assert.match(fs.readFileSync(path.join(out, "buildlog"), "utf8"), /dpkg-buildpackage/);
    assert.equal((await status(b.client))["builder_status"], "BuilderStatus.IDLE");
  });

  test("a .dsc whose files are not beside it is refused, naming them", async () => {
    const pkg = await makeSourcePackage({ name: "buildd-cli-lonely" });
    const lonely = fs.mkdtempSync(path.join(os.tmpdir(), "buildd-cli-dsc-"));
    fs.copyFileSync(pkg.files[pkg.dsc]!, path.join(lonely, pkg.dsc));
    const r = await buildd([
      "build",
      "binarypackage",
      path.join(lonely, pkg.dsc),
      "/nonexistent.tar",
      "--url",
      b.url,
    ]);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /lists buildd-cli-lonely_1\.0\.tar\.xz, which is not beside it/);
  });
});
