// The pure parts of Debian builds: .changes and .dsc files, apt's complaints, tar member
// checks; then a binarypackage build() whose filemap lacks a file its .dsc lists, refused
// through the real server (no root needed: the refusal comes before any chroot).
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import Database from "better-sqlite3";
import { after, before, describe, test } from "node:test";
import { startTestBuilder, type TestBuilder } from "../harness/builder.js";
import { RpcFault } from "../harness/client.js";
import { makeSourcePackage, type SourcePackage } from "../harness/debian.js";
import { putInCache, status, waitForState } from "../harness/fixtures.js";
import { startLibrarian, type Librarian } from "../harness/librarian.js";
import { checkMember } from "../src/backends/unpack.js";
import {
  field,
  filesOfChanges,
  isTransientArchiveFailure,
  parseDsc,
  stripQualifiers,
  unmetDependencies,
} from "../src/buildtypes/debian.js";
import type { XmlRpcStruct } from "../src/rpc/codec.js";

const CHANGES = `Format: 1.8
Date: Sat, 21 Nov 2026 12:00:00 +0000
Source: hello
Binary: hello
Architecture: amd64
Version: 1:2.10-3
Checksums-Sha1:
 1111111111111111111111111111111111111111 1000 hello_2.10-3_amd64.deb
Files:
 0123456789abcdef0123456789abcdef 1000 misc optional hello_2.10-3_amd64.deb
 0123456789abcdef0123456789abcdef 2000 misc optional hello-dbgsym_2.10-3_amd64.ddeb
 0123456789abcdef0123456789abcdef 500 misc optional hello_2.10-3_amd64.buildinfo
`;

describe("Debian files", () => {
  test("the Files: section of a .changes", () => {
    assert.deepEqual(filesOfChanges(CHANGES), [
      "hello_2.10-3_amd64.deb",
      "hello-dbgsym_2.10-3_amd64.ddeb",
      "hello_2.10-3_amd64.buildinfo",
    ]);
    assert.equal(field(CHANGES, "Version"), "1:2.10-3");
    assert.equal(field(CHANGES, "Source"), "hello");
  });

  test("architecture qualifiers and restrictions are removed from dependencies", () => {
    assert.equal(stripQualifiers("ebadver:any (>= 3.0)"), "ebadver (>= 3.0)");
    assert.equal(
      stripQualifiers("libfoo-dev:amd64 (>= 1.2) [amd64] <!nocheck>"),
      "libfoo-dev (>= 1.2)",
    );
  });

  test("unmet build dependencies from apt's output", () => {
    const apt = `The following packages have unmet dependencies:
 builddeps:/build/foo_1.0.dsc : Depends: libfoo-dev:any (>= 1.2) but it is not installable
                                Depends: bar (>= 2) but 1.0-1 is to be installed
E: Unable to correct problems, you have held broken packages.`;
    assert.equal(unmetDependencies(apt), "libfoo-dev (>= 1.2), bar (>= 2)");
    assert.equal(
      unmetDependencies("E: Sub-process /usr/bin/dpkg returned an error code (1)"),
      null,
    );
  });

  test("transient archive failures", () => {
    assert.ok(
      isTransientArchiveFailure("E: Failed to fetch http://deb.debian.org/x.deb  404  Not Found"),
    );
    assert.ok(isTransientArchiveFailure("W: Temporary failure resolving 'deb.debian.org'"));
    assert.ok(
      !isTransientArchiveFailure("E: Unable to correct problems, you have held broken packages."),
    );
  });
});

// A clearsigned 3.0 (quilt) .dsc as the archive publishes them (signature shortened).
const DSC = `-----BEGIN PGP SIGNED MESSAGE-----
Hash: SHA256

Format: 3.0 (quilt)
Source: hello
Binary: hello
Version: 2.10-3
Checksums-Sha256:
 aaaa 725946 hello_2.10.orig.tar.gz
 bbbb 833 hello_2.10.orig.tar.gz.asc
 cccc 12688 hello_2.10-3.debian.tar.xz
Files:
 0123 725946 hello_2.10.orig.tar.gz
 4567 833 hello_2.10.orig.tar.gz.asc
 89ab 12688 hello_2.10-3.debian.tar.xz

-----BEGIN PGP SIGNATURE-----

iQIzBAEBCAAdFiEE
-----END PGP SIGNATURE-----
`;

describe(".dsc files", () => {
  test("the files of a clearsigned .dsc, from Files and Checksums-Sha256", () => {
    assert.deepEqual(parseDsc(DSC), {
      source: "hello",
      files: ["hello_2.10.orig.tar.gz", "hello_2.10.orig.tar.gz.asc", "hello_2.10-3.debian.tar.xz"],
    });
    // A file only Checksums-Sha256 names is still one the build needs.
    const extra = DSC.replace(" cccc", " dddd 9 hello_2.10.extra.tar.xz\n cccc");
    assert.ok(parseDsc(extra).files.includes("hello_2.10.extra.tar.xz"));
    // CRLF line endings, as a .dsc edited on another system may have.
    assert.equal(parseDsc(DSC.replace(/\n/g, "\r\n")).files.length, 3);
  });

  test("what is not a .dsc is refused, saying why", () => {
    assert.throws(() => parseDsc("\u0089PNG\r\n"), /no Format field/);
    assert.throws(() => parseDsc("Format: 1.0\nFiles:\n 0 1 x.tar.gz\n"), /no Source field/);
    assert.throws(() => parseDsc("Format: 1.0\nSource: x\n"), /lists no files/);
    assert.throws(
      () => parseDsc("Format: 1.0\nSource: x\nFiles:\n 0 1 ../../etc/passwd\n"),
      /lists "..\/..\/etc\/passwd", which is not a file name/,
    );
  });
});

