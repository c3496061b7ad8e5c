// The `buildd` command as an operator uses it: help, version, config errors, and a
// served builder that stops cleanly on SIGTERM and SIGINT.
import assert from "node:assert/strict";
import { execFile, spawn } from "node:child_process";
import fs from "node:fs";
import { promisify } from "node:util";
import { describe, test } from "node:test";
import { makeBuilderDirs, startBuilderProcess } from "../harness/builder.js";
import { eventually, sha1 } from "../harness/fixtures.js";
import { startLibrarian } from "../harness/librarian.js";

const run = promisify(execFile);
const CLI = ["--import", "tsx", "src/cli.ts"];
const pkg = JSON.parse(fs.readFileSync("package.json", "utf8")) as { version: string };

describe("buildd command line", () => {
  test("--version prints the package version", async () => {
    const { stdout } = await run(process.execPath, [...CLI, "--version"]);
    assert.equal(stdout.trim(), pkg.version);
  });

  test("--help lists every command, one line each", async () => {
    const { stdout } = await run(process.execPath, [...CLI, "--help"]);
    const commands = stdout.split("Commands:\n")[1]!.trimEnd().split("\n");
    assert.deepEqual(
      commands.map((line) => /^ {2}(\S+)/.exec(line)?.[1]),
      [
        "serve",
        "init",
        "create-worker",
        "status",
        "logs",
        "drain",
        "undrain",
        "history",
        "build",
        "help",
      ],
      `one line per command, none wrapped:\n${stdout}`,
    );
    for (const line of commands) assert.match(line, /^ {2}\S.* {2,}\S/, `a description: ${line}`);
  });

  test("--help names the serve command and its --config option", async () => {
    const { stdout } = await run(process.execPath, [...CLI, "--help"]);
    assert.match(stdout, /serve/);
    const serve = await run(process.execPath, [...CLI, "serve", "--help"]);
    assert.match(serve.stdout, /--config <file>/);
  });

  test("a bad config stops start-up with exit 2 and a message naming section and key", async () => {
    const dirs = makeBuilderDirs({ builder: { bindport: "http" } });
    await assert.rejects(
      run(process.execPath, [...CLI, "serve", "--config", dirs.configFile]),
      (err: { code?: number; stderr?: string }) => {
        assert.equal(err.code, 2);
        assert.match(
          err.stderr ?? "",
          /configuration error: .*buildd\.conf: \[builder\] bindport = "http" is not a whole number/,
        );
        return true;
      },
    );
  });

  test("on a terminal the builder's log is readable lines, not JSON", async () => {
    const dirs = makeBuilderDirs({ log: { level: "info" } });
    // script(1) runs the command on a pseudo-terminal, as a person's shell would.
    const child = spawn(
      "script",
      [
        "-qefc",
        `${process.execPath} --import tsx src/cli.ts serve --config ${dirs.configFile}`,
        "/dev/null",
      ],
      { stdio: ["ignore", "pipe", "pipe"] },
    );
    let out = "";
    child.stdout.on("data", (c: Buffer) => (out += c.toString("utf8")));
    try {
      await eventually("the builder says it listens", () => out.includes("builder listening"));
      assert.match(out, /INFO.*builder listening/);
      assert.doesNotMatch(out, /"level":/, "not JSON");
    } finally {
      child.kill("SIGTERM");
      await new Promise((r) => child.once("exit", r));
    }
  });

  for (const signal of ["SIGTERM", "SIGINT"] as const) {
    test(`serve answers calls and stops cleanly on ${signal}`, async () => {
      const proc = await startBuilderProcess(makeBuilderDirs());
      assert.deepEqual(await proc.client.call("echo", "up"), ["up"]);
      assert.equal(await proc.kill(signal), 0);
      assert.match(proc.logText(), /"msg":"stopped"/);
      await assert.rejects(fetch(`${proc.url}/rpc`, { method: "POST" }));
    });
  }

  test("SIGTERM lets an in-flight call finish before the process exits", async () => {
    const lib = await startLibrarian();
    // Downloads, like builds, get [build] shutdown_grace to finish (the harness sets 0).
    const proc = await startBuilderProcess(makeBuilderDirs({ build: { shutdown_grace: 10 } }));
    try {
      const body = Buffer.from("slow but sure");
      const url = lib.add("/slow", body, { kind: "delay", ms: 1000 });
      const inFlight = proc.client.call("ensurepresent", sha1(body), url, "", "");
      await eventually("the download started", () => lib.requestCount("/slow") === 1);
      const exited = proc.kill("SIGTERM");
      assert.deepEqual(await inFlight, [true, "Download"]);
      assert.equal(await exited, 0);
    } finally {
      await proc.kill("SIGKILL");
      await lib.close();
    }
  });
});
