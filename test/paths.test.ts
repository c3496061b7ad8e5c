// No path the backends touch inside an unpacked tree may follow a link out of it: the
// in-tree resolver on temporary trees full of hostile links (no root needed), then the
// real server given chroot tarballs and workspaces whose links point at the host.
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { createHash } from "node:crypto";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { after, afterEach, before, beforeEach, describe, test } from "node:test";
import { startTestBuilder, type TestBuilder } from "../harness/builder.js";
import { chrootTestsUnavailable, makeSourcePackage } from "../harness/debian.js";
import { makeTarball, putInCache, waitForState } from "../harness/fixtures.js";
import { startLibrarian, type Librarian } from "../harness/librarian.js";
import { cleanBuilder, fetchBuildLog, runScriptBuild } from "../harness/scenario.js";
import { Tree, TreePathError } from "../src/backends/inroot.js";
import type { XmlRpcStruct } from "../src/rpc/codec.js";

const tmp = (prefix: string): string => fs.mkdtempSync(path.join(os.tmpdir(), prefix));

/** Everything under `dir`: kind, inode, mode, and content or link target, by path. */
function snapshot(dir: string): Record<string, string> {
  const out: Record<string, string> = {};
  const walk = (rel: string): void => {
    const full = path.join(dir, rel);
    const st = fs.lstatSync(full);
    let what = "dir";
    if (st.isSymbolicLink()) what = `link ${fs.readlinkSync(full)}`;
    else if (st.isFile())
      what = `file ${createHash("sha1").update(fs.readFileSync(full)).digest("hex")}`;
    out[rel || "."] = `${what} ino=${st.ino} mode=${st.mode.toString(8)}`;
    if (st.isDirectory()) for (const name of fs.readdirSync(full)) walk(path.join(rel, name));
  };
  walk("");
  return out;
}

function problemOf(fn: () => unknown): string {
  try {
    fn();
  } catch (err) {
    if (err instanceof TreePathError) return `${err.problem}: ${err.message}`;
    throw err;
  }
  return "no error";
}

