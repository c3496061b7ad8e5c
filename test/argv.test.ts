// The exact commands the backends, the binarypackage build type, the unpacker, probes and
// host set-up hand to the process runner, recorded by harness/recording-runner.ts: no
// root, no chroot, nothing runs. What those commands do when they really run is tested
// in test/chroot.test.ts, test/runner.test.ts and test/runner-isolation.test.ts.
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { after, describe, test } from "node:test";
import { RecordingRunner, type RecordedCommand } from "../harness/recording-runner.js";
import { ChrootBackend } from "../src/backends/chroot.js";
import { HostBackend } from "../src/backends/host.js";
import { startUnpack } from "../src/backends/unpack.js";
import { binaryPackageBuildType, type BinaryPackageArgs } from "../src/buildtypes/binarypackage.js";
import type { BuildContext } from "../src/buildtypes/buildtype.js";
import { probeCapability } from "../src/capabilities/probe.js";
import { defaultArchitecture } from "../src/host-setup.js";
import { BuildLog } from "../src/log/buildlog.js";
import { createScrubber } from "../src/log/scrub.js";
import { DEFAULT_PATH } from "../src/process/environment.js";
import { processRunner } from "../src/process/runner.js";

const dir = fs.mkdtempSync(path.join(os.tmpdir(), "buildd-argv-"));
after(() => fs.rmSync(dir, { recursive: true, force: true }));

let n = 0;
function fresh(): { workspace: string; log: BuildLog } {
  const workspace = path.join(dir, `ws-${++n}`);
  fs.mkdirSync(workspace);
  const log = BuildLog.create(path.join(dir, `log-${n}`), {
    maxBytes: 1 << 20,
    scrubber: createScrubber([]),
  });
  return { workspace, log };
}

/** A chroot tree as create() leaves it, made without tar (and without root). */
function fakeChroot(workspace: string): string {
  const root = path.join(workspace, "chroot");
  for (const d of ["proc", "sys", "dev", "build", "etc/apt/trusted.gpg.d"])
    fs.mkdirSync(path.join(root, d), { recursive: true });
  return root;
}

const CHROOT_ENV = [
  `PATH=${DEFAULT_PATH}`,
  "HOME=/build",
  "LANG=C.UTF-8",
  "DEBIAN_FRONTEND=noninteractive",
  "SHELL=/bin/sh",
];

/** The command as the chroot backend sees it: what follows the prologue and its root. */
function insideChroot(cmd: RecordedCommand, root: string): readonly string[] {
  const [sh, c, prologue, name, givenRoot, ...rest] = cmd.argv;
  assert.deepEqual([sh, c, name, givenRoot], ["sh", "-c", "buildd-chroot", root]);
  assert.match(prologue!, /^mount -t proc -o nosuid,nodev,noexec proc "\$root\/proc"$/m);
  assert.match(prologue!, /^mount -t devpts .* "\$root\/dev\/pts"$/m);
  assert.match(prologue!, /\nexec chroot "\$root" "\$@"\n$/);
  return rest;
}

