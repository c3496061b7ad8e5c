// Host `script` steps run unprivileged: as [build] user, in their own PID and mount
// namespaces with a private /tmp, the workspace the only tree they can write, and no way
// to the secrets file, the journal, the cache, the configuration or the builder itself —
// while the build's own work succeeds and its secrets still reach it.
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { after, before, describe, test } from "node:test";
import { makeBuilderDirs, startBuilderProcess, type BuilderProcess } from "../harness/builder.js";
import { runScriptBuild } from "../harness/scenario.js";
import { basicHeader, createClient, type RpcClient } from "../harness/client.js";
import { makeTarball, putInCache } from "../harness/fixtures.js";
import { suiteLibrarian } from "../harness/suite.js";
import { sandboxWrap, type HostSandbox } from "../src/backends/sandbox.js";

describe("unprivileged host steps", () => {
  const lib = suiteLibrarian();
  let p: BuilderProcess;
  let root: string;

  before(async () => {
    // Not under /tmp (which every step sees as its own empty tmpfs): the paths must be
    // hidden one by one, as on a real machine (/srv/buildd, /etc/buildd).
    fs.mkdirSync(".cache", { recursive: true });
    root = fs.mkdtempSync(path.join(path.resolve(".cache"), "sandbox-"));
    const dirs = makeBuilderDirs(
      {
        builder: { filecache: "cache" },
        auth: { password: "sandbox-rpc-pw-31" },
      },
      root,
    );
    p = await startBuilderProcess(dirs);
  });
  after(async () => {
    await p?.kill("SIGTERM");
    fs.rmSync(root, { recursive: true, force: true });
  });

  test("each reach outside the workspace fails; the build's own work succeeds", async () => {
    const client = authClient(p);
    const tree = await putInCache(client, lib(), makeTarball({ "src/in.txt": "input\n" }), "sbx");
    const secrets = path.join(root, "secrets.conf");
    const attempts: Record<string, string> = {
      "read the secrets file": `cat ${secrets}`,
      "read the configuration": `cat ${path.join(root, "buildd.conf")}`,
      "open the journal": `cat ${path.join(root, "var", "buildd.sqlite")}`,
      "write into the cache": `touch ${path.join(root, "cache", "planted")}`,
      "list the cache": `ls ${path.join(root, "cache")}`,
      "signal the builder": `kill -0 ${p.pid}`,
      "read PID 1's environment": "cat /proc/1/environ",
      "write outside the workspace": `touch ${path.join(root, "planted")}`,
      "be root": 'test "$(id -u)" = 0',
    };
    const probe = Object.entries(attempts)
      .map(
        ([what, cmd]) =>
          `if ${cmd} >/dev/null 2>&1; then echo "LEAK: ${what}"; else echo "denied: ${what}"; fi`,
      )
      .join("\n");
    const s = await runScriptBuild(client, "SBX-1", tree, {
      steps: [
        { name: "probe", run: probe },
        {
          name: "work",
          run: 'echo "$API_TOKEN" | wc -c > out.txt; cat src/in.txt >> out.txt; echo tmp > /tmp/t; cat /tmp/t >> out.txt; id -un >> out.txt',
        },
      ],
      artifacts: ["out.txt"],
      secrets: { API_TOKEN: "sandbox-token-58" },
    });
    const log = await fetchAuthed(`${p.url}/filecache/buildlog`);
    // Output lines (the RUN line above them names both words).
    for (const what of Object.keys(attempts))
      assert.match(log, new RegExp(`^denied: ${what}$`, "m"));
    assert.doesNotMatch(log, /^LEAK/m);
    assert.equal(s["build_status"], "BuildStatus.OK", log);
    assert.ok(!fs.existsSync(path.join(root, "cache", "planted")));
    assert.ok(!fs.existsSync(path.join(root, "planted")));
    assert.ok(!fs.existsSync("/tmp/t") || fs.readFileSync("/tmp/t", "utf8") !== "tmp\n");
    const sum = (s["filemap"] as Record<string, string>)["out.txt"]!;
    const out = await fetchAuthed(`${p.url}/filecache/${sum}`);
    assert.equal(out, "17\ninput\ntmp\nbuildd\n");
    assert.equal(await client.call("clean"), "BuilderStatus.IDLE");
  });
});

