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
import { describeError, invalidArgument } from "../errors.js";
import type { Struct, Value } from "../protocol/values.js";
import { BuildStatus } from "../protocol/states.js";
import type {
  ArgSpec,
  BuildContext,
  BuildOutcome,
  BuildType,
  InputFile,
  ResultFile,
} from "./buildtype.js";
import {
  field,
  filesOfChanges,
  isTransientArchiveFailure,
  parseDsc,
  unmetDependencies,
} from "./debian.js";
import { isSafeComponent } from "../protocol/names.js";

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
}

// Every key a Launchpad manager sends for a binarypackage build (its extraBuildArgs), so
// an unchanged manager keeps working. Those marked "ignored" are checked for their type
// where the protocol gives one, and change nothing here; docs/buildtypes.md lists why.
const BINARY_PACKAGE_ARGUMENTS: readonly ArgSpec[] = [
  {
    name: "series",
    use: "ignored",
    doc: "required by the protocol; the chroot tarball already is that series (the reference only names its backend's image by it)",
  },
  {
    name: "suite",
    use: "ignored",
    doc: "required by the protocol; the reference only writes it to /CurrentlyBuilding and passes it to sbuild, while dpkg-buildpackage takes the distribution from debian/changelog",
  },
  {
    name: "ogrecomponent",
    use: "ignored",
    doc: "required by the protocol; the reference only writes it to /CurrentlyBuilding",
  },
  {
    name: "arch_tag",
    use: "ignored",
    doc: "the chroot's architecture decides what is built (Launchpad sends i386 builds to amd64 builders with an i386 chroot, so it cannot be checked against the builder's)",
  },
  {
    name: "arch_indep",
    use: "used",
    doc: "also build `Architecture: all` packages (`dpkg-buildpackage -b` instead of `-B`)",
  },
  {
    name: "archives",
    use: "used",
    doc: "sources.list lines that replace the chroot's apt sources",
  },
  { name: "trusted_keys", use: "used", doc: "base64 ASCII-armoured keys for those archives" },
  {
    name: "build_debug_symbols",
    use: "used",
    doc: "keep automatic debug symbol packages (otherwise `DEB_BUILD_OPTIONS=noautodbgsym`)",
  },
  {
    name: "archive_purpose",
    use: "ignored",
    doc: "the reference only writes it to /CurrentlyBuilding, which nothing here reads",
  },
  {
    name: "archive_private",
    use: "ignored",
    doc: "the reference scrubs the log only for private archives; this builder always does",
  },
  {
    name: "fast_cleanup",
    use: "ignored",
    doc: "the reference skips unmounting on virtual builders; here nothing stays mounted and the build directory is always removed",
  },
  {
    name: "builder_constraints",
    use: "ignored",
    doc: "the manager uses them to choose a builder; the reference passes them to LXD only",
  },
  { name: "distribution", use: "ignored", doc: "sent by the manager, unused by the reference too" },
  {
    name: "image_type",
    use: "used",
    doc: '`"chroot"` (the default, and the only backend binarypackage builds on); anything else is refused',
  },
];

const BUILD_DIR = "/build";
const BUILD_USER = "buildd";

function requiredString(args: Struct, key: string): string {
  const v = args[key];
  if (typeof v !== "string" || v === "")
    throw invalidArgument(`binarypackage build: ${key} is required (a non-empty string)`);
  return v;
}

function optionalString(args: Struct, key: string): string | null {
  const v = args[key];
  if (v === undefined || v === null) return null;
  if (typeof v !== "string") throw invalidArgument(`binarypackage build: ${key} must be a string`);
  return v;
}

function stringList(v: Value | undefined, key: string): string[] | null {
  if (v === undefined || v === null) return null;
  if (!Array.isArray(v) || !v.every((x) => typeof x === "string")) {
    throw invalidArgument(`binarypackage build: ${key} must be a list of strings`);
  }
  return v as string[];
}

/** A .dsc is a few kilobytes; anything this large is not one, and is not read into memory. */
const MAX_DSC_BYTES = 1024 * 1024;

/**
 * The files the .dsc lists that the filemap lacks: refused now, naming them, instead of
 * a PACKAGEFAIL after the chroot was unpacked. A .dsc that cannot be read or parsed is
 * refused too.
 */
function checkSourceFiles(dsc: string, filemap: Readonly<Record<string, InputFile>>): void {
  const where = `binarypackage build: ${dsc}`;
  let text: string;
  try {
    const file = filemap[dsc]!;
    const size = fs.statSync(file.path).size;
    if (size > MAX_DSC_BYTES)
      throw new Error(`it is ${size} bytes, more than a .dsc's ${MAX_DSC_BYTES}`);
    text = fs.readFileSync(file.path, "utf8");
  } catch (err) {
    throw invalidArgument(`${where} cannot be read: ${describeError(err)}`);
  }
  let listed: readonly string[];
  try {
    listed = parseDsc(text).files;
  } catch (err) {
    throw invalidArgument(
      `${where} is not a valid source package description: ${describeError(err)}; ` +
        "name the .dsc that dpkg-source wrote for the package",
    );
  }
  const missing = listed.filter((name) => !Object.hasOwn(filemap, name));
  if (missing.length > 0) {
    throw invalidArgument(
      `${where} lists ${missing.map((n) => JSON.stringify(n)).join(", ")}, which the filemap lacks; ` +
        "ensurepresent every file of the source package and name each in the filemap",
    );
  }
}