describe("the chroot backend", () => {
  test("run(): prologue, then env -i with the chroot's environment, cd, the command", () => {
    const { workspace, log } = fresh();
    const root = fakeChroot(workspace);
    const runner = new RecordingRunner();
    const backend = new ChrootBackend(workspace, runner);
    backend.run(["make", "-j2", "all"], log, {
      env: { DEB_BUILD_OPTIONS: "nocheck", HOME: "/root" },
      cwd: "/build/src",
      noNetwork: true,
    });
    backend.run(["true"], log);
    const [step, plain] = runner.commands;
    assert.deepEqual(
      { ...step, argv: insideChroot(step!, root) },
      {
        kind: "start",
        argv: [
          "env",
          "-i",
          `PATH=${DEFAULT_PATH}`,
          "HOME=/root",
          "LANG=C.UTF-8",
          "DEBIAN_FRONTEND=noninteractive",
          "SHELL=/bin/sh",
          "DEB_BUILD_OPTIONS=nocheck",
          "sh",
          "-c",
          'cd "$0" && exec "$@"',
          "/build/src",
          "make",
          "-j2",
          "all",
        ],
        logArgv: ["chroot", root, "make", "-j2", "all"],
        isolation: { mount: true, network: true },
      },
    );
    assert.deepEqual(insideChroot(plain!, root), [
      "env",
      "-i",
      ...CHROOT_ENV,
      "sh",
      "-c",
      'cd "$0" && exec "$@"',
      "/build",
      "true",
    ]);
    assert.deepEqual(plain!.isolation, { mount: true, network: false });
    log.close();
  });

  test("stop() and remove() delete the build directory with rm, never leaving the file system", async () => {
    const { workspace, log } = fresh();
    fakeChroot(workspace);
    const runner = new RecordingRunner();
    const backend = new ChrootBackend(workspace, runner);
    await backend.stop();
    await backend.remove();
    const rm = { kind: "capture", argv: ["rm", "-rf", "--one-file-system", "--", workspace] };
    assert.deepEqual(runner.commands, [rm, rm]);
    log.close();
  });

  test("a removal that fails says what and why", async () => {
    const { workspace, log } = fresh();
    const runner = new RecordingRunner(() => ({
      exitCode: 1,
      stderr: `rm: skipping '${workspace}/chroot/proc', since it's on a different device\n`,
    }));
    await assert.rejects(
      new ChrootBackend(workspace, runner).remove(),
      new RegExp(`^Error: removing ${workspace} failed \\(exit status 1\\): rm: skipping .*proc'`),
    );
    log.close();
  });
});

