// `binarypackage`: build a Debian source package's binary packages inside the chroot.
//
// Steps, each logged: (unpack, mount: by the backend) → sources → keys → update → build
// (dpkg-source -x, apt-get build-dep, dpkg-buildpackage without network) → results.
// Results are the .changes file and every file it lists.
//
// Failures map as the protocol says, first failure wins: chroot setup (sources, keys,
// update) → CHROOTFAIL; unsatisfiable build dependencies → DEPFAIL with `dependencies`;
// a transient archive problem while installing them → GIVENBACK; the package itself
// fails to build → PACKAGEFAIL; our own machinery → BUILDERFAIL (thrown).

import fs from "node:fs";
import path from "node:path";
import { describeError, invalidArgument } from "../errors.js";
import type { XmlRpcStruct, XmlRpcValue } from "../rpc/codec.js";
import { BuildStatus } from "../builder/states.js";
import type { BuildContext, BuildOutcome, BuildType, ResultFile } from "./buildtype.js";
import { field, filesOfChanges, isTransientArchiveFailure, unmetDependencies } from "./debian.js";
import { isSafeComponent } from "./names.js";

export interface BinaryPackageArgs {
  readonly dsc: string;
  readonly series: string;
  readonly suite: string;
  readonly component: string;
  readonly archTag: string | null;
  readonly archIndep: boolean;
  readonly archives: readonly string[] | null;
  readonly trustedKeys: readonly Buffer[];
  readonly buildDebugSymbols: boolean;
  readonly archivePurpose: string | null;
}

const BUILD_DIR = "/build";
const BUILD_USER = "buildd";

function requiredString(args: XmlRpcStruct, key: string): string {
  const v = args[key];
  if (typeof v !== "string" || v === "")
    throw invalidArgument(`binarypackage build: ${key} is required (a non-empty string)`);
  return v;
}

function optionalString(args: XmlRpcStruct, key: string): string | null {
  const v = args[key];
  if (v === undefined || v === null) return null;
  if (typeof v !== "string") throw invalidArgument(`binarypackage build: ${key} must be a string`);
  return v;
}

function stringList(v: XmlRpcValue | undefined, key: string): string[] | null {
  if (v === undefined || v === null) return null;
  if (!Array.isArray(v) || !v.every((x) => typeof x === "string")) {
    throw invalidArgument(`binarypackage build: ${key} must be a list of strings`);
  }
  return v as string[];
}

