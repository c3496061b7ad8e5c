// Real Debian package builds in a bookworm chroot made by mmdebstrap, through the real
// server and a real librarian. Needs root (CI runs as root); skipped otherwise, saying why.
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { after, before, describe, test } from "node:test";
import {
  makeBuilderDirs,
  startBuilderProcess,
  startTestBuilder,
  type TestBuilder,
} from "../harness/builder.js";
import type { RpcClient } from "../harness/client.js";
import {
  bookwormChroot,
  chrootTestsUnavailable,
  makeAptRepo,
  makeSourcePackage,
  mountsUnder,
  processesRootedUnder,
  type PackageRecipe,
} from "../harness/debian.js";
import {
  eventually,
  fetchText,
  pidsWithMarker,
  putInCache,
  sha1,
  waitForState,
} from "../harness/fixtures.js";
import { startLibrarian, type Librarian } from "../harness/librarian.js";
import type { XmlRpcStruct } from "../src/rpc/codec.js";

const unavailable = chrootTestsUnavailable();
if (unavailable) console.log(`# chroot tests skipped: ${unavailable}`);
const ARGS = { series: "bookworm", suite: "bookworm", ogrecomponent: "main", arch_tag: "amd64" };

describe("binarypackage builds in a chroot", { skip: unavailable ?? false }, () => {
  let b: TestBuilder;
  let lib: Librarian;
  let chrootTarball: string;
  let chrootSha1: string;

  before(async () => {
    b = await startTestBuilder({ build: { kill_grace: 2, abort_timeout: 30 } });
    lib = await startLibrarian();
    chrootTarball = await bookwormChroot();
    chrootSha1 = await putInCache(b.client, lib, fs.readFileSync(chrootTarball), "chroot.tar.zst");
  });
  after(async () => {
    await b?.stop();
    await lib?.close();
  });

  async function upload(client: RpcClient, recipe: PackageRecipe): Promise<Record<string, string>> {
    const pkg = await makeSourcePackage(recipe);
    const filemap: Record<string, string> = {};
    for (const [name, file] of Object.entries(pkg.files)) {
      filemap[name] = await putInCache(
        client,
        lib,
        fs.readFileSync(file),
        `${recipe.name}/${name}`,
      );
    }
    return filemap;
  }

  const buildsDir = (): string => path.join(b.statedir, "builds");

  function assertNothingLeft(): void {
    assert.deepEqual(mountsUnder(b.statedir), [], "no mount of the build remains");
    assert.deepEqual(processesRootedUnder(b.statedir), [], "no process of the build remains");
  }

  test("a tiny package builds: .changes and every file it lists, served by SHA-1", async () => {
    const filemap = await upload(b.client, { name: "buildd-hello" });
    assert.deepEqual(
      await b.client.call("build", "PKG-ok", "binarypackage", chrootSha1, filemap, ARGS),
      ["BuilderStatus.BUILDING", "PKG-ok"],
    );
    const s = await waitForState(b.client, "WAITING", 300_000);
    const log = await fetchText(`${b.url}/filecache/buildlog`);
    assert.equal(s["build_status"], "BuildStatus.OK", log.slice(-3000));
    const results = s["filemap"] as Record<string, string>;
    assert.deepEqual(Object.keys(results).sort(), [
      "buildd-hello_1.0_amd64.buildinfo",
      "buildd-hello_1.0_amd64.changes",
      "buildd-hello_1.0_amd64.deb",
    ]);
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "buildd-results-"));
    for (const [name, sum] of Object.entries(results)) {
      const bytes = Buffer.from(await (await fetch(`${b.url}/filecache/${sum}`)).arrayBuffer());
      assert.equal(sha1(bytes), sum, `${name} served with the bytes its SHA-1 names`);
      fs.writeFileSync(path.join(dir, name), bytes);
    }
    const changes = fs.readFileSync(path.join(dir, "buildd-hello_1.0_amd64.changes"), "utf8");
    assert.match(changes, /^Files:\n(.+\n)*.* buildd-hello_1\.0_amd64\.deb$/m);
    assert.match(changes, /^ .* buildd-hello_1\.0_amd64\.buildinfo$/m);
    const contents = execFileSync(
      "dpkg-deb",
      ["-c", path.join(dir, "buildd-hello_1.0_amd64.deb")],
      { encoding: "utf8" },
    );
    assert.match(contents, /\.\/usr\/bin\/buildd-hello$/m);
    assert.match(log, /RUN: chroot .* apt-get .* update/);
    assert.match(log, /RUN: chroot .* dpkg-buildpackage -us -uc -B/);
    assert.equal(await b.client.call("clean"), "BuilderStatus.IDLE");
    assertNothingLeft();
    assert.deepEqual(fs.readdirSync(buildsDir()), [], "the build directory is removed");
  });

  test("a script build with image_type chroot runs its steps inside the chroot", async () => {
    await b.client.call(
      "build",
      "SCRIPT-in-chroot",
      "script",
      chrootSha1,
      {},
      {
        image_type: "chroot",
        steps: [
          { name: "inspect", run: "cat /etc/debian_version > version.txt; pwd >> version.txt" },
        ],
        artifacts: ["version.txt"],
      },
    );
    const s = await waitForState(b.client, "WAITING", 120_000);
    assert.equal(
      s["build_status"],
      "BuildStatus.OK",
      await fetchText(`${b.url}/filecache/buildlog`),
    );
    const sum = (s["filemap"] as Record<string, string>)["version.txt"]!;
    assert.match(await fetchText(`${b.url}/filecache/${sum}`), /^12\.\d+\n\/build\n$/);
    await b.client.call("clean");
    assertNothingLeft();
  });

  test("a chroot script's artifacts: links are read as inside the chroot, never on the host", async () => {
    // The marker exists only in the chroot's /etc, so a host path would not find it.
    const run = [
      "echo only in the chroot > /etc/buildd-marker",
      "ln -s /etc/buildd-marker marker.txt",
      "ln -s /etc etc",
      "ln -s ../../../../.. up",
    ].join(" && ");
    await b.client.call(
      "build",
      "SCRIPT-chroot-links",
      "script",
      chrootSha1,
      {},
      {
        image_type: "chroot",
        steps: [{ name: "links", run }],
        artifacts: ["marker.txt", "etc/*", "up/etc/buildd-marker"],
      },
    );
    const s = await waitForState(b.client, "WAITING", 120_000);
    const log = await fetchText(`${b.url}/filecache/buildlog`);
    assert.equal(s["build_status"], "BuildStatus.OK", log);
    const results = s["filemap"] as Record<string, string>;
    // The absolute link and the climbing one both land on the chroot's own file; the glob
    // did not walk into the linked /etc.
    assert.deepEqual(Object.keys(results).sort(), ["marker.txt", "up/etc/buildd-marker"]);
    for (const sum of Object.values(results))
      assert.equal(await fetchText(`${b.url}/filecache/${sum}`), "only in the chroot\n");
    await b.client.call("clean");
    assertNothingLeft();
  });

  test("a step that turns /proc into a link: the next step refuses to mount there", async () => {
    const host = fs.mkdtempSync(path.join(os.tmpdir(), "buildd-proc-target-"));
    try {
      await b.client.call(
        "build",
        "SCRIPT-proc-link",
        "script",
        chrootSha1,
        {},
        {
          image_type: "chroot",
          steps: [
            { name: "replace", run: `umount /proc && rmdir /proc && ln -s ${host} /proc` },
            { name: "next", run: "true" },
          ],
        },
      );
      const s = await waitForState(b.client, "WAITING", 120_000);
      const log = await fetchText(`${b.url}/filecache/buildlog`);
      assert.equal(s["build_status"], "BuildStatus.PACKAGEFAIL", log);
      assert.match(log, /the chroot's \/proc is no longer a directory; refusing to mount there/);
      assert.match(log, /step "next" exited with status 1/);
      assert.deepEqual(fs.readdirSync(host), []);
      await b.client.call("clean");
      assertNothingLeft();
    } finally {
      fs.rmSync(host, { recursive: true, force: true });
    }
  });

  test("archives and trusted_keys: a build dependency only a signed private archive has", async () => {
    const repo = await makeAptRepo(
      (p, body) => lib.add(p, body),
      "private-archive",
      "buildd-test-dep",
    );
    const filemap = await upload(b.client, {
      name: "buildd-needs-private",
      buildDepends: "buildd-test-dep",
    });
    const args = { ...ARGS, archives: [repo.archive], trusted_keys: [repo.keyBase64] };
    await b.client.call("build", "PKG-private", "binarypackage", chrootSha1, filemap, args);
    const s = await waitForState(b.client, "WAITING", 300_000);
    const log = await fetchText(`${b.url}/filecache/buildlog`);
    assert.equal(s["build_status"], "BuildStatus.OK", log.slice(-3000));
    assert.ok(log.includes(repo.archive), "the sources step shows the replaced sources");
    assert.match(log, /Setting up buildd-test-dep \(1\.0\)/);
    await b.client.call("clean");

    // The same archive without its key: apt refuses it, the chroot cannot be set up.
    await b.client.call("build", "PKG-unsigned", "binarypackage", chrootSha1, filemap, {
      ...ARGS,
      archives: [repo.archive],
    });
    const u = await waitForState(b.client, "WAITING", 300_000);
    assert.equal(u["build_status"], "BuildStatus.CHROOTFAIL");
    assert.match(await fetchText(`${b.url}/filecache/buildlog`), /NO_PUBKEY|is not signed/);
    await b.client.call("clean");
    assertNothingLeft();
  });

  test("a package that fails to build is PACKAGEFAIL, with the log", async () => {
    const filemap = await upload(b.client, {
      name: "buildd-broken",
      buildCommands: ["echo 'compiling... error: this package is broken on purpose'", "false"],
    });
    await b.client.call("build", "PKG-fail", "binarypackage", chrootSha1, filemap, ARGS);
    const s = await waitForState(b.client, "WAITING", 300_000);
    assert.equal(s["build_status"], "BuildStatus.PACKAGEFAIL");
    assert.deepEqual(s["filemap"], {});
    assert.match(
      await fetchText(`${b.url}/filecache/buildlog`),
      /this package is broken on purpose/,
    );
    await b.client.call("clean");
    assertNothingLeft();
  });

  test("an unsatisfiable build dependency is DEPFAIL with the dependency named", async () => {
    const filemap = await upload(b.client, {
      name: "buildd-depwait",
      buildDepends: "buildd-no-such-package-dev (>= 1.2)",
    });
    await b.client.call("build", "PKG-dep", "binarypackage", chrootSha1, filemap, ARGS);
    const s = await waitForState(b.client, "WAITING", 300_000);
    assert.equal(
      s["build_status"],
      "BuildStatus.DEPFAIL",
      await fetchText(`${b.url}/filecache/buildlog`),
    );
    assert.equal(s["dependencies"], "buildd-no-such-package-dev (>= 1.2)");
    await b.client.call("clean");
    assertNothingLeft();
  });

  test("a corrupt chroot tarball is CHROOTFAIL", async () => {
    const corrupt = Buffer.concat([
      fs.readFileSync(chrootTarball).subarray(0, 100_000),
      Buffer.alloc(1000, 0x55),
    ]);
    const sum = await putInCache(b.client, lib, corrupt, "corrupt.tar.zst");
    const filemap = await upload(b.client, { name: "buildd-hello" });
    await b.client.call("build", "PKG-corrupt", "binarypackage", sum, filemap, ARGS);
    const s = await waitForState(b.client, "WAITING", 120_000);
    assert.equal(s["build_status"], "BuildStatus.CHROOTFAIL");
    await b.client.call("clean");
    assertNothingLeft();
  });

  test("a tarball with escaping members is CHROOTFAIL and writes nothing outside", async () => {
    const marker = `buildd-escape-${process.pid}`;
    const tarball = execFileSync("python3", [
      "-c",
      `import io, sys, tarfile
buf = io.BytesIO()
with tarfile.open(fileobj=buf, mode="w") as t:
    for name in ["./etc/", "./ok.txt", "../../../../tmp/${marker}-dotdot", "/tmp/${marker}-abs"]:
        info = tarfile.TarInfo(name)
        if name.endswith("/"):
            info.type = tarfile.DIRTYPE
            t.addfile(info)
        else:
            data = b"escaped"
            info.size = len(data)
            t.addfile(info, io.BytesIO(data))
    link = tarfile.TarInfo("./evil-link"); link.type = tarfile.SYMTYPE; link.linkname = "../../../../tmp"
    t.addfile(link)
sys.stdout.buffer.write(buf.getvalue())`,
    ]);
    const sum = await putInCache(b.client, lib, tarball, "escaping.tar");
    const filemap = await upload(b.client, { name: "buildd-hello" });
    await b.client.call("build", "PKG-escape", "binarypackage", sum, filemap, ARGS);
    const s = await waitForState(b.client, "WAITING", 120_000);
    assert.equal(s["build_status"], "BuildStatus.CHROOTFAIL");
    assert.match(
      await fetchText(`${b.url}/filecache/buildlog`),
      /refusing the chroot tarball|Member name contains/,
    );
    assert.ok(!fs.existsSync(`/tmp/${marker}-dotdot`) && !fs.existsSync(`/tmp/${marker}-abs`));
    await b.client.call("clean");
    assertNothingLeft();
  });

  test("abort during the package build kills a daemon it left running: ABORTED, nothing left", async () => {
    const marker = "4260.5";
    const filemap = await upload(b.client, {
      name: "buildd-daemon",
      buildCommands: [`setsid sh -c 'trap "" TERM; sleep ${marker}' &`, `sleep ${marker}`],
    });
    await b.client.call("build", "PKG-abort", "binarypackage", chrootSha1, filemap, ARGS);
    await eventually(
      "the daemon and the build are sleeping",
      () => pidsWithMarker(`sleep ${marker}`).length >= 2,
      300_000,
    );
    assert.ok(processesRootedUnder(b.statedir).length > 0, "the build runs inside the chroot");
    assert.equal(await b.client.call("abort"), "BuilderStatus.ABORTING");
    const s = await waitForState(b.client, "WAITING", 60_000);
    assert.equal(s["build_status"], "BuildStatus.ABORTED");
    assert.deepEqual(pidsWithMarker(marker), []);
    assertNothingLeft();
    await b.client.call("clean");
    assertNothingLeft();
  });
});

