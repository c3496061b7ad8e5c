// No secret string anywhere: after a build that uses every kind of secret this builder
// has — the RPC password (secrets file), a capability's password (secrets file), a
// build's declared secrets (also written literally in a step's command line), URL
// credentials and ensurepresent's username/password — none of them appears in the
// builder's own log, any page or API answer, any XML-RPC answer, or any file under the
// state directory and the file cache (the SQLite WAL included).
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { after, before, describe, test } from "node:test";
import { makeBuilderDirs, startBuilderProcess, type BuilderProcess } from "../harness/builder.js";
import { basicHeader, createClient, type RpcClient } from "../harness/client.js";
import { eventually, makeTarball, sha1, waitForState } from "../harness/fixtures.js";
import { suiteLibrarian } from "../harness/suite.js";

const SECRETS = {
  rpcPassword: "leak-rpc-pw-5e1",
  capabilityPassword: "leak-pg-pw-9c2",
  buildSecret: "leak-build-secret-77a",
  urlPassword: "leak-url-pw-3b4",
  librarianPassword: "leak-lib-pw-6d8",
};
const CREDENTIALS = { username: "buildd", password: SECRETS.rpcPassword };

function filesUnder(dir: string): string[] {
  const out: string[] = [];
  for (const entry of fs.readdirSync(dir, { withFileTypes: true })) {
    const full = path.join(dir, entry.name);
    if (entry.isDirectory()) out.push(...filesUnder(full));
    else if (entry.isFile()) out.push(full);
  }
  return out;
}

describe("no secret leaks", () => {
  const lib = suiteLibrarian();
  let p: BuilderProcess;
  let client: RpcClient;

  before(async () => {
    const dirs = makeBuilderDirs({ auth: { password: SECRETS.rpcPassword } }, undefined, {
      capabilities: [
        `postgresql 15 host=/nonexistent port=5999 user=buildd password=${SECRETS.capabilityPassword}`,
      ],
    });
    p = await startBuilderProcess(dirs);
    client = createClient(p.url, CREDENTIALS);
    // The web surface loads a moment after the builder listens: the pages must be up.
    await eventually("the web surface is up", async () => (await fetch(`${p.url}/healthz`)).ok);
  });
  after(async () => {
    await p?.kill("SIGTERM");
  });

  test("after a build using every kind of secret, none is in any answer, log or file", async () => {
    const tree = makeTarball({ "t.txt": "tree\n" });
    const guarded = lib().add("/guarded", tree, {
      kind: "auth",
      username: "",
      password: SECRETS.librarianPassword,
    });
    assert.deepEqual(
      await client.call("ensurepresent", sha1(tree), guarded, "", SECRETS.librarianPassword),
      [true, "Download"],
    );
    // A URL with a password in it, which fails (the builder logs it).
    const other = Buffer.from("other");
    const withUrlPassword = lib()
      .add("/missing-here", other, { kind: "status", code: 404 })
      .replace("http://", `http://user:${SECRETS.urlPassword}@`);
    const [present] = (await client.call(
      "ensurepresent",
      sha1(other),
      withUrlPassword,
      null,
      null,
    )) as [boolean];
    assert.equal(present, false);
    await client.call(
      "build",
      "LEAK-1",
      "script",
      sha1(tree),
      {},
      {
        steps: [
          {
            name: "use",
            run: `echo "token=$TOKEN"; test "$TOKEN" = ${SECRETS.buildSecret} && echo same; echo http://u:${SECRETS.urlPassword}@example.org/; echo out > out.txt`,
          },
        ],
        secrets: { TOKEN: SECRETS.buildSecret },
        environment: { MIRROR: `http://m:${SECRETS.urlPassword}@mirror.example/` },
        artifacts: ["out.txt"],
      },
    );
    const final = await waitForState(client, "WAITING");
    assert.equal(final["build_status"], "BuildStatus.OK");

    const seen: Record<string, string> = {};
    const auth = { authorization: basicHeader(CREDENTIALS) };
    for (const page of [
      "/",
      "/api/v1/status",
      "/api/v1/builds",
      "/api/v1/builds/1",
      "/api/v1/builds/1/log",
      "/api/v1/downloads",
      "/api/v1/cache",
      "/api/v1/capabilities",
      "/metrics",
      "/readyz",
      "/healthz",
      "/filecache/buildlog",
    ]) {
      const res = await fetch(`${p.url}${page}`, { headers: auth });
      seen[page] = await res.text();
    }
    seen["status()"] = JSON.stringify(final);
    seen["capabilities()"] = JSON.stringify(await client.call("capabilities"));
    assert.equal(await client.call("clean"), "BuilderStatus.IDLE");
    seen["builder's log"] = p.logText();
    for (const file of [...filesUnder(p.statedir), ...filesUnder(p.filecache)]) {
      seen[path.relative(p.dir, file)] = fs.readFileSync(file).toString("latin1");
    }
    assert.ok(
      Object.keys(seen).some((k) => k.endsWith("buildd.sqlite-wal") || k.endsWith("buildd.sqlite")),
    );
    for (const [where, text] of Object.entries(seen)) {
      for (const [kind, secret] of Object.entries(SECRETS)) {
        assert.ok(!text.includes(secret), `${kind} appears in ${where}`);
      }
    }
    // The checks saw something: the build's pages, and its log's (scrubbed) output.
    assert.match(seen["/api/v1/builds/1"] ?? "", /LEAK-1/);
    assert.match(seen["/"] ?? "", /LEAK-1/);
    assert.match(seen["/filecache/buildlog"] ?? "", /token=\*\*\*\*\*\*\*\*/);
  });
});
