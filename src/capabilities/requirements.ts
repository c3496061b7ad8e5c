// A build's requirements: `name` or `name OP version`, with Debian's operators
// (`<<`, `<=`, `=`, `>=`, `>>`) and `<` / `>` as the strict ones (dpkg's old `<` meant
// `<=`, which surprises everyone; here they mean what they look like).

import { compareVersions, isValidVersion } from "../protocol/debian-version.js";

export type Operator = "<<" | "<=" | "=" | ">=" | ">>";

export interface Requirement {
  readonly name: string;
  readonly op: Operator | null;
  readonly version: string | null;
  /** As the build wrote it, normalised (`postgresql >= 15`), for messages. */
  readonly text: string;
}

// The version may not start with an operator character, so that "pg >=" is not read as
// "pg > =".
const REQUIREMENT =
  /^\s*([A-Za-z0-9][A-Za-z0-9._+-]*)\s*(?:(<<|<=|>=|>>|=|<|>)\s*([^\s<>=]\S*))?\s*$/;

/** Parse one requirement; the error message says what is wrong (for a fault). */
export function parseRequirement(text: string): Requirement {
  const m = REQUIREMENT.exec(text);
  if (!m) {
    throw new Error(
      `${JSON.stringify(text)} is not a requirement (expected "name" or "name OP version", OP one of << <= = >= >>)`,
    );
  }
  const name = m[1]!;
  const rawOp = m[2];
  if (rawOp === undefined) return { name, op: null, version: null, text: name };
  const op: Operator = rawOp === "<" ? "<<" : rawOp === ">" ? ">>" : (rawOp as Operator);
  const version = m[3]!;
  if (!isValidVersion(version)) {
    throw new Error(`${JSON.stringify(text)}: ${JSON.stringify(version)} is not a valid version`);
  }
  return { name, op, version, text: `${name} ${op} ${version}` };
}

/** Whether a capability of this version satisfies the requirement (name not checked). */
export function satisfies(req: Requirement, version: string | null): boolean {
  if (req.op === null || req.version === null) return true;
  // A capability declared without a version cannot be compared: it meets only `name`.
  if (version === null) return false;
  const c = compareVersions(version, req.version);
  switch (req.op) {
    case "<<":
      return c < 0;
    case "<=":
      return c <= 0;
    case "=":
      return c === 0;
    case ">=":
      return c >= 0;
    case ">>":
      return c > 0;
  }
}