describe("binarypackage through the chroot backend", () => {
  const args: BinaryPackageArgs = {
    dsc: "hello_1.0-1.dsc",
    series: "bookworm",
    suite: "bookworm",
    component: "main",
    archTag: "amd64",
    archIndep: false,
    archives: ["deb http://archive.example/debian bookworm main"],
    trustedKeys: [Buffer.from("-----BEGIN PGP PUBLIC KEY BLOCK-----\n...\n")],
    buildDebugSymbols: false,
  };

  test("every step, in order, with its exact argv, environment and network", async () => {
    const { workspace, log } = fresh();
    const root = fakeChroot(workspace);
    const sources = path.join(dir, "hello_1.0-1.dsc");
    fs.writeFileSync(sources, "Format: 3.0 (native)\nSource: hello\n");
    // The build step "builds": it leaves a .changes and the file it lists in /build.
    const runner = new RecordingRunner((cmd) => {
      if (cmd.argv.includes("runuser") && cmd.argv.at(-1)!.includes("dpkg-buildpackage")) {
        fs.writeFileSync(
          path.join(root, "build/hello_1.0-1_amd64.changes"),
          "Source: hello\nVersion: 1.0-1\nFiles:\n d41d8cd98f00b204e9800998ecf8427e 0 misc optional hello_1.0-1_amd64.deb\n",
        );
        fs.writeFileSync(path.join(root, "build/hello_1.0-1_amd64.deb"), "");
      }
      return {};
    });
    const backend = new ChrootBackend(workspace, runner);
    const steps: string[] = [];
    const ctx: BuildContext = {
      buildId: "PKG-1",
      arch: "amd64",
      log,
      backend,
      files: { "hello_1.0-1.dsc": sources },
      chrootTarball: path.join(dir, "unused.tar"),
      env: { http_proxy: "http://proxy.example:3128" },
      async runStep(name, argv, opts) {
        steps.push(name);
        return { ...(await backend.run(argv, log, opts).done), stopped: false };
      },
      setExtraStatus: () => {},
      stopping: false,
    };
    const outcome = await binaryPackageBuildType.run(ctx, args);
    assert.equal(outcome.status, "BuildStatus.OK");
    assert.deepEqual(
      outcome.results.map((r) => r.name),
      ["hello_1.0-1_amd64.changes", "hello_1.0-1_amd64.deb"],
    );

    const apt = ["apt-get", "-o", "Acquire::Retries=3", "-o", "DPkg::Options::=--force-confold"];
    const env = (extra: string[] = []): string[] => [
      "env",
      "-i",
      ...CHROOT_ENV,
      "http_proxy=http://proxy.example:3128",
      ...extra,
      "sh",
      "-c",
      'cd "$0" && exec "$@"',
      "/build",
    ];
    const expected: [string, readonly string[], boolean][] = [
      [
        "sources",
        [
          ...env(),
          "sh",
          "-ec",
          "rm -f /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources; cat /etc/apt/sources.list",
        ],
        false,
      ],
      ["keys", [...env(), "ls", "-l", "/etc/apt/trusted.gpg.d"], false],
      ["update", [...env(), ...apt, "-uy", "update"], false],
      ["upgrade", [...env(), ...apt, "-uy", "dist-upgrade"], false],
      [
        "unpack-source",
        [
          ...env(),
          "sh",
          "-ec",
          "id buildd >/dev/null 2>&1 || useradd --system --home-dir /build --no-create-home buildd; " +
            "chown -R buildd: /build; runuser -u buildd -- dpkg-source --no-check -x /build/hello_1.0-1.dsc /build/src",
        ],
        false,
      ],
      [
        "install-deps",
        [
          ...env(),
          ...apt,
          "-y",
          "--no-install-recommends",
          "build-dep",
          "--arch-only",
          "/build/hello_1.0-1.dsc",
        ],
        false,
      ],
      [
        "build",
        [
          // HOME=/build is set again by the step; it keeps its place in the base.
          ...env(["DEB_BUILD_OPTIONS=noautodbgsym"]),
          "runuser",
          "-u",
          "buildd",
          "--",
          "sh",
          "-c",
          "cd /build/src && exec dpkg-buildpackage -us -uc -B -rfakeroot",
        ],
        true,
      ],
    ];
    assert.deepEqual(
      steps,
      expected.map(([name]) => name),
    );
    assert.deepEqual(
      runner.commands.map((c) => insideChroot(c, root)),
      expected.map(([, argv]) => argv),
    );
    assert.deepEqual(
      runner.commands.map((c) => c.isolation),
      expected.map(([, , noNetwork]) => ({ mount: true, network: noNetwork })),
    );
    // What the build type wrote into the chroot, through its tree.
    assert.equal(
      fs.readFileSync(path.join(root, "etc/apt/sources.list"), "utf8"),
      "deb http://archive.example/debian bookworm main\n",
    );
    assert.ok(fs.existsSync(path.join(root, "etc/apt/trusted.gpg.d/buildd-0.asc")));
    assert.ok(fs.existsSync(path.join(root, "build/hello_1.0-1.dsc")));
    log.close();
  });

  test("a failing apt-get update is retried once, then CHROOTFAIL", async () => {
    const { workspace, log } = fresh();
    const root = fakeChroot(workspace);
    const runner = new RecordingRunner((cmd) => ({
      exitCode: cmd.argv.includes("update") ? 100 : 0,
    }));
    const backend = new ChrootBackend(workspace, runner);
    const ctx: BuildContext = {
      buildId: "PKG-2",
      arch: "amd64",
      log,
      backend,
      files: {},
      chrootTarball: "",
      env: {},
      runStep: async (_name, argv, opts) => ({
        ...(await backend.run(argv, log, opts).done),
        stopped: false,
      }),
      setExtraStatus: () => {},
      stopping: false,
    };
    const outcome = await binaryPackageBuildType.run(ctx, {
      ...args,
      archives: null,
      trustedKeys: [],
    });
    assert.equal(outcome.status, "BuildStatus.CHROOTFAIL");
    assert.deepEqual(
      runner.commands.map((c) => insideChroot(c, root).slice(CHROOT_ENV.length + 6)),
      [
        [
          "apt-get",
          "-o",
          "Acquire::Retries=3",
          "-o",
          "DPkg::Options::=--force-confold",
          "-uy",
          "update",
        ],
        [
          "apt-get",
          "-o",
          "Acquire::Retries=3",
          "-o",
          "DPkg::Options::=--force-confold",
          "-uy",
          "update",
        ],
      ],
    );
    log.close();
  });
});

