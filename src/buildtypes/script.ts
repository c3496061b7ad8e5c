// The `script` build type (ours): run a project's steps, Buildbot style, in the
// workspace unpacked from the chroot_sha1 tarball.
//
// Arguments:
//   steps        list of {name, run}; run is an argv list, or a string for /bin/sh -c
//   environment  struct of strings, added to every step's environment
//   secrets      struct of strings, added to the environment like `environment`, but
//                scrubbed from the log and never stored in the journal
//   artifacts    list of globs relative to the workspace; matches become results,
//                named by their relative path
//   timeout      seconds for the whole build; past it the running step is killed
//   image_type   "chroot" runs the steps inside the unpacked chroot instead of on the host
//
// All steps exit 0 → OK. A step exits non-zero or the timeout passes → PACKAGEFAIL (the
// log says which step and why); later steps do not run; artifacts are still collected.

import path from "node:path";
import { describeError, invalidArgument } from "../errors.js";
import { isStruct, type Struct, type Value } from "../protocol/values.js";
import { BuildStatus } from "../protocol/states.js";
import type { ArgSpec, BuildContext, BuildOutcome, BuildType, ResultFile } from "./buildtype.js";
import { isSafeRelativeName } from "../protocol/names.js";

export interface ScriptStep {
  readonly name: string;
  readonly argv: readonly string[];
}

export interface ScriptArgs {
  readonly steps: readonly ScriptStep[];
  readonly environment: Readonly<Record<string, string>>;
  readonly secrets: Readonly<Record<string, string>>;
  readonly artifacts: readonly string[];
  readonly timeoutSeconds: number | null;
  readonly imageType: "host" | "chroot";
}

const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;

function stringStruct(v: Value | undefined, what: string): Record<string, string> {
  if (v === undefined || v === null) return {};
  if (!isStruct(v)) {
    throw invalidArgument(`script build: ${what} must be a struct of strings`);
  }
  const out: Record<string, string> = {};
  for (const [k, val] of Object.entries(v)) {
    if (!ENV_NAME.test(k))
      throw invalidArgument(
        `script build: ${what} name ${JSON.stringify(k)} is not a valid environment variable name`,
      );
    if (typeof val !== "string")
      throw invalidArgument(`script build: ${what}.${k} must be a string`);
    out[k] = val;
  }
  return out;
}

function parseStep(v: Value, i: number): ScriptStep {
  const where = `script build: steps[${i}]`;
  if (!isStruct(v)) {
    throw invalidArgument(`${where} must be a struct {name, run}`);
  }
  const { name, run } = v;
  if (typeof name !== "string" || name.trim() === "")
    throw invalidArgument(`${where}.name must be a non-empty string`);
  if (typeof run === "string") {
    if (run.trim() === "") throw invalidArgument(`${where}.run must not be empty`);
    return { name, argv: ["/bin/sh", "-c", run] };
  }
  if (Array.isArray(run) && run.length > 0 && run.every((a) => typeof a === "string")) {
    return { name, argv: run as string[] };
  }
  throw invalidArgument(`${where}.run must be a string or a non-empty list of strings`);
}

const SCRIPT_ARGUMENTS: readonly ArgSpec[] = [
  { name: "steps", use: "used", doc: "the steps, in order: a list of `{name, run}`" },
  { name: "environment", use: "used", doc: "variables added to every step's environment" },
  {
    name: "secrets",
    use: "used",
    doc: "variables like `environment`, masked in the log, never journaled",
  },
  { name: "artifacts", use: "used", doc: "globs in the workspace whose matches are results" },
  { name: "timeout", use: "used", doc: "seconds for the whole build" },
  { name: "image_type", use: "used", doc: '`"host"` (default) or `"chroot"`' },
];