describe("a builder killed during a chroot build", { skip: unavailable ?? false }, () => {
  test("comes back BUILDERFAIL with mounts and processes cleaned up", async () => {
    const lib = await startLibrarian();
    const dirs = makeBuilderDirs();
    let p = await startBuilderProcess(dirs);
    try {
      const chroot = await putInCache(
        p.client,
        lib,
        fs.readFileSync(await bookwormChroot()),
        "chroot.tar.zst",
      );
      const pkg = await makeSourcePackage({
        name: "buildd-crash",
        buildCommands: ["sleep 4261.5"],
      });
      const filemap: XmlRpcStruct = {};
      for (const [name, file] of Object.entries(pkg.files)) {
        filemap[name] = await putInCache(p.client, lib, fs.readFileSync(file), `crash/${name}`);
      }
      await p.client.call("build", "PKG-crash", "binarypackage", chroot, filemap, ARGS);
      await eventually(
        "the package build runs",
        () => pidsWithMarker("sleep 4261.5").length > 0,
        300_000,
      );
      assert.equal(await p.kill("SIGKILL"), "SIGKILL");
      p = await startBuilderProcess(dirs);
      const s = await waitForState(p.client, "WAITING", 10_000);
      assert.equal(s["build_status"], "BuildStatus.BUILDERFAIL");
      assert.equal(s["build_id"], "PKG-crash");
      await eventually(
        "no process of the dead build",
        () => pidsWithMarker("4261.5").length === 0,
        10_000,
      );
      assert.deepEqual(mountsUnder(dirs.statedir), []);
      assert.deepEqual(processesRootedUnder(dirs.statedir), []);
      assert.deepEqual(fs.readdirSync(path.join(dirs.statedir, "builds")), [], "chroot removed");
      assert.equal(await p.client.call("clean"), "BuilderStatus.IDLE");
    } finally {
      await p.kill("SIGTERM");
      await lib.close();
      fs.rmSync(dirs.dir, { recursive: true, force: true });
    }
  });
});