describe("the host backend", () => {
  test("create() unpacks with tar; run() has the workspace's environment and cwd", async () => {
    const { workspace, log } = fresh();
    const runner = new RecordingRunner();
    const backend = new HostBackend(workspace, runner);
    await backend.create("/cache/abc", { log, track: (p) => p });
    fs.mkdirSync(path.join(workspace, "src"));
    backend.run(["make", "check"], log, { cwd: "src", env: { CI: "true" } });
    await backend.remove();
    assert.deepEqual(runner.commands, [
      { kind: "start", argv: ["tar", "-xf", "/cache/abc", "-C", workspace] },
      {
        kind: "start",
        argv: ["make", "check"],
        cwd: path.join(workspace, "src"),
        env: {
          PATH: DEFAULT_PATH,
          HOME: workspace,
          LANG: "C.UTF-8",
          TMPDIR: "/tmp",
          CI: "true",
        },
      },
      { kind: "capture", argv: ["rm", "-rf", "--one-file-system", "--", workspace] },
    ]);
    log.close();
  });
});

describe("the unpacker", () => {
  const member = (name: string): string =>
    `-rw-r--r-- 0/0               5 2026-11-21 19:55 ${name}`;
  /** A runner whose tar "lists" `lines` into its index file, as tar -vv --index-file does. */
  const listing = (lines: string[]): RecordingRunner =>
    new RecordingRunner((cmd) => {
      const index = cmd.argv.find((a) => a.startsWith("--index-file="));
      if (index) fs.writeFileSync(index.slice("--index-file=".length), lines.join("\n") + "\n");
      return {};
    });

  test("tar -xvv runs through the runner; its listing is checked, not logged", async () => {
    const { workspace, log } = fresh();
    const dest = path.join(workspace, "chroot");
    const runner = listing([member("./etc/hostname"), member("./etc/hosts")]);
    const r = await startUnpack(runner, "/cache/abc", dest, { log, track: (p) => p }).done;
    assert.deepEqual(r, { exitCode: 0, signal: null });
    const index = path.join(workspace, ".chroot.members");
    assert.deepEqual(runner.commands, [
      {
        kind: "start",
        argv: [
          "tar",
          "-xvv",
          `--index-file=${index}`,
          "--utc",
          "--numeric-owner",
          "--quoting-style=escape",
          "-f",
          "/cache/abc",
          "-C",
          dest,
        ],
      },
    ]);
    assert.equal(fs.existsSync(index), false, "the index file is removed");
    log.close();
    const text = fs.readFileSync(log.path, "utf8");
    assert.match(text, /\[buildd\] unpacked 2 members\n$/);
    assert.doesNotMatch(text, /etc\/hostname/);
  });

  test("a bad member fails the unpack, saying which (the first of them)", async () => {
    const { workspace, log } = fresh();
    const dest = path.join(workspace, "chroot");
    const runner = listing([member("./ok"), member("./a/../../escape"), member("/etc/absolute")]);
    const r = await startUnpack(runner, "/cache/abc", dest, { log, track: (p) => p }).done;
    assert.deepEqual(r, { exitCode: 1, signal: null });
    log.close();
    assert.match(
      fs.readFileSync(log.path, "utf8"),
      /\[buildd\] refusing the chroot tarball: member \.\/a\/\.\.\/\.\.\/escape contains "\.\."\n$/,
    );
    assert.equal(fs.existsSync(path.join(workspace, ".chroot.members")), false);
  });

  /**
   * A real tarball (python3's tarfile) of `count` files with non-ASCII names, then a
   * last member: a file, or a symlink pointing out of the chroot.
   */
  const manyMembers = (count: number, last: "file" | "escaping link"): string => {
    const file = path.join(fresh().workspace, "many.tar");
    execFileSync("python3", [
      "-c",
      `import io, sys, tarfile
with tarfile.open(sys.argv[1], mode="w") as t:
    for i in range(${count}):
        info = tarfile.TarInfo(f"./d/ünïcødé-名前-{i:05d}"); info.size = 1
        t.addfile(info, io.BytesIO(b"x"))
    if sys.argv[2] == "file":
        info = tarfile.TarInfo("./d/the-last-one"); info.size = 1
        t.addfile(info, io.BytesIO(b"x"))
    else:
        info = tarfile.TarInfo("./d/evil"); info.type = tarfile.SYMTYPE
        info.linkname = "../../../../tmp"
        t.addfile(info)`,
      file,
      last,
    ]);
    return file;
  };

  for (const last of ["file", "escaping link"] as const) {
    test(`a listing many reads long, checked while real tar writes it: ${last === "file" ? "every member counted" : "a bad last member is refused"}`, async () => {
      const { workspace, log } = fresh();
      const dest = path.join(workspace, "chroot");
      fs.mkdirSync(dest);
      const tarball = manyMembers(6000, last);
      const r = await startUnpack(processRunner, tarball, dest, { log, track: (p) => p }).done;
      log.close();
      const text = fs.readFileSync(log.path, "utf8");
      if (last === "file") {
        assert.deepEqual(r, { exitCode: 0, signal: null }, text);
        // Not counted: the line tar adds for the directory it creates (./d).
        assert.match(text, /\[buildd\] unpacked 6001 members\n$/);
        assert.equal(fs.readdirSync(path.join(dest, "d")).length, 6001);
      } else {
        assert.deepEqual(r, { exitCode: 1, signal: null }, text);
        const why = "symlink ./d/evil points outside the chroot (../../../../tmp)";
        assert.ok(text.endsWith(`[buildd] refusing the chroot tarball: ${why}\n`), text);
      }
      assert.equal(fs.existsSync(path.join(workspace, ".chroot.members")), false);
    });
  }

  test("a listing that cannot be read fails an unpack tar reports as done", async () => {
    const { workspace, log } = fresh();
    const dest = path.join(workspace, "chroot");
    // A tar that "succeeds" without writing its index: nothing unchecked becomes a chroot.
    const runner = new RecordingRunner(() => ({}));
    const r = await startUnpack(runner, "/cache/abc", dest, { log, track: (p) => p }).done;
    assert.deepEqual(r, { exitCode: 1, signal: null });
    log.close();
    assert.match(
      fs.readFileSync(log.path, "utf8"),
      /\[buildd\] refusing the chroot tarball: its member listing could not be read \(ENOENT/,
    );
  });
});

describe("short commands", () => {
  test("dpkg --print-architecture, outside a PID namespace, read from stdout", async () => {
    const runner = new RecordingRunner(() => ({ stdout: "riscv64\n" }));
    assert.equal(await defaultArchitecture(runner), "riscv64");
    assert.deepEqual(runner.commands, [
      {
        kind: "capture",
        argv: ["dpkg", "--print-architecture"],
        isolation: { pid: false },
        timeoutMs: 10_000,
      },
    ]);
  });

  test("a psql probe connects exactly as declared, in its own PID namespace", async () => {
    const runner = new RecordingRunner(() => ({ stdout: "150004\n" }));
    const r = await probeCapability(
      {
        name: "postgresql",
        version: "15",
        properties: {
          host: "db.example",
          port: "5433",
          user: "ci",
          password: "pw",
          bin: "/opt/pg/bin",
        },
      },
      { timeoutMs: 1234, custom: {}, runner },
    );
    assert.deepEqual(r, { available: true, reason: "" });
    const [cmd] = runner.commands;
    assert.deepEqual(cmd!.argv, [
      "/opt/pg/bin/psql",
      "--no-psqlrc",
      "--no-password",
      "--tuples-only",
      "--no-align",
      "--dbname",
      "postgres",
      "--command",
      "SHOW server_version_num",
    ]);
    assert.equal(cmd!.isolation, undefined, "the default: a PID namespace");
    assert.equal(cmd!.cwd, "/");
    assert.equal(cmd!.timeoutMs, 1234);
    assert.deepEqual(
      [cmd!.env!["PGHOST"], cmd!.env!["PGPORT"], cmd!.env!["PGUSER"], cmd!.env!["PGPASSWORD"]],
      ["db.example", "5433", "ci", "pw"],
    );
  });
});
