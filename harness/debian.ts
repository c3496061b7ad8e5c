// Real Debian inputs for the chroot tests: a bookworm chroot tarball made by mmdebstrap
// (cached between runs on one machine, keyed by its recipe) and tiny source packages.

import { execFile, execFileSync } from "node:child_process";
import { createHash } from "node:crypto";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { promisify } from "node:util";

const run = promisify(execFile);

/** Why chroot tests cannot run here, or null when they can. */
export function chrootTestsUnavailable(): string | null {
  if (process.getuid?.() !== 0) return "chroot builds need root (CI runs as root)";
  for (const tool of ["mmdebstrap", "zstd", "dpkg-source"]) {
    try {
      execFileSync("sh", ["-c", `command -v ${tool}`], { stdio: "ignore" });
    } catch {
      return `${tool} is not installed (scripts/test-deps.sh installs it as root)`;
    }
  }
  return null;
}

function aptSources(): string {
  const deb822 = "/etc/apt/sources.list.d/debian.sources";
  return fs.existsSync(deb822) ? deb822 : "/etc/apt/sources.list";
}

/**
 * The chroot tarball, built once per machine and recipe (30–100 s) and cached under
 * ~/.cache/buildd-test. Several test processes may ask at once: one builds, under a
 * lock directory, and the others wait for it.
 */
export async function bookwormChroot(): Promise<string> {
  const sources = aptSources();
  const recipe = [
    "mmdebstrap",
    "--variant=buildd",
    "--include=fakeroot,debhelper",
    "bookworm",
    fs.readFileSync(sources, "utf8"),
  ];
  const key = createHash("sha1").update(JSON.stringify(recipe)).digest("hex").slice(0, 12);
  const dir = path.join(os.homedir(), ".cache", "buildd-test");
  const tarball = path.join(dir, `bookworm-buildd-${key}.tar.zst`);
  fs.mkdirSync(dir, { recursive: true });
  const lock = `${tarball}.lock`;
  for (;;) {
    if (fs.existsSync(tarball)) return tarball;
    try {
      fs.mkdirSync(lock);
      break;
    } catch {
      // Someone else is building it; a lock older than 15 minutes is stale.
      const age = Date.now() - fs.statSync(lock, { throwIfNoEntry: false })!.mtimeMs;
      if (age > 15 * 60_000) fs.rmSync(lock, { recursive: true, force: true });
      await new Promise((r) => setTimeout(r, 1000));
    }
  }
  try {
    const partial = `${tarball}.partial.tar.zst`;
    await run(
      "mmdebstrap",
      ["--variant=buildd", "--include=fakeroot,debhelper", "--quiet", "bookworm", partial, sources],
      { maxBuffer: 64 << 20 },
    );
    fs.renameSync(partial, tarball);
    return tarball;
  } finally {
    fs.rmSync(lock, { recursive: true, force: true });
  }
}

export interface SourcePackage {
  readonly dsc: string;
  /** Every file of the source package (the .dsc first), name → host path. */
  readonly files: Record<string, string>;
}

export interface PackageRecipe {
  readonly name: string;
  readonly version?: string;
  readonly buildDepends?: string;
  /** Shell lines for `override_dh_auto_build` (each run by make, so one command per line). */
  readonly buildCommands?: readonly string[];
}

/** A tiny 3.0 (native) source package with a debhelper build that installs a script. */
export async function makeSourcePackage(recipe: PackageRecipe): Promise<SourcePackage> {
  const version = recipe.version ?? "1.0";
  const root = fs.mkdtempSync(path.join(os.tmpdir(), "buildd-srcpkg-"));
  const src = path.join(root, `${recipe.name}-${version}`);
  const w = (rel: string, text: string, mode = 0o644): void => {
    fs.mkdirSync(path.dirname(path.join(src, rel)), { recursive: true });
    fs.writeFileSync(path.join(src, rel), text, { mode });
  };
  w(`${recipe.name}`, `#!/bin/sh\necho "hello from ${recipe.name}"\n`, 0o755);
  w(
    "debian/control",
    `Source: ${recipe.name}
Section: misc
Priority: optional
Maintainer: buildd tests <buildd@example.invalid>
Build-Depends: debhelper-compat (= 13)${recipe.buildDepends ? `, ${recipe.buildDepends}` : ""}
Standards-Version: 4.6.2
Rules-Requires-Root: no

Package: ${recipe.name}
Architecture: any
Depends: \${misc:Depends}
Description: test package for buildd
 A script that says hello.
`,
  );
  w(
    "debian/changelog",
    `${recipe.name} (${version}) bookworm; urgency=medium

  * Test build.

 -- buildd tests <buildd@example.invalid>  Sat, 21 Nov 2026 12:00:00 +0000
`,
  );
  w("debian/source/format", "3.0 (native)\n");
  w("debian/install", `${recipe.name} usr/bin\n`);
  const override = recipe.buildCommands
    ? `\noverride_dh_auto_build:\n${recipe.buildCommands.map((c) => `\t${c}\n`).join("")}`
    : "";
  w("debian/rules", `#!/usr/bin/make -f\n%:\n\tdh $@\n${override}`, 0o755);
  await run("dpkg-source", ["-b", path.basename(src)], { cwd: root });
  const files: Record<string, string> = {};
  const dsc = `${recipe.name}_${version}.dsc`;
  files[dsc] = path.join(root, dsc);
  for (const name of fs.readdirSync(root)) {
    if (name.startsWith(`${recipe.name}_`) && name !== dsc) files[name] = path.join(root, name);
  }
  return { dsc, files };
}