describe("the in-tree resolver", () => {
  let root: string;
  let host: string;
  let hostBefore: Record<string, string>;

  beforeEach(() => {
    root = tmp("buildd-tree-");
    host = tmp("buildd-host-");
    fs.writeFileSync(path.join(host, "secret"), "the host's file\n");
    hostBefore = snapshot(host);
    fs.mkdirSync(path.join(root, "sub"));
    fs.writeFileSync(path.join(root, "sub/file"), "inside\n");
  });
  afterEach(() => {
    assert.deepEqual(snapshot(host), hostBefore, "nothing outside the tree changed");
    fs.rmSync(root, { recursive: true, force: true });
    fs.rmSync(host, { recursive: true, force: true });
  });
  const link = (target: string, name: string): void =>
    fs.symlinkSync(target, path.join(root, name));

  test("chroot: an absolute link restarts at the tree's root", () => {
    link(host, "etc");
    const chroot = new Tree(root, "chroot");
    assert.match(
      problemOf(() => chroot.resolve("/etc/secret")),
      /^missing: "\/etc\/secret": \/\S+ does not exist$/,
    );
    // A write lands inside the tree, at the path the link names there (made as needed).
    chroot.writeFile("/etc/secret", "written\n");
    assert.equal(chroot.resolve("/etc/secret").path, path.join(root, host, "secret"));
    assert.equal(fs.readFileSync(path.join(root, host, "secret"), "utf8"), "written\n");
  });

  test("chroot: a link to the host's own /etc is a loop inside the tree, and refused", () => {
    link("/etc", "etc");
    const chroot = new Tree(root, "chroot");
    for (const act of [
      () => chroot.resolve("/etc/resolv.conf"),
      () => chroot.mkdirp("/etc"),
      () => chroot.writeFile("/etc/resolv.conf", "x"),
      () => chroot.remove("/etc/resolv.conf"),
    ]) {
      assert.match(problemOf(act), /^loop: "\/etc(\/resolv\.conf)?": more than 40 symbolic links/);
    }
  });

  test('chroot: "..", in the path or in a relative link, stops at the root', () => {
    link("../../../../../..", "up");
    fs.mkdirSync(path.join(root, "etc"));
    fs.writeFileSync(path.join(root, "etc/passwd"), "the chroot's\n");
    const chroot = new Tree(root, "chroot");
    assert.equal(chroot.resolve("up/etc/passwd").path, path.join(root, "etc/passwd"));
    assert.equal(chroot.resolve("../../../etc/passwd").path, path.join(root, "etc/passwd"));
    assert.equal(chroot.readFile("/up/up/etc/passwd").toString(), "the chroot's\n");
  });

  test("a link in the middle of a path is followed inside the tree", () => {
    link("sub", "mid");
    fs.symlinkSync("../sub/file", path.join(root, "sub/again"));
    for (const kind of ["chroot", "beneath"] as const) {
      const tree = new Tree(root, kind);
      assert.equal(tree.regularFile("mid/file"), path.join(root, "sub/file"));
      assert.equal(tree.regularFile("mid/again"), path.join(root, "sub/file"));
    }
  });

  test("links that loop fail after 40 hops", () => {
    link("b", "a");
    link("a", "b");
    for (const kind of ["chroot", "beneath"] as const) {
      assert.match(
        problemOf(() => new Tree(root, kind).resolve("a/x")),
        /^loop: /,
      );
    }
  });

  test("beneath (the host workspace): absolute links and climbing '..' are refused", () => {
    link(host, "out");
    link(path.join(host, "secret"), "report.txt");
    link("../../../../../..", "up");
    const ws = new Tree(root, "beneath");
    assert.equal(
      problemOf(() => ws.regularFile("out/secret")),
      `escapes: "out/secret": out is a symbolic link to ${JSON.stringify(host)}, outside the workspace`,
    );
    assert.match(
      problemOf(() => ws.readFile("report.txt")),
      /^escapes: .*report\.txt is a symbolic/,
    );
    assert.match(
      problemOf(() => ws.resolve("up/etc/passwd")),
      /^escapes: .*leads out of the workspace/,
    );
    assert.match(
      problemOf(() => ws.resolve("../x")),
      /^escapes: /,
    );
    assert.match(
      problemOf(() => ws.resolve("/etc/passwd")),
      /^escapes: .*is an absolute path/,
    );
    assert.match(
      problemOf(() => ws.writeFile("out/new", "x")),
      /^escapes: /,
    );
  });

  test("a final link is replaced itself, never its target", async () => {
    link(path.join(host, "secret"), "f");
    link(path.join(host, "secret"), "g");
    link(path.join(host, "secret"), "h");
    for (const kind of ["chroot", "beneath"] as const) {
      const tree = new Tree(root, kind);
      tree.writeFile("f", `new ${kind}\n`);
      assert.equal(fs.readFileSync(path.join(root, "f"), "utf8"), `new ${kind}\n`);
      assert.ok(fs.lstatSync(path.join(root, "f")).isFile());
    }
    const ws = new Tree(root, "beneath");
    await ws.copyIn(path.join(root, "sub/file"), "g");
    assert.equal(fs.readFileSync(path.join(root, "g"), "utf8"), "inside\n");
    ws.remove("h");
    assert.equal(fs.existsSync(path.join(root, "h")), false);
    ws.remove("no-such-file");
    ws.remove("no-such-dir/file");
  });

  test("replacing a hard-linked file leaves its other name alone", () => {
    fs.linkSync(path.join(root, "sub/file"), path.join(root, "hard"));
    new Tree(root, "chroot").writeFile("hard", "replaced\n");
    assert.equal(fs.readFileSync(path.join(root, "sub/file"), "utf8"), "inside\n");
  });

  test("results must be regular files", () => {
    link("sub", "dirlink");
    execFileSync("mkfifo", [path.join(root, "fifo")]);
    const tree = new Tree(root, "chroot");
    assert.match(
      problemOf(() => tree.regularFile("dirlink")),
      /is a directory/,
    );
    assert.match(
      problemOf(() => tree.readFile("fifo")),
      /is a named pipe/,
    );
    assert.match(
      problemOf(() => tree.regularFile("nothing")),
      /^missing: /,
    );
    assert.match(
      problemOf(() => tree.regularFile("sub/file/x")),
      /^not-a-directory: /,
    );
  });

  test("mkdirp creates missing directories inside the tree, through in-tree links", () => {
    link("/made/here", "dangling");
    const chroot = new Tree(root, "chroot");
    assert.equal(chroot.mkdirp("/dangling/deeper"), path.join(root, "made/here/deeper"));
    assert.ok(fs.statSync(path.join(root, "made/here/deeper")).isDirectory());
  });

  test("the artifacts' walk never lists a directory through a link", async () => {
    link(host, "out");
    fs.symlinkSync(host, path.join(root, "sub/deeper"));
    fs.symlinkSync("file", path.join(root, "sub/alias"));
    for (const kind of ["chroot", "beneath"] as const) {
      const tree = new Tree(root, kind);
      assert.deepEqual(await tree.glob(".", ["out/*"]), []);
      assert.deepEqual(await tree.glob(".", ["out/secret"]), []);
      assert.deepEqual(await tree.glob(".", ["**/*"]), ["sub/file"]);
      assert.deepEqual(await tree.glob("sub", ["*"]), ["file"]);
      assert.deepEqual(await tree.glob("sub", ["deeper/**"]), []);
    }
  });
});

