// What `buildd build` sends, made from local files: the tarball named by chroot_sha1,
// the filemap's files and the build arguments, for each build type the command drives.
// Mistakes in the input are found here, before anything is sent, and say what to fix.

import { createHash } from "node:crypto";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { parseDsc } from "../buildtypes/debian.js";
import type { Struct, Value } from "../protocol/values.js";
import { CliError, usageError } from "./errors.js";
import type { LocalFile } from "./file-server.js";
import { processRunner } from "../process/runner.js";

export interface BuildPlan {
  readonly buildType: "script" | "binarypackage";
  /** The tarball build() names as chroot_sha1 (a workspace, or a Debian chroot). */
  readonly chroot: LocalFile;
  /** The filemap's files. */
  readonly files: readonly LocalFile[];
  readonly args: Struct;
  /** The steps the build will report in order (build_step), for the progress bar. */
  readonly steps: readonly string[];
  /** Remove what was made for the build (the workspace tarball). */
  cleanup(): void;
}

async function localFile(name: string, file: string): Promise<LocalFile> {
  let st: fs.Stats;
  try {
    st = fs.statSync(file);
  } catch (err) {
    throw usageError(`${file}: cannot read it (${(err as NodeJS.ErrnoException).code})`);
  }
  if (!st.isFile()) throw usageError(`${file} is not a file`);
  const hash = createHash("sha1");
  for await (const chunk of fs.createReadStream(file, { highWaterMark: 1 << 20 })) {
    hash.update(chunk as Buffer);
  }
  return { name, path: file, size: st.size, sha1: hash.digest("hex") };
}

/** "NAME=VALUE" → [NAME, VALUE], or a usage error naming the option. */
function pair(option: string, text: string): [string, string] {
  const eq = text.indexOf("=");
  if (eq <= 0 || eq === text.length - 1) {
    throw usageError(`${option} ${JSON.stringify(text)}: write it as NAME=VALUE`);
  }
  return [text.slice(0, eq).trim(), text.slice(eq + 1)];
}

export interface ScriptOptions {
  readonly step?: readonly string[];
  readonly steps?: string;
  readonly artifact?: readonly string[];
  readonly env?: readonly string[];
  readonly secret?: readonly string[];
  readonly timeout?: string;
}

function stepsFromFile(file: string): Struct[] {
  let parsed: unknown;
  try {
    parsed = JSON.parse(fs.readFileSync(file, "utf8"));
  } catch (err) {
    throw usageError(
      `--steps ${file}: cannot read it as JSON (${err instanceof Error ? err.message : String(err)})`,
    );
  }
  const ok = (s: unknown): s is { name: string; run: string | string[] } =>
    typeof s === "object" &&
    s !== null &&
    typeof (s as { name?: unknown }).name === "string" &&
    (typeof (s as { run?: unknown }).run === "string" ||
      (Array.isArray((s as { run?: unknown }).run) &&
        ((s as { run: unknown[] }).run as unknown[]).every((a) => typeof a === "string")));
  if (!Array.isArray(parsed) || !parsed.every(ok)) {
    throw usageError(
      `--steps ${file}: expected a JSON list of {"name": "...", "run": "shell command" or ["argv", ...]}`,
    );
  }
  return parsed.map((s) => ({ name: s.name, run: s.run }));
}