describe("unprivileged host steps, with the builder's state under /tmp", () => {
  const lib = suiteLibrarian();
  let p: BuilderProcess;
  let root: string;

  before(async () => {
    root = fs.mkdtempSync(path.join(os.tmpdir(), "buildd-sandbox-tmp-"));
    fs.chmodSync(root, 0o755);
    p = await startBuilderProcess(
      makeBuilderDirs({ auth: { password: "sandbox-rpc-pw-31" } }, root),
    );
  });
  after(async () => {
    await p?.kill("SIGTERM");
    fs.rmSync(root, { recursive: true, force: true });
  });

  test("a directory the build's environment names, holding the state, stays covered", async () => {
    // /tmp is private to a step, but a directory its environment names there is kept in
    // sight (a capability's socket directory). One that holds the state directory is not.
    const client = authClient(p);
    const tree = await putInCache(client, lib(), makeTarball({ "in.txt": "x\n" }), "sbx-tmp");
    const journal = path.join(p.statedir, "buildd.sqlite");
    assert.ok(fs.existsSync(journal));
    await runScriptBuild(client, "SBX-TMP", tree, {
      steps: [
        {
          name: "probe",
          run: `if cat ${journal} >/dev/null 2>&1; then echo LEAK; else echo denied; fi`,
        },
      ],
      environment: { NAMED_DIR: root },
    });
    const log = await fetchAuthed(`${p.url}/filecache/buildlog`);
    assert.match(log, /^denied$/m, log);
    assert.doesNotMatch(log, /^LEAK$/m);
    assert.equal(await client.call("clean"), "BuilderStatus.IDLE");
  });
});

const CREDENTIALS = { username: "buildd", password: "sandbox-rpc-pw-31" };

function authClient(p: BuilderProcess): RpcClient {
  return createClient(p.url, CREDENTIALS);
}

async function fetchAuthed(url: string): Promise<string> {
  const res = await fetch(url, { headers: { authorization: basicHeader(CREDENTIALS) } });
  assert.equal(res.status, 200, url);
  return res.text();
}

// The prologue itself, run by hand in a fresh mount namespace (as the runner does), for
// what the builds above do not reach: paths an fstab line must escape, and the check
// that every mount in the table was made before the step runs.
describe("the sandbox prologue", () => {
  let root: string;
  before(() => {
    fs.mkdirSync(".cache", { recursive: true });
    root = fs.mkdtempSync(path.join(path.resolve(".cache"), "prologue "));
  });
  after(() => fs.rmSync(root, { recursive: true, force: true }));

  function layout(): { sandbox: HostSandbox; ws: string; secret: string; privateDir: string } {
    const state = path.join(root, "state dir");
    const ws = path.join(state, "builds", "build\tone");
    fs.mkdirSync(ws, { recursive: true });
    fs.writeFileSync(path.join(ws, "mine.txt"), "mine\n");
    fs.writeFileSync(path.join(state, "journal"), "journal\n");
    const secret = path.join(root, "secret file\\n.conf");
    fs.writeFileSync(secret, "secret\n");
    const privateDir = path.join(root, "private cache");
    fs.mkdirSync(privateDir, { recursive: true });
    fs.writeFileSync(path.join(privateDir, "entry"), "cached\n");
    const sandbox: HostSandbox = {
      user: "nobody",
      gid: 65534,
      statedir: state,
      hidden: [secret, privateDir, path.join(root, "not there")],
    };
    return { sandbox, ws, secret, privateDir };
  }

  function run(argv: string[], script: string, cwd: string) {
    return spawnSync(
      "unshare",
      ["--mount", "--propagation", "private", "--", ...argv, "sh", "-c", script],
      { cwd, encoding: "utf8" },
    );
  }

  test("paths with blanks, tabs and backslashes are covered and bound back exactly", () => {
    const { sandbox, ws, secret, privateDir } = layout();
    const probe = [
      `cat mine.txt`,
      `if cat '${secret}' 2>/dev/null; then echo LEAK secret; else echo denied secret; fi`,
      `if ls '${privateDir}' 2>/dev/null | grep -q entry; then echo LEAK cache; else echo denied cache; fi`,
      `if cat '${path.join(sandbox.statedir, "journal")}' 2>/dev/null; then echo LEAK journal; else echo denied journal; fi`,
      `id -un`,
    ].join("\n");
    const r = run(sandboxWrap(sandbox, ws, []), probe, ws);
    assert.equal(r.status, 0, r.stderr);
    assert.equal(r.stdout, "mine\ndenied secret\ndenied cache\ndenied journal\nnobody\n", r.stderr);
  });

  test("a step does not run unless every mount of the table was made", () => {
    const { sandbox, ws } = layout();
    const argv = sandboxWrap(sandbox, ws, []);
    // The count the prologue checks mount(8)'s report against, one too many: as if
    // mount -a had skipped a line.
    const at = argv.indexOf("--") - 1;
    argv[at] = String(Number(argv[at]) + 1);
    const r = run(argv, "echo RAN", ws);
    assert.notEqual(r.status, 0);
    assert.doesNotMatch(r.stdout, /RAN/);
    assert.match(r.stderr, /buildd sandbox: \d+ of \d+ mounts made; not running the step/);
  });
});