export const scriptBuildType: BuildType<ScriptArgs> = {
  name: "script",

  arguments: SCRIPT_ARGUMENTS,

  backendFor: (args) => args.imageType,

  parseArgs(args: Struct): ScriptArgs {
    const steps = args["steps"];
    if (!Array.isArray(steps) || steps.length === 0) {
      throw invalidArgument("script build: steps must be a non-empty list of {name, run}");
    }
    const artifacts = args["artifacts"] ?? [];
    if (
      !Array.isArray(artifacts) ||
      !artifacts.every(
        (a) => typeof a === "string" && isSafeRelativeName(a.replace(/[*?[\]{}]/g, "x")),
      )
    ) {
      throw invalidArgument(
        "script build: artifacts must be a list of relative glob patterns inside the workspace",
      );
    }
    const timeout = args["timeout"] ?? null;
    if (timeout !== null && (typeof timeout !== "number" || !(timeout > 0))) {
      throw invalidArgument("script build: timeout must be a positive number of seconds");
    }
    const imageType = args["image_type"] ?? "host";
    if (imageType !== "host" && imageType !== "chroot") {
      throw invalidArgument(
        `script build: image_type must be "host" or "chroot", got ${JSON.stringify(imageType)}`,
      );
    }
    return {
      steps: steps.map(parseStep),
      environment: stringStruct(args["environment"], "environment"),
      secrets: stringStruct(args["secrets"], "secrets"),
      artifacts: artifacts as string[],
      timeoutSeconds: timeout,
      imageType,
    };
  },

  timeoutMs: (args) => (args.timeoutSeconds === null ? null : args.timeoutSeconds * 1000),

  secrets: (args) => Object.values(args.secrets),

  journalArgs(args: Struct): Struct {
    const copy: Struct = { ...args };
    const secrets = args["secrets"];
    if (isStruct(secrets)) {
      copy["secrets"] = Object.fromEntries(Object.keys(secrets).map((k) => [k, "********"]));
    }
    return copy;
  },

  async run(ctx: BuildContext, args: ScriptArgs): Promise<BuildOutcome> {
    const env = { ...ctx.env, ...args.environment, ...args.secrets };
    let status: BuildOutcome["status"] = BuildStatus.OK;
    for (const step of args.steps) {
      if (ctx.stopping) break;
      const r = await ctx.runStep(step.name, step.argv, { env });
      if (r.stopped) break;
      if (r.exitCode !== 0) {
        const how = r.signal ? `was killed by ${r.signal}` : `exited with status ${r.exitCode}`;
        ctx.log.write(`[buildd] step "${step.name}" ${how}; the build failed\n`);
        status = BuildStatus.PACKAGEFAIL;
        break;
      }
    }
    return { status, results: await collectArtifacts(ctx, args.artifacts) };
  },
};

/**
 * The files the artifact globs match, relative to where the steps ran (the workspace on
 * the host, /build in a chroot). Everything goes through the backend's tree (inroot.ts):
 * the walk never passes a link, and each result must be a regular file reached without
 * leaving the tree. A pattern without wildcards names one file, so when the walk did not
 * find it (it is missing, or a link) the log says why it was not collected.
 */
async function collectArtifacts(
  ctx: BuildContext,
  patterns: readonly string[],
): Promise<ResultFile[]> {
  if (patterns.length === 0) return [];
  const tree = ctx.backend.tree;
  const base = ctx.backend.defaultCwd;
  const { isDynamicPattern } = await import("tinyglobby");
  const found = new Set(await tree.glob(base, patterns));
  const named = patterns.filter((p) => !isDynamicPattern(p) && !found.has(p));
  const results: ResultFile[] = [];
  for (const rel of [...found, ...new Set(named)].sort()) {
    try {
      results.push({ name: rel, path: tree.regularFile(path.posix.join(base, rel)) });
    } catch (err) {
      ctx.log.write(`[buildd] artifact ${rel} not collected: ${describeError(err)}\n`);
    }
  }
  ctx.log.write(`[buildd] collected ${results.length} artifact(s)\n`);
  return results;
}