export const binaryPackageBuildType: BuildType<BinaryPackageArgs> = {
  name: "binarypackage",

  backendFor: () => "chroot",

  parseArgs(args, filemap): BinaryPackageArgs {
    const series = requiredString(args, "series");
    const suite = requiredString(args, "suite");
    const component = requiredString(args, "ogrecomponent");
    const dscs = Object.keys(filemap).filter((n) => n.endsWith(".dsc"));
    if (dscs.length !== 1) {
      throw invalidArgument(
        `binarypackage build: the filemap must name exactly one .dsc file (it names ${dscs.length})`,
      );
    }
    const archives = stringList(args["archives"], "archives");
    if (archives?.some((l) => /[\n\r]/.test(l)))
      throw invalidArgument("binarypackage build: an archives line contains a line break");
    const keys = (stringList(args["trusted_keys"], "trusted_keys") ?? []).map((k, i) => {
      const text = Buffer.from(k, "base64");
      if (!/-----BEGIN PGP PUBLIC KEY BLOCK-----/.test(text.toString("latin1"))) {
        throw invalidArgument(
          `binarypackage build: trusted_keys[${i}] is not a base64 ASCII-armoured public key`,
        );
      }
      return text;
    });
    if (dscs[0] !== undefined && !isSafeComponent(dscs[0]))
      throw invalidArgument("binarypackage build: unsafe .dsc name");
    return {
      dsc: dscs[0]!,
      series,
      suite,
      component,
      archTag: optionalString(args, "arch_tag"),
      archIndep: args["arch_indep"] === true,
      archives,
      trustedKeys: keys,
      buildDebugSymbols: args["build_debug_symbols"] === true,
      archivePurpose: optionalString(args, "archive_purpose"),
    };
  },

  secrets: () => [],

  journalArgs: (args) => ({ ...args }),

  async run(ctx: BuildContext, a: BinaryPackageArgs): Promise<BuildOutcome> {
    const fail = (status: BuildOutcome["status"], message: string): BuildOutcome => {
      ctx.log.write(`[buildd] ${message}\n`);
      return { status, results: [] };
    };
    const ok = async (
      name: string,
      argv: string[],
      opts: { noNetwork?: boolean; env?: Record<string, string> } = {},
    ) => {
      const r = await ctx.runStep(name, argv, { ...opts, env: { ...ctx.env, ...opts.env } });
      return !r.stopped && r.exitCode === 0;
    };
    const sh = (script: string): string[] => ["sh", "-ec", script];

    if (a.archives) {
      const list = a.archives.map((l) => `${l}\n`).join("");
      fs.writeFileSync(ctx.backend.resolve("/etc/apt/sources.list"), list);
      if (
        !(await ok(
          "sources",
          sh(
            "rm -f /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources; cat /etc/apt/sources.list",
          ),
        ))
      ) {
        return fail(BuildStatus.CHROOTFAIL, "replacing the chroot's apt sources failed");
      }
    }
    if (a.trustedKeys.length > 0) {
      a.trustedKeys.forEach((key, i) =>
        fs.writeFileSync(ctx.backend.resolve(`/etc/apt/trusted.gpg.d/buildd-${i}.asc`), key),
      );
      if (!(await ok("keys", ["ls", "-l", "/etc/apt/trusted.gpg.d"])))
        return fail(BuildStatus.CHROOTFAIL, "adding trusted keys failed");
    }
    const aptOpts = ["-o", "Acquire::Retries=3", "-o", "DPkg::Options::=--force-confold"];
    if (!(await ok("update", ["apt-get", ...aptOpts, "-uy", "update"]))) {
      if (ctx.stopping || !(await ok("update", ["apt-get", ...aptOpts, "-uy", "update"]))) {
        return fail(BuildStatus.CHROOTFAIL, "apt-get update failed in the chroot");
      }
    }
    if (!(await ok("upgrade", ["apt-get", ...aptOpts, "-uy", "dist-upgrade"]))) {
      return fail(BuildStatus.CHROOTFAIL, "upgrading the chroot failed");
    }

    // The source package, unpacked by an unprivileged user.
    for (const [name, hostPath] of Object.entries(ctx.files))
      await ctx.backend.copyIn(hostPath, `${BUILD_DIR}/${name}`);
    const src = "/build/src";
    if (
      !(await ok(
        "unpack-source",
        sh(
          `id ${BUILD_USER} >/dev/null 2>&1 || useradd --system --home-dir ${BUILD_DIR} --no-create-home ${BUILD_USER}; ` +
            `chown -R ${BUILD_USER}: ${BUILD_DIR}; runuser -u ${BUILD_USER} -- dpkg-source --no-check -x ${BUILD_DIR}/${a.dsc} ${src}`,
        ),
      ))
    ) {
      return fail(BuildStatus.PACKAGEFAIL, "unpacking the source package failed");
    }

    const logStart = ctx.log.size;
    const depArgs = [
      "apt-get",
      ...aptOpts,
      "-y",
      "--no-install-recommends",
      "build-dep",
      ...(a.archIndep ? [] : ["--arch-only"]),
      `${BUILD_DIR}/${a.dsc}`,
    ];
    if (!(await ok("install-deps", depArgs))) {
      if (ctx.stopping) return { status: BuildStatus.ABORTED, results: [] };
      const output = readSince(ctx.log.path, logStart);
      const unmet = unmetDependencies(output);
      if (unmet) {
        ctx.log.write(`[buildd] unmet build dependencies: ${unmet}\n`);
        return { status: BuildStatus.DEPFAIL, dependencies: unmet, results: [] };
      }
      if (isTransientArchiveFailure(output))
        return fail(
          BuildStatus.GIVENBACK,
          "a transient archive failure while installing build dependencies",
        );
      return fail(BuildStatus.PACKAGEFAIL, "installing the build dependencies failed");
    }

    const debOptions: Record<string, string> = a.buildDebugSymbols
      ? {}
      : { DEB_BUILD_OPTIONS: "noautodbgsym" };
    const which = a.archIndep ? "-b" : "-B";
    const built = await ok(
      "build",
      [
        "runuser",
        "-u",
        BUILD_USER,
        "--",
        "sh",
        "-c",
        `cd ${src} && exec dpkg-buildpackage -us -uc ${which} -rfakeroot`,
      ],
      { noNetwork: true, env: { ...debOptions, HOME: BUILD_DIR } },
    );
    if (!built) {
      if (ctx.stopping) return { status: BuildStatus.ABORTED, results: [] };
      return fail(BuildStatus.PACKAGEFAIL, "the package failed to build");
    }
    try {
      return { status: BuildStatus.OK, results: gatherChanges(ctx) };
    } catch (err) {
      return fail(BuildStatus.PACKAGEFAIL, `Failed to gather results: ${describeError(err)}`);
    }
  },
};

function readSince(logPath: string, offset: number): string {
  const fd = fs.openSync(logPath, "r");
  try {
    const size = fs.fstatSync(fd).size;
    const start = Math.max(offset, size - 256 * 1024);
    const buf = Buffer.alloc(size - start);
    fs.readSync(fd, buf, 0, buf.length, start);
    return buf.toString("utf8");
  } finally {
    fs.closeSync(fd);
  }
}

function gatherChanges(ctx: BuildContext): ResultFile[] {
  const dir = ctx.backend.resolve(BUILD_DIR);
  const changes = fs.readdirSync(dir).filter((n) => n.endsWith(".changes"));
  if (changes.length !== 1)
    throw new Error(`expected one .changes file in ${BUILD_DIR}, found ${changes.length}`);
  const name = changes[0]!;
  const text = fs.readFileSync(path.join(dir, name), "utf8");
  const listed = filesOfChanges(text);
  ctx.log.write(
    `[buildd] ${name} (${field(text, "Source") ?? "?"} ${field(text, "Version") ?? "?"}) lists ${listed.length} file(s)\n`,
  );
  return [name, ...listed].map((n) => {
    if (!isSafeComponent(n)) throw new Error(`unsafe file name in ${name}: ${n}`);
    return { name: n, path: ctx.backend.resolve(`${BUILD_DIR}/${n}`) };
  });
}
