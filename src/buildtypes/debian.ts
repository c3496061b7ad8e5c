// Reading what Debian's tools write: .changes and .dsc files and apt's complaints about
// build dependencies. Pure functions, unit-tested against real output.

import { isSafeComponent } from "../protocol/names.js";

/**
 * File names listed in a multi-line field whose lines end with a file name: `Files`
 * (.changes: md5 size section priority name; .dsc: md5 size name) or `Checksums-Sha256`
 * (digest size name).
 */
function namesInSection(text: string, section: string): string[] {
  const out: string[] = [];
  const header = new RegExp(`^${section}:\\s*$`);
  let inside = false;
  for (const line of text.split("\n")) {
    if (header.test(line)) {
      inside = true;
    } else if (inside && /^[ \t]/.test(line)) {
      const fields = line.trim().split(/\s+/);
      if (fields.length >= 3) out.push(fields.at(-1)!);
    } else {
      inside = false;
    }
  }
  return out;
}

/** File names listed in the Files: section of a .changes (or .dsc) file. */
export function filesOfChanges(text: string): string[] {
  return namesInSection(text, "Files");
}

/** What build() needs to know of a .dsc: the source package and the files it consists of. */
export interface SourceControl {
  readonly source: string;
  /** Every file the .dsc lists (Files and Checksums-Sha256), each a safe file name. */
  readonly files: readonly string[];
}

/**
 * Read a .dsc's text (clearsigned or not). Throws an Error saying what is wrong when it
 * is not a source control file: no Format or Source field, no files, or a listed name
 * that is not a plain file name.
 */
export function parseDsc(text: string): SourceControl {
  if (field(text, "Format") === null)
    throw new Error("it has no Format field, so it is not a Debian source control file");
  const source = field(text, "Source");
  if (source === null || source === "") throw new Error("it has no Source field");
  const files = [
    ...new Set([...namesInSection(text, "Files"), ...namesInSection(text, "Checksums-Sha256")]),
  ];
  if (files.length === 0) throw new Error("its Files field lists no files");
  const unsafe = files.find((name) => !isSafeComponent(name));
  if (unsafe !== undefined)
    throw new Error(`it lists ${JSON.stringify(unsafe.slice(0, 80))}, which is not a file name`);
  return { source, files };
}

/** The value of a field in a deb822 paragraph (first paragraph, continuation lines joined). */
export function field(text: string, name: string): string | null {
  const re = new RegExp(`^${name}:[ \\t]*(.*(?:\\n[ \\t].*)*)`, "mi");
  const m = re.exec(text);
  return m ? m[1]!.replace(/\n[ \t]+/g, " ").trim() : null;
}

/** Remove architecture qualifiers (the part after a colon, e.g. any or amd64) and restrictions: `foo (>= 1) [amd64] <!nocheck>` → `foo (>= 1)`. */
export function stripQualifiers(dep: string): string {
  return dep
    .replace(/\[[^\]]*\]/g, "")
    .replace(/<[^>]*>/g, "")
    .replace(/^(\s*[a-z0-9][a-z0-9+.-]*):[a-z0-9-]+/i, "$1")
    .replace(/\s+/g, " ")
    .trim();
}

/**
 * What apt could not satisfy, from `apt-get build-dep` output, e.g.
 *   builddeps:/build/foo.dsc : Depends: libfoo-dev (>= 1.2) but it is not installable
 * Returns the dependencies joined with ", ", or null when the output shows no such line.
 */
export function unmetDependencies(aptOutput: string): string | null {
  const deps = new Set<string>();
  const re =
    /Depends: ([^\n]+?) but (?:it is not installable|it is a virtual package|it is not going to be installed|[^\n]+ is to be installed|[^\n]+ is installed)\s*$/gm;
  for (const m of aptOutput.matchAll(re)) deps.add(stripQualifiers(m[1]!));
  // apt ≥ 2.x for a package it has never heard of
  for (const m of aptOutput.matchAll(/Unable to locate package ([^\s]+)/g))
    deps.add(stripQualifiers(m[1]!));
  return deps.size > 0 ? [...deps].join(", ") : null;
}

/** A transient archive problem (worth retrying elsewhere): GIVENBACK. */
export function isTransientArchiveFailure(aptOutput: string): boolean {
  return /^(E|W): (Failed to fetch|Some index files failed to download|Unable to fetch some archives)|Temporary failure resolving|Hash Sum mismatch|Could not connect to|Connection timed out/m.test(
    aptOutput,
  );
}