describe("a binarypackage filemap is checked against its .dsc", () => {
  let b: TestBuilder;
  let lib: Librarian;
  let pkg: SourcePackage;
  let chroot: string;
  const args = { series: "bookworm", suite: "bookworm", ogrecomponent: "main" };

  before(async () => {
    b = await startTestBuilder();
    lib = await startLibrarian();
    // A real source package made by dpkg-source: its .dsc and its tarball.
    pkg = await makeSourcePackage({ name: "buildd-partial" });
    // Refused before any chroot is unpacked: what the chroot holds does not matter.
    chroot = await putInCache(b.client, lib, Buffer.from("not a chroot"), "chroot.tar");
  });
  after(async () => {
    await b.stop();
    await lib.close();
    fs.rmSync(path.dirname(pkg.files[pkg.dsc]!), { recursive: true, force: true });
  });

  const upload = (name: string): Promise<string> =>
    putInCache(b.client, lib, fs.readFileSync(pkg.files[name]!), `pkg/${name}`);

  const buildRows = (): number => {
    const db = new Database(path.join(b.statedir, "buildd.sqlite"), { readonly: true });
    try {
      return (db.prepare("SELECT COUNT(*) AS n FROM builds").get() as { n: number }).n;
    } finally {
      db.close();
    }
  };

  async function expectRefusal(filemap: XmlRpcStruct, message: RegExp): Promise<void> {
    const rows = buildRows();
    await assert.rejects(
      b.client.call("build", "PARTIAL", "binarypackage", chroot, filemap, args),
      (e) => {
        assert.ok(e instanceof RpcFault, String(e));
        assert.equal(e.faultCode, 8002);
        assert.match(e.faultString, message);
        return true;
      },
    );
    assert.equal((await status(b.client))["builder_status"], "BuilderStatus.IDLE");
    assert.equal(buildRows(), rows, "no build was journaled");
  }

  test("a filemap without the tarball the .dsc lists is refused, naming it", async () => {
    const tarballs = Object.keys(pkg.files).filter((n) => n !== pkg.dsc);
    assert.deepEqual(tarballs, ["buildd-partial_1.0.tar.xz"], "what dpkg-source made");
    await expectRefusal(
      { [pkg.dsc]: await upload(pkg.dsc) },
      /^binarypackage build: buildd-partial_1\.0\.dsc lists "buildd-partial_1\.0\.tar\.xz", which the filemap lacks; ensurepresent every file/,
    );
  });

  test("a .dsc that does not parse is refused, saying why", async () => {
    const bogus = await putInCache(b.client, lib, Buffer.from("just some text\n"), "bogus.dsc");
    await expectRefusal(
      { "bogus_1.0.dsc": bogus },
      /^binarypackage build: bogus_1\.0\.dsc is not a valid source package description: it has no Format field/,
    );
  });

  test("with every file the .dsc lists, build() accepts it", async () => {
    const filemap: XmlRpcStruct = {};
    for (const name of Object.keys(pkg.files)) filemap[name] = await upload(name);
    assert.deepEqual(
      await b.client.call("build", "COMPLETE", "binarypackage", chroot, filemap, args),
      ["BuilderStatus.BUILDING", "COMPLETE"],
    );
    // The chroot is not one, so the build fails later; that is not what is tested here.
    await waitForState(b.client, "WAITING", 120_000);
    assert.equal(await b.client.call("clean"), "BuilderStatus.IDLE");
  });
});

describe("tar member checks", () => {
  const line = (rest: string) => `-rw-r--r-- 0/0             3 2026-11-21 19:59 ${rest}`;
  test("ordinary members, absolute symlinks and device nodes pass", () => {
    assert.equal(checkMember(line("./etc/passwd")), null);
    assert.equal(
      checkMember("lrwxrwxrwx 0/0               0 2026-11-21 19:55 ./dev/fd -> /proc/self/fd"),
      null,
    );
    assert.equal(
      checkMember("crw-rw-rw- 0/0             5,1 2026-11-21 19:55 ./dev/console"),
      null,
    );
    assert.equal(checkMember("lrwxrwxrwx 0/0 0 2026-11-21 19:55 ./usr/lib/x -> ../share/y"), null);
    assert.equal(checkMember("hrw-r--r-- 0/0 0 2026-11-21 19:55 ./a/hard link to ./a/b"), null);
  });
  test("absolute paths, .. and links leading out are refused", () => {
    assert.match(checkMember(line("/abs.txt"))!, /absolute path/);
    assert.match(checkMember(line("./a/../../x"))!, /contains "\.\."/);
    assert.match(
      checkMember("lrwxrwxrwx 0/0 0 2026-11-21 19:55 ./a/b -> ../../../x")!,
      /symlink .* points outside/,
    );
    assert.match(
      checkMember("hrw-r--r-- 0/0 0 2026-11-21 19:55 ./a link to /etc/shadow")!,
      /hard link .* points outside/,
    );
  });
});
