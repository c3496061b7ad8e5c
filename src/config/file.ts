// The text of buildd.conf → sections of keys, each with the line it came from. Pure: the
// caller reads the file.
//
// We read INI ourselves instead of through the `ini` package because that package
// changes values silently: it cuts an unquoted value at the first `;` or `#`
// (`password = s3c;ret` became "s3c"), turns `\;` into `;`, keeps the quotes of a
// malformed quoted value, makes a line without `=` the value `true` and lets a repeated
// key overwrite the first. The rule here: a value is read exactly as written, or the
// file is refused with the line, the key and how to write it instead.
//
//   - `;` or `#` start a comment at the start of a line, or after a value when a blank
//     comes before them (`max_size = 20G ; the budget`);
//   - glued to a value (`s3c;ret`) they are refused: the value would look whole but be
//     cut; the message shows the value double-quoted, which keeps it;
//   - a double-quoted value is a JSON string (`"pa;ss#word"`, `"say \"hi\""`).

import { BuilddError } from "../errors.js";
import type { RawLine } from "./capabilities.js";

/** One `key = value` of the file. */
export interface RawValue {
  readonly value: string;
  readonly line: number;
}

export interface ConfigText {
  /** INI sections: section → key → value. */
  readonly sections: ReadonlyMap<string, ReadonlyMap<string, RawValue>>;
  /** Sections read line by line (see LINE_SECTIONS), with their line numbers. */
  readonly lines: ReadonlyMap<string, readonly RawLine[]>;
}

export interface ParseOptions {
  /** Sections that are not INI: kept as lines for their own parser. */
  readonly lineSections: ReadonlySet<string>;
  /** Whether an INI section exists. */
  readonly hasSection: (section: string) => boolean;
  /**
   * A key of a section: undefined if there is no such key, else whether its value is a
   * secret that must never appear in a message. Unknown names are refused before their
   * value is read, so a misspelt password key is never echoed either.
   */
  readonly key: (section: string, key: string) => { readonly secret: boolean } | undefined;
}

const HEADER = /^\s*\[([^\]]*)\]\s*(?:[;#].*)?$/;
const COMMENT_LINE = /^\s*(?:[;#].*)?$/;

/** A line that cannot be read as written: named by its number, like [capabilities] lines. */
function lineError(where: string, line: number, message: string): BuilddError {
  return new BuilddError("BUILDD_ERR_CONFIG", `${where} line ${line}: ${message}`);
}

/** A section or key that does not exist: its name is enough to find the line. */
function fileError(where: string, message: string): BuilddError {
  return new BuilddError("BUILDD_ERR_CONFIG", `${where}: ${message}`);
}

export function parseConfigText(text: string, where: string, opts: ParseOptions): ConfigText {
  const sections = new Map<string, Map<string, RawValue>>();
  const lines = new Map<string, RawLine[]>();
  let keys: Map<string, RawValue> | null = null;
  let section: string | null = null;
  let rawLines: RawLine[] | null = null;

  for (const [i, content] of text.split(/\r?\n/).entries()) {
    const line = i + 1;
    const header = HEADER.exec(content);
    if (header) {
      section = header[1]!.trim();
      if (opts.lineSections.has(section)) {
        rawLines = lines.get(section) ?? [];
        lines.set(section, rawLines);
        keys = null;
      } else {
        if (!opts.hasSection(section)) throw fileError(where, `unknown section [${section}]`);
        rawLines = null;
        keys = sections.get(section) ?? new Map<string, RawValue>();
        sections.set(section, keys);
      }
      continue;
    }
    if (rawLines) {
      rawLines.push({ line, text: content });
      continue;
    }
    if (COMMENT_LINE.test(content)) continue;
    const eq = content.indexOf("=");
    if (eq < 0) {
      const inSection = section === null ? "" : `[${section}] `;
      throw lineError(
        where,
        line,
        `${inSection}"${content.trim()}" is not a "key = value" line, a [section] or a comment`,
      );
    }
    const key = content.slice(0, eq).trim();
    if (keys === null || section === null) {
      throw lineError(where, line, `key "${key}" is outside any [section]`);
    }
    const spec = opts.key(section, key);
    if (!spec) throw fileError(where, `unknown key "${key}" in section [${section}]`);
    const name = `[${section}] ${key}`;
    const first = keys.get(key);
    if (first) {
      throw lineError(where, line, `${name} is set twice (first on line ${first.line})`);
    }
    const value = readValue(content.slice(eq + 1).trim(), key, spec.secret, (message) =>
      lineError(where, line, `${name}: ${message}`),
    );
    keys.set(key, { value, line });
  }
  return { sections, lines };
}

/** A blank: what must come before a `;` or `#` for it to start a comment. */
const isBlank = (c: string | undefined): boolean => c === " " || c === "\t";

/** The value written after `=` (already trimmed), read by the rules at the top. */
function readValue(
  written: string,
  key: string,
  secret: boolean,
  fail: (message: string) => BuilddError,
): string {
  const quoted = (value: string): string => `${key} = ${secret ? '"…"' : JSON.stringify(value)}`;
  if (written.startsWith('"')) return readQuoted(written, secret, fail);
  if (written.length >= 2 && written.startsWith("'") && written.endsWith("'")) {
    throw fail(
      `single quotes are kept as part of a value; to quote it, use double quotes: ${quoted(written.slice(1, -1))}`,
    );
  }
  for (let i = 0; i < written.length; i++) {
    const c = written[i]!;
    if (c !== ";" && c !== "#") continue;
    if (i === 0) {
      throw fail(
        `the value starts with "${c}", which would start a comment and leave the value empty; ` +
          `if "${c}" is part of the value, double-quote it: ${quoted(written)}; ` +
          `for an empty value write nothing after "="`,
      );
    }
    if (isBlank(written[i - 1])) return written.slice(0, i).trimEnd();
    const cut = secret ? "" : ` to "${written.slice(0, i)}"`;
    throw fail(
      `"${c}" would start a comment and cut the value${cut}; ` +
        `if it is part of the value, double-quote the value: ${quoted(written)}; ` +
        `if it starts a comment, put a blank before it`,
    );
  }
  return written;
}

/** A double-quoted value: a JSON string, then nothing but blanks and maybe a comment. */
function readQuoted(
  written: string,
  secret: boolean,
  fail: (message: string) => BuilddError,
): string {
  let end = 1;
  while (end < written.length && written[end] !== '"') end += written[end] === "\\" ? 2 : 1;
  if (end >= written.length) {
    throw fail('the double quote is not closed (inside quotes write \\" for a quote)');
  }
  const rest = written.slice(end + 1);
  if (!/^(?:[ \t]+[;#].*)?[ \t]*$/.test(rest)) {
    throw fail(
      `unexpected text after the closing double quote${secret ? "" : `: ${JSON.stringify(rest.trim())}`}`,
    );
  }
  try {
    const value: unknown = JSON.parse(written.slice(0, end + 1));
    if (typeof value === "string") return value;
  } catch {
    // reported below
  }
  throw fail(
    `${secret ? "the value" : written.slice(0, end + 1)} is not a valid double-quoted string ` +
      '(inside quotes write \\" for a quote and \\\\ for a backslash)',
  );
}