export const binaryPackageBuildType: BuildType<BinaryPackageArgs> = {
  name: "binarypackage",

  arguments: BINARY_PACKAGE_ARGUMENTS,

  backendFor: () => "chroot",

  parseArgs(args, filemap): BinaryPackageArgs {
    const series = requiredString(args, "series");
    const suite = requiredString(args, "suite");
    const component = requiredString(args, "ogrecomponent");
    for (const key of ["archive_purpose", "distribution"]) optionalString(args, key);
    const imageType = optionalString(args, "image_type") ?? "chroot";
    if (imageType !== "chroot") {
      throw invalidArgument(
        `binarypackage build: image_type must be "chroot" (this builder has no other backend for it), got ${JSON.stringify(imageType)}`,
      );
    }
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
    const dsc = dscs[0]!;
    if (!isSafeComponent(dsc)) throw invalidArgument("binarypackage build: unsafe .dsc name");
    checkSourceFiles(dsc, filemap);
    return {
      dsc,
      series,
      suite,
      component,
      archTag: optionalString(args, "arch_tag"),
      archIndep: args["arch_indep"] === true,
      archives,
      trustedKeys: keys,
      buildDebugSymbols: args["build_debug_symbols"] === true,
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

    // Files we put into the chroot go through its tree, so a link in it cannot send them
    // to the host (inroot.ts); a chroot that refuses them is the chroot's fault.
    const place = async (what: string, put: () => Promise<void> | void): Promise<boolean> => {
      try {
        await put();
        return true;
      } catch (err) {
        ctx.log.write(`[buildd] ${what} failed: ${describeError(err)}\n`);
        return false;
      }
    };
    const tree = ctx.backend.tree;
    if (a.archives) {
      const list = a.archives.map((l) => `${l}\n`).join("");
      const written = await place("writing /etc/apt/sources.list", () =>
        tree.writeFile("/etc/apt/sources.list", list),
      );
      const cleared =
        written &&
        (await ok(
          "sources",
          sh(
            "rm -f /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources; cat /etc/apt/sources.list",
          ),
        ));
      if (!cleared)
        return fail(BuildStatus.CHROOTFAIL, "replacing the chroot's apt sources failed");
    }
    if (a.trustedKeys.length > 0) {
      const written = await place("writing the trusted keys", () =>
        a.trustedKeys.forEach((key, i) =>
          tree.writeFile(`/etc/apt/trusted.gpg.d/buildd-${i}.asc`, key),
        ),
      );
      if (!written || !(await ok("keys", ["ls", "-l", "/etc/apt/trusted.gpg.d"])))
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
    const copied = await place(`copying the source package into ${BUILD_DIR}`, async () => {
      for (const [name, hostPath] of Object.entries(ctx.files))
        await tree.copyIn(hostPath, `${BUILD_DIR}/${name}`);
    });
    if (!copied) return fail(BuildStatus.CHROOTFAIL, `the chroot's ${BUILD_DIR} cannot take files`);
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

/**
 * The .changes in /build and every file it lists. Each is read through the chroot's tree
 * (inroot.ts) and must be a regular file there: a name that is a link is followed only
 * inside the chroot, so neither the .changes nor a listed file can be a host file.
 * Throws, naming the file and why, when one is missing or is not a regular file.
 */
function gatherChanges(ctx: BuildContext): ResultFile[] {
  const tree = ctx.backend.tree;
  const dir = tree.resolve(BUILD_DIR).path;
  const changes = fs.readdirSync(dir).filter((n) => n.endsWith(".changes"));
  if (changes.length !== 1)
    throw new Error(`expected one .changes file in ${BUILD_DIR}, found ${changes.length}`);
  const name = changes[0]!;
  const text = tree.readFile(`${BUILD_DIR}/${name}`).toString("utf8");
  const listed = filesOfChanges(text);
  ctx.log.write(
    `[buildd] ${name} (${field(text, "Source") ?? "?"} ${field(text, "Version") ?? "?"}) lists ${listed.length} file(s)\n`,
  );
  return [name, ...listed].map((n) => {
    if (!isSafeComponent(n)) throw new Error(`unsafe file name in ${name}: ${n}`);
    return { name: n, path: tree.regularFile(`${BUILD_DIR}/${n}`) };
  });
}
