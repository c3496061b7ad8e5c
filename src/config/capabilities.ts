// The two line-oriented config sections, which INI cannot carry (a name may appear
// several times, and a line has positional words):
//
//   [capabilities]
//   postgresql 15 port=5432 host=/tmp/pg bin=/usr/lib/postgresql/15/bin
//   selenium-server 4.1 probe="curl -sf http://127.0.0.1:4444/status"
//   private-repo-access
//
//   [capability_env]
//   rabbitmq RMQ_BASE_URI=base_uri
//
// Each mistake names the file and line, like the rest of the config's errors.

import { BuilddError } from "../errors.js";
import { CAPABILITY_NAME } from "../protocol/names.js";
import { compareVersions, isValidVersion } from "../protocol/debian-version.js";

export interface CapabilityDecl {
  readonly name: string;
  /** Null when the line gives none: such a capability meets only a bare `name`. */
  readonly version: string | null;
  readonly properties: Readonly<Record<string, string>>;
}

/** Per capability name: environment variable → property it is taken from. */
export type CapabilityEnvMap = Readonly<Record<string, Readonly<Record<string, string>>>>;

/** One line of a raw section, with its line number in the file (1-based). */
export interface RawLine {
  readonly line: number;
  readonly text: string;
}

export const PROPERTY_NAME = /^[A-Za-z_][A-Za-z0-9_.-]*$/;
export const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;

const isSpace = (c: string | undefined): boolean => c === " " || c === "\t";

/**
 * Split a line into words on blanks. A value may be double quoted (`probe="a b"`), with
 * `\"` and `\\` as escapes inside; quotes anywhere else are a mistake worth reporting.
 */
function words(text: string): string[] {
  const out: string[] = [];
  let i = 0;
  while (i < text.length) {
    while (isSpace(text[i])) i++;
    if (i >= text.length) break;
    let word = "";
    while (i < text.length && !isSpace(text[i])) {
      if (text[i] !== '"') {
        word += text[i++];
        continue;
      }
      if (!word.endsWith("=") || word.indexOf("=") !== word.length - 1) {
        throw new Error('a quote may only open a value (key="…")');
      }
      i++;
      let closed = false;
      while (i < text.length) {
        const c = text[i]!;
        const next = text[i + 1];
        if (c === "\\" && (next === '"' || next === "\\")) {
          word += next;
          i += 2;
        } else if (c === '"') {
          closed = true;
          i++;
          break;
        } else {
          word += c;
          i++;
        }
      }
      if (!closed) throw new Error("unterminated quote");
      if (i < text.length && !isSpace(text[i])) {
        throw new Error("a closing quote must end the value");
      }
    }
    out.push(word);
  }
  return out;
}

function lineError(file: string, line: number, section: string, what: string): BuilddError {
  return new BuilddError("BUILDD_ERR_CONFIG", `${file} line ${line}: [${section}] ${what}`);
}

/** Lines that say something: not blank, not an INI comment. */
function meaningful(lines: readonly RawLine[]): RawLine[] {
  return lines.filter((l) => {
    const t = l.text.trim();
    return t !== "" && !t.startsWith("#") && !t.startsWith(";");
  });
}

function splitPair(word: string): [string, string] {
  const eq = word.indexOf("=");
  return [word.slice(0, eq), word.slice(eq + 1)];
}

export function parseCapabilities(lines: readonly RawLine[], file: string): CapabilityDecl[] {
  const decls: (CapabilityDecl & { line: number })[] = [];
  for (const { line, text } of meaningful(lines)) {
    const fail = (what: string): BuilddError => lineError(file, line, "capabilities", what);
    let ws: string[];
    try {
      ws = words(text.trim());
    } catch (err) {
      throw fail((err as Error).message);
    }
    const [name, ...rest] = ws as [string, ...string[]];
    if (name.includes("=")) {
      throw fail(
        `"${name}": a key=value without a name (a line starts with the capability's name)`,
      );
    }
    if (!CAPABILITY_NAME.test(name)) throw fail(`"${name}" is not a valid capability name`);
    let version: string | null = null;
    if (rest[0] !== undefined && !rest[0].includes("=")) {
      version = rest.shift()!;
      if (!isValidVersion(version)) {
        throw fail(`"${version}" is not a valid version for ${name} (Debian version syntax)`);
      }
    }
    const properties: Record<string, string> = {};
    for (const word of rest) {
      if (!word.includes("=")) {
        throw fail(`unexpected "${word}": after the name and version only key=value may follow`);
      }
      const [key, value] = splitPair(word);
      if (!PROPERTY_NAME.test(key)) throw fail(`"${key}" is not a valid property name`);
      if (Object.hasOwn(properties, key)) throw fail(`property "${key}" is given twice`);
      properties[key] = value;
    }
    const twin = decls.find(
      (d) =>
        d.name === name &&
        (d.version === null || version === null
          ? d.version === version
          : compareVersions(d.version, version) === 0),
    );
    if (twin) {
      throw fail(
        `${name}${version === null ? "" : ` ${version}`} is declared twice (first on line ${twin.line})`,
      );
    }
    decls.push({ name, version, properties, line });
  }
  return decls.map(({ name, version, properties }) => ({ name, version, properties }));
}

export function parseCapabilityEnv(lines: readonly RawLine[], file: string): CapabilityEnvMap {
  const out: Record<string, Record<string, string>> = {};
  const firstLine = new Map<string, number>();
  for (const { line, text } of meaningful(lines)) {
    const fail = (what: string): BuilddError => lineError(file, line, "capability_env", what);
    let ws: string[];
    try {
      ws = words(text.trim());
    } catch (err) {
      throw fail((err as Error).message);
    }
    const [name, ...pairs] = ws as [string, ...string[]];
    if (name.includes("=")) {
      throw fail(`"${name}": a VAR=property without a capability name before it`);
    }
    if (!CAPABILITY_NAME.test(name)) throw fail(`"${name}" is not a valid capability name`);
    const first = firstLine.get(name);
    if (first !== undefined)
      throw fail(`mappings for ${name} are given twice (first on line ${first})`);
    if (pairs.length === 0) throw fail(`${name}: no VAR=property mappings`);
    const map: Record<string, string> = {};
    for (const word of pairs) {
      if (!word.includes("=")) throw fail(`"${word}" is not VAR=property`);
      const [variable, property] = splitPair(word);
      if (!ENV_NAME.test(variable)) {
        throw fail(`"${variable}" is not a valid environment variable name`);
      }
      if (!PROPERTY_NAME.test(property)) throw fail(`"${property}" is not a valid property name`);
      if (Object.hasOwn(map, variable)) throw fail(`${variable} is mapped twice`);
      map[variable] = property;
    }
    firstLine.set(name, line);
    out[name] = map;
  }
  return out;
}
