// The keys of a build's `args`: those every build may carry, and the one check that
// refuses a key no one declared. A typo must not pass as an OK build that silently did
// less (`artifact` collecting nothing, `timout` setting no limit), so an unknown key is
// refused by build() before anything changes, with the nearest known name.

import { invalidArgument } from "../errors.js";
import type { Struct } from "../protocol/values.js";
import type { ArgSpec, BuildType, InputFile } from "./buildtype.js";

/** Keys any build may carry, whatever its type; the builder itself acts on them. */
export const COMMON_ARGUMENTS: readonly ArgSpec[] = [
  { name: "build_url", use: "used", doc: "written as the first line of the build log" },
  {
    name: "build_requires",
    use: "used",
    doc: "capabilities the build needs (see configuration.md); refused when they are not met",
  },
];

/** Every key a build of this type accepts: the common ones, then the type's own. */
export function argumentsOf(type: Pick<BuildType, "arguments">): readonly ArgSpec[] {
  return [...COMMON_ARGUMENTS, ...type.arguments];
}

/**
 * Edit distance with adjacent transpositions (optimal string alignment), so that
 * `timout`, `tiemout` and `artifact` are each one edit from what was meant.
 */
export function editDistance(a: string, b: string): number {
  const d: number[][] = Array.from({ length: a.length + 1 }, (_, i) =>
    Array.from({ length: b.length + 1 }, (_, j) => (i === 0 ? j : j === 0 ? i : 0)),
  );
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      let best = Math.min(d[i - 1]![j]! + 1, d[i]![j - 1]! + 1, d[i - 1]![j - 1]! + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) {
        best = Math.min(best, d[i - 2]![j - 2]! + 1);
      }
      d[i]![j] = best;
    }
  }
  return d[a.length]![b.length]!;
}

/**
 * The known name closest to `name`, or null when none is close: at most a third of the
 * longer name's letters differ (at least one may), ignoring case. A wild guess helps no
 * one, so `xyz` gets no suggestion.
 */
export function nearestName(name: string, known: readonly string[]): string | null {
  let best: string | null = null;
  let bestDistance = Infinity;
  for (const candidate of known) {
    const distance = editDistance(name.toLowerCase(), candidate.toLowerCase());
    const allowed = Math.max(1, Math.floor(Math.max(name.length, candidate.length) / 3));
    if (distance <= allowed && distance < bestDistance) {
      best = candidate;
      bestDistance = distance;
    }
  }
  return best;
}

/**
 * Refuse every key of `args` that this type does not declare, all named in one fault
 * (so a manager with two typos learns of both at once), each with its nearest key.
 */
export function checkArgumentNames(
  type: Pick<BuildType, "name" | "arguments">,
  args: Struct,
): void {
  const known = argumentsOf(type).map((a) => a.name);
  const unknown = Object.keys(args).filter((key) => !known.includes(key));
  if (unknown.length === 0) return;
  const nearest = (key: string): string | null => nearestName(key, known);
  const quote = (key: string): string => JSON.stringify(key.slice(0, 80));
  let what: string;
  if (unknown.length === 1) {
    const key = unknown[0]!;
    const near = nearest(key);
    what = `unknown argument ${quote(key)}${near === null ? "." : `; did you mean ${quote(near)}?`}`;
  } else {
    const listed = unknown.slice(0, 10).map((key) => {
      const near = nearest(key);
      return near === null ? quote(key) : `${quote(key)} (did you mean ${quote(near)}?)`;
    });
    const more =
      unknown.length > listed.length ? ` and ${unknown.length - listed.length} more` : "";
    what = `unknown arguments ${listed.join(", ")}${more}.`;
  }
  throw invalidArgument(
    `${type.name} build: ${what} Known arguments of ${type.name} builds: ${known.join(", ")} (see docs/buildtypes.md)`,
  );
}

/** What build() calls: the shared check of the names, then the type's own parsing. */
export function parseBuildArgs<A>(
  type: BuildType<A>,
  args: Struct,
  filemap: Readonly<Record<string, InputFile>>,
): A {
  checkArgumentNames(type, args);
  return type.parseArgs(args, filemap);
}