/** Mount points (from /proc/self/mountinfo) under `dir`. */
export function mountsUnder(dir: string): string[] {
  return fs
    .readFileSync("/proc/self/mountinfo", "utf8")
    .split("\n")
    .map((l) => l.split(" ")[4] ?? "")
    .filter((m) => m === dir || m.startsWith(`${dir}/`));
}

/** PIDs whose root directory (/proc/PID/root) is under `dir`: processes in a chroot there. */
export function processesRootedUnder(dir: string): number[] {
  const out: number[] = [];
  for (const name of fs.readdirSync("/proc")) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const root = fs.readlinkSync(`/proc/${name}/root`);
      if (root === dir || root.startsWith(`${dir}/`)) out.push(Number(name));
    } catch {
      // gone, or not ours to read
    }
  }
  return out;
}

export interface AptRepo {
  /** The `archives` line for a build: `deb <url> ./` (a flat repository). */
  readonly archive: string;
  /** The repository's signing key, ASCII-armoured and base64-encoded (`trusted_keys`). */
  readonly keyBase64: string;
}

/**
 * A real, signed, flat apt repository holding one package (`name`, Architecture: all),
 * served by the test librarian under `/<prefix>/`. The key is made for the test in a
 * throwaway GnuPG home.
 */
export async function makeAptRepo(
  serve: (path: string, body: Buffer) => string,
  prefix: string,
  name: string,
): Promise<AptRepo> {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), "buildd-aptrepo-"));
  try {
    const pkg = path.join(root, "pkg");
    fs.mkdirSync(path.join(pkg, "DEBIAN"), { recursive: true });
    fs.mkdirSync(path.join(pkg, "usr/share/doc", name), { recursive: true });
    fs.writeFileSync(path.join(pkg, "usr/share/doc", name, "README"), "test dependency\n");
    fs.writeFileSync(
      path.join(pkg, "DEBIAN/control"),
      `Package: ${name}\nVersion: 1.0\nArchitecture: all\nMaintainer: buildd tests <buildd@example.invalid>\nDescription: a build dependency only this repository has\n`,
    );
    const repo = path.join(root, "repo");
    fs.mkdirSync(repo);
    const deb = `${name}_1.0_all.deb`;
    await run("dpkg-deb", ["--root-owner-group", "--build", pkg, path.join(repo, deb)]);
    const { stdout: packages } = await run("dpkg-scanpackages", ["-m", "."], { cwd: repo });
    const packagesBuf = Buffer.from(packages);
    const sha256 = createHash("sha256").update(packagesBuf).digest("hex");
    const release = [
      "Origin: buildd-test",
      "Label: buildd-test",
      `Date: ${new Date(Date.now() - 60_000).toUTCString()}`,
      "SHA256:",
      ` ${sha256} ${packagesBuf.length} Packages`,
      "",
    ].join("\n");
    const gnupg = path.join(root, "gnupg");
    fs.mkdirSync(gnupg, { mode: 0o700 });
    const gpg = (args: string[], input?: string) =>
      execFileSync(
        "gpg",
        ["--homedir", gnupg, "--batch", "--pinentry-mode", "loopback", "--passphrase", "", ...args],
        {
          input,
          maxBuffer: 16 << 20,
          // gpg narrates key generation on stderr; keep it out of the test output.
          stdio: ["pipe", "pipe", "pipe"],
        },
      );
    gpg([
      "--quick-gen-key",
      "buildd test repository <repo@example.invalid>",
      "ed25519",
      "sign",
      "never",
    ]);
    const inRelease = gpg(["--clearsign", "--output", "-"], release);
    const key = gpg(["--armor", "--export"]);
    for (const dir of [`/${prefix}`, `/${prefix}/.`]) {
      serve(`${dir}/Packages`, packagesBuf);
      serve(`${dir}/Release`, Buffer.from(release));
      serve(`${dir}/InRelease`, inRelease);
      serve(`${dir}/${deb}`, fs.readFileSync(path.join(repo, deb)));
    }
    const base = serve(`/${prefix}/`, Buffer.alloc(0)).replace(/\/$/, "");
    return { archive: `deb ${base} ./`, keyBase64: key.toString("base64") };
  } finally {
    // Stop the gpg-agent the key generation started in the throwaway home.
    try {
      execFileSync("gpgconf", ["--homedir", path.join(root, "gnupg"), "--kill", "gpg-agent"]);
    } catch {
      // no agent was started
    }
    fs.rmSync(root, { recursive: true, force: true });
  }
}