const unavailable = chrootTestsUnavailable();
if (unavailable) console.log(`# hostile chroot tarball tests skipped: ${unavailable}`);
const ARGS = { series: "bookworm", suite: "bookworm", ogrecomponent: "main", arch_tag: "amd64" };

/** A tar of a tree holding just these symlinks (name → target) and empty directories. */
function linkTarball(links: Record<string, string>, dirs: readonly string[] = []): Buffer {
  const dir = tmp("buildd-hostile-");
  try {
    for (const d of dirs) fs.mkdirSync(path.join(dir, d), { recursive: true });
    for (const [name, target] of Object.entries(links))
      fs.symlinkSync(target, path.join(dir, name));
    return execFileSync("tar", ["-cf", "-", "-C", dir, "."]);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

describe("chroot tarballs whose links point at the host", { skip: unavailable ?? false }, () => {
  let b: TestBuilder;
  let lib: Librarian;
  let filemap: XmlRpcStruct;
  let host: string;
  let hostBefore: Record<string, string>;
  const resolv = "/etc/resolv.conf";
  let resolvBefore: string;

  /** /etc/resolv.conf as it is now: the entry itself and what it leads to. */
  const resolvState = (): string =>
    fs.existsSync(resolv)
      ? `${fs.lstatSync(resolv).ino} ${fs.statSync(resolv).ino} ${fs.readFileSync(resolv, "hex")}`
      : "missing";

  before(async () => {
    b = await startTestBuilder({ build: { kill_grace: 1, abort_timeout: 10 } });
    lib = await startLibrarian();
    const pkg = await makeSourcePackage({ name: "buildd-hostile" });
    filemap = {};
    for (const [name, file] of Object.entries(pkg.files))
      filemap[name] = await putInCache(b.client, lib, fs.readFileSync(file), `pkg/${name}`);
  });
  after(async () => {
    await b?.stop();
    await lib?.close();
  });
  beforeEach(() => {
    host = tmp("buildd-host-dir-");
    fs.writeFileSync(path.join(host, "resolv.conf"), "nameserver 192.0.2.1 # the test's own\n");
    hostBefore = snapshot(host);
    resolvBefore = resolvState();
  });
  afterEach(() => {
    fs.rmSync(host, { recursive: true, force: true });
  });

  async function build(
    id: string,
    type: "binarypackage" | "script",
    tarball: Buffer,
  ): Promise<{ status: XmlRpcStruct; log: string }> {
    const chroot = await putInCache(b.client, lib, tarball, `${id}.tar`);
    const args =
      type === "binarypackage"
        ? ARGS
        : { image_type: "chroot", steps: [{ name: "x", run: "true" }], artifacts: ["*"] };
    assert.deepEqual(
      await b.client.call("build", id, type, chroot, type === "binarypackage" ? filemap : {}, args),
      ["BuilderStatus.BUILDING", id],
    );
    const status = await waitForState(b.client, "WAITING", 60_000);
    const log = await fetchBuildLog(b.url);
    await cleanBuilder(b.client);
    assert.deepEqual(snapshot(host), hostBefore, `nothing outside the build changed:\n${log}`);
    assert.equal(resolvState(), resolvBefore, "the host's /etc/resolv.conf is untouched");
    return { status, log };
  }

  test("./etc -> a host directory: resolv.conf goes into the chroot, not there", async () => {
    for (const type of ["binarypackage", "script"] as const) {
      const { status, log } = await build(`ETC-HOSTDIR-${type}`, type, linkTarball({ etc: host }));
      // resolv.conf was placed; then the tiny tree, having no shell, cannot run a step.
      assert.equal(status["build_status"], "BuildStatus.CHROOTFAIL", log);
      assert.match(log, /mounting \/proc, \/sys and \/dev in the chroot failed/);
    }
  });

  test("./etc -> /etc: refused as a loop, the host's /etc/resolv.conf untouched", async () => {
    const { status, log } = await build("ETC-ETC", "binarypackage", linkTarball({ etc: "/etc" }));
    assert.equal(status["build_status"], "BuildStatus.CHROOTFAIL");
    assert.match(log, /"\/etc": more than 40 symbolic links on the way/);
  });

  test("./build -> a host path: no directory is made on the host", async () => {
    const made = path.join(host, "made-by-the-build");
    const { status } = await build("BUILD-HOST", "script", linkTarball({ build: made }));
    assert.equal(status["build_status"], "BuildStatus.CHROOTFAIL");
    assert.equal(fs.existsSync(made), false);
  });

  test("./proc -> a host directory: refused before anything is mounted there", async () => {
    const { status, log } = await build("PROC-HOST", "binarypackage", linkTarball({ proc: host }));
    assert.equal(status["build_status"], "BuildStatus.CHROOTFAIL");
    assert.match(log, /the chroot's \/proc is a symbolic link; it must be a directory/);
  });

  test("a Launchpad-style chroot-autobuild that links to / is not taken as the root", async () => {
    const { status, log } = await build(
      "AUTOBUILD-ROOT",
      "binarypackage",
      linkTarball({ "chroot-autobuild": "/" }),
    );
    assert.equal(status["build_status"], "BuildStatus.CHROOTFAIL");
    assert.match(log, /RUN: chroot \S+\/chroot true\n/, "the unpacked folder is the root");
    assert.doesNotMatch(log, /RUN: chroot .* apt-get/, "nothing ran with the host as the chroot");
  });
});

describe("a host workspace whose links point at the host", () => {
  let b: TestBuilder;
  let lib: Librarian;
  let host: string;

  before(async () => {
    b = await startTestBuilder({ build: { kill_grace: 1, abort_timeout: 10 } });
    lib = await startLibrarian();
    host = tmp("buildd-host-dir-");
    fs.writeFileSync(path.join(host, `secret-${process.pid}`), `secret ${process.pid}\n`);
    // Only a listing of the host directory would show this name.
    fs.writeFileSync(path.join(host, `listed-only-${process.pid}`), "");
  });
  after(async () => {
    await b?.stop();
    await lib?.close();
    fs.rmSync(host, { recursive: true, force: true });
  });

  async function buildWithLinks(id: string, artifacts: string[]) {
    const tree = await putInCache(b.client, lib, makeTarball({ "real.txt": "made here\n" }));
    const run = [
      `ln -s ${host} out`,
      `ln -s ${host}/secret-${process.pid} report.txt`,
      "ln -s /etc etc",
      "ln -s ../../../../../../../.. up",
      "ln -s real.txt latest.txt",
    ].join(" && ");
    const args = { steps: [{ name: "links", run }], artifacts };
    const s = await runScriptBuild(b.client, id, tree, args);
    const log = await fetchBuildLog(b.url);
    assert.equal(s["build_status"], "BuildStatus.OK", log);
    // The walk never entered out/, so the host's file names are not even in the log.
    assert.doesNotMatch(log, /listed-only/);
    const cached = fs.readdirSync(b.filecache);
    for (const outside of [path.join(host, `secret-${process.pid}`), "/etc/passwd"]) {
      const sum = createHash("sha1").update(fs.readFileSync(outside)).digest("hex");
      assert.ok(!cached.includes(sum), `${outside} was not read into the cache`);
    }
    await cleanBuilder(b.client);
    return { results: s["filemap"] as Record<string, string>, log };
  }

  test("artifacts: links out are not collected, and the log says why", async () => {
    const artifacts = ["out/*", "report.txt", "etc/passwd", "up/etc/passwd", "latest.txt", "*.txt"];
    const { results, log } = await buildWithLinks("WS-LINKS", artifacts);
    assert.match(log, /artifact report\.txt not collected: .* is a symbolic link to .*outside/);
    assert.match(log, /artifact etc\/passwd not collected: .*etc is a symbolic link to "\/etc"/);
    assert.match(log, /artifact up\/etc\/passwd not collected: .*leads out of the workspace/);
    assert.deepEqual(Object.keys(results).sort(), ["latest.txt", "real.txt"]);
    assert.equal(results["latest.txt"], results["real.txt"], "an in-tree link is followed");
  });

  test("artifacts: a glob whose fixed part is a link does not walk the host", async () => {
    const { results } = await buildWithLinks("WS-WALK", ["out/*"]);
    assert.deepEqual(results, {});
  });
});
