// The pure parts of Debian builds: .changes files, apt's complaints, tar member checks.
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { checkMember } from "../src/backends/unpack.js";
import {
  field,
  filesOfChanges,
  isTransientArchiveFailure,
  stripQualifiers,
  unmetDependencies,
} from "../src/buildtypes/debian.js";

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
