// The values an XML-RPC message carries, and how the scalar ones are read from text.

import { BuilddError } from "../errors.js";

import type { Struct, Value } from "../protocol/values.js";

/** On the wire, exactly the neutral values of src/protocol/values.ts. */
export type XmlRpcStruct = Struct;
export type XmlRpcValue = Value;

export interface MethodCall {
  methodName: string;
  params: XmlRpcValue[];
}

export interface Fault {
  faultCode: number;
  faultString: string;
}

export type MethodResponse =
  { kind: "value"; value: XmlRpcValue } | { kind: "fault"; fault: Fault };

export interface DecodeLimits {
  /** How many `<value>` elements may enclose one another (the outermost counts as 1). */
  maxDepth: number;
}

export const DEFAULT_DECODE_LIMITS: Readonly<DecodeLimits> = Object.freeze({ maxDepth: 64 });

/**
 * Stores a member as a plain own property whatever its name. Plain assignment of
 * `__proto__` would call the Object.prototype setter and swap the struct's prototype,
 * letting a request decide what every lookup on the struct inherits.
 */
export function setMember(struct: XmlRpcStruct, key: string, value: XmlRpcValue): void {
  if (key === "__proto__") {
    Object.defineProperty(struct, key, {
      value,
      enumerable: true,
      writable: true,
      configurable: true,
    });
  } else {
    struct[key] = value;
  }
}

export const WHITESPACE = /^[ \t\r\n]*$/;
const INT = /^[+-]?[0-9]+$/;
const DOUBLE = /^[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?$/;
// Backreferences make the dashes (and the colons) all-or-nothing: 1998-0717 is refused.
const DATETIME =
  /^([0-9]{4})(-?)([0-9]{2})\2([0-9]{2})T([0-9]{2})(:?)([0-9]{2})\6([0-9]{2})(?:\.([0-9]{1,9}))?(?:(Z)|([+-])([0-9]{2}):?([0-9]{2}))?$/;
const BASE64 = /^[A-Za-z0-9+/]*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;
const BASE64_SPACE = /[ \t\r\n]+/g;
const DAYS_IN_MONTH = [31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];

export function fail(message: string): BuilddError {
  return new BuilddError("BUILDD_ERR_DESERIALIZE", message);
}

/** Quotes offending input in messages, cut short so a huge payload cannot flood a log. */
export function show(s: string): string {
  return JSON.stringify(s.length > 40 ? `${s.slice(0, 40)}…` : s);
}

function trim(s: string): string {
  return s.replace(/^[ \t\r\n]+|[ \t\r\n]+$/g, "");
}

function parseInteger(tag: string, raw: string): number {
  const s = trim(raw);
  if (!INT.test(s)) throw fail(`invalid <${tag}> value ${show(s)}`);
  const n = Number(s);
  if (!Number.isSafeInteger(n)) throw fail(`<${tag}> value ${show(s)} is out of range`);
  return n === 0 ? 0 : n; // "-0" must not become a negative zero
}

function parseDouble(raw: string): number {
  const s = trim(raw);
  if (!DOUBLE.test(s)) throw fail(`invalid <double> value ${show(s)}`);
  const n = Number(s);
  if (!Number.isFinite(n)) throw fail(`<double> value ${show(s)} is out of range`);
  return n;
}

function parseDateTime(raw: string): Date {
  const s = trim(raw);
  const m = DATETIME.exec(s);
  const bad = (): BuilddError => fail(`invalid <dateTime.iso8601> value ${show(s)}`);
  if (m === null) throw bad();
  const num = (i: number): number => Number(m[i] ?? 0);
  // prettier-ignore
  const [y, mo, d, h, mi, sec, oh, om] =
    [num(1), num(3), num(4), num(5), num(7), num(8), num(12), num(13)];
  const leap = y % 4 === 0 && (y % 100 !== 0 || y % 400 === 0);
  const monthDays = mo === 2 && leap ? 29 : (DAYS_IN_MONTH[mo - 1] ?? 0);
  if (d < 1 || d > monthDays || h > 23 || mi > 59 || sec > 59 || oh > 23 || om > 59) throw bad();
  const ms = m[9] === undefined ? 0 : Number(m[9].slice(0, 3).padEnd(3, "0"));
  const offset = m[11] === undefined ? 0 : (m[11] === "-" ? -1 : 1) * (oh * 60 + om);
  // Date.UTC maps years 0-99 to 1900-1999; setUTCFullYear does not.
  const date = new Date(0);
  date.setUTCFullYear(y, mo - 1, d);
  date.setUTCHours(h, mi, sec, ms);
  return new Date(date.getTime() - offset * 60_000);
}

function parseBase64(raw: string): Buffer {
  const s = raw.replace(BASE64_SPACE, "");
  if (s.length % 4 !== 0 || !BASE64.test(s)) {
    throw fail("invalid <base64> value (bad character, length or padding)");
  }
  return Buffer.from(s, "base64");
}

export function parseScalar(tag: string, text: string): XmlRpcValue {
  switch (tag) {
    case "string":
      return text;
    case "int":
    case "i4":
    case "i8":
      return parseInteger(tag, text);
    case "boolean": {
      const s = trim(text);
      if (s === "1") return true;
      if (s === "0") return false;
      throw fail(`invalid <boolean> value ${show(s)} (must be 0 or 1)`);
    }
    case "double":
      return parseDouble(text);
    case "dateTime.iso8601":
      return parseDateTime(text);
    case "base64":
      return parseBase64(text);
    default: // nil
      if (!WHITESPACE.test(text)) throw fail("<nil> must be empty");
      return null;
  }
}