/** A `script` build of a directory: tarred as the workspace, steps from the options. */
export async function scriptPlan(dir: string, given: ScriptOptions): Promise<BuildPlan> {
  const opts = {
    ...given,
    step: given.step ?? [],
    artifact: given.artifact ?? [],
    env: given.env ?? [],
    secret: given.secret ?? [],
  };
  if (!fs.statSync(dir, { throwIfNoEntry: false })?.isDirectory()) {
    throw usageError(`${dir} is not a directory (a script build runs in a copy of one)`);
  }
  const steps: Struct[] = [
    ...(opts.steps === undefined ? [] : stepsFromFile(opts.steps)),
    ...opts.step.map((s) => {
      const [name, cmd] = pair("--step", s);
      return { name, run: cmd };
    }),
  ];
  if (steps.length === 0) {
    throw usageError(
      "a script build needs steps: --step 'NAME=COMMAND' (repeatable) or --steps FILE",
    );
  }
  const args: Record<string, Value> = { steps };
  if (opts.artifact.length > 0) args["artifacts"] = [...opts.artifact];
  if (opts.env.length > 0)
    args["environment"] = Object.fromEntries(opts.env.map((e) => pair("--env", e)));
  if (opts.secret.length > 0) {
    // Values come from this command's environment, never from its arguments (which
    // other users can read in the process list).
    const secrets: Record<string, string> = {};
    for (const name of opts.secret) {
      const value = process.env[name];
      if (value === undefined) {
        throw usageError(
          `--secret ${name}: set ${name} in the environment; its value is sent as the secret`,
        );
      }
      secrets[name] = value;
    }
    args["secrets"] = secrets;
  }
  if (opts.timeout !== undefined) {
    const t = Number(opts.timeout);
    if (!Number.isFinite(t) || t <= 0)
      throw usageError(
        `--timeout must be a number of seconds > 0, not ${JSON.stringify(opts.timeout)}`,
      );
    args["timeout"] = t;
  }
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "buildd-cli-"));
  const cleanup = (): void => fs.rmSync(tmp, { recursive: true, force: true });
  try {
    const tarball = path.join(tmp, "workspace.tar.gz");
    // GNU tar, as the builder unpacks with; our own runner, as for every process. No PID
    // namespace: tar starts nothing that could outlive it.
    const tar = await processRunner.capture({
      argv: ["tar", "--create", "--gzip", "--file", tarball, "--directory", path.resolve(dir), "."],
      isolation: { pid: false },
    });
    if (tar.error !== null || tar.exitCode !== 0) {
      throw new CliError(
        `cannot tar ${dir} as the workspace: ${(tar.error ?? tar.output).trim() || `tar exited with status ${tar.exitCode}`}`,
      );
    }
    return {
      buildType: "script",
      chroot: await localFile("workspace", tarball),
      files: [],
      args,
      // The builder reports unpacking the workspace as a step of its own, first.
      steps: ["unpack", ...steps.map((s) => String(s["name"]))],
      cleanup,
    };
  } catch (err) {
    cleanup();
    throw err;
  }
}

export interface BinaryPackageOptions {
  readonly suite: string;
  readonly component: string;
  readonly archIndep?: boolean;
  readonly archive?: readonly string[];
  readonly trustedKey?: readonly string[];
}

/** A `binarypackage` build: the .dsc and the files it lists beside it, and a chroot tarball. */
export async function binaryPackagePlan(
  dsc: string,
  chrootTarball: string,
  given: BinaryPackageOptions,
): Promise<BuildPlan> {
  const opts = { ...given, archive: given.archive ?? [], trustedKey: given.trustedKey ?? [] };
  let text: string;
  try {
    text = fs.readFileSync(dsc, "utf8");
  } catch (err) {
    throw usageError(`${dsc}: cannot read it (${(err as NodeJS.ErrnoException).code})`);
  }
  let listed: readonly string[];
  try {
    listed = parseDsc(text).files;
  } catch (err) {
    throw usageError(
      `${dsc} is not a usable .dsc: ${err instanceof Error ? err.message : String(err)}`,
    );
  }
  const beside = path.dirname(dsc);
  const missing = listed.filter((n) => !fs.existsSync(path.join(beside, n)));
  if (missing.length > 0) {
    throw usageError(
      `${dsc} lists ${missing.join(", ")}, which ${missing.length === 1 ? "is" : "are"} not beside it in ${beside}; put the source package's files together`,
    );
  }
  const files = [await localFile(path.basename(dsc), dsc)];
  for (const name of listed) files.push(await localFile(name, path.join(beside, name)));
  const args: Record<string, Value> = {
    series: opts.suite,
    suite: opts.suite,
    ogrecomponent: opts.component,
  };
  if (opts.archIndep) args["arch_indep"] = true;
  if (opts.archive.length > 0) args["archives"] = [...opts.archive];
  if (opts.trustedKey.length > 0) {
    args["trusted_keys"] = opts.trustedKey.map((f) => {
      try {
        return fs.readFileSync(f).toString("base64");
      } catch (err) {
        throw usageError(
          `--trusted-key ${f}: cannot read it (${(err as NodeJS.ErrnoException).code})`,
        );
      }
    });
  }
  return {
    buildType: "binarypackage",
    chroot: await localFile("chroot", chrootTarball),
    files,
    args,
    steps: [
      "unpack",
      "mount",
      ...(opts.archive.length ? ["sources"] : []),
      ...(opts.trustedKey.length ? ["keys"] : []),
      "update",
      "upgrade",
      "unpack-source",
      "install-deps",
      "build",
    ],
    cleanup: () => undefined,
  };
}
