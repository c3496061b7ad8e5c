// XML-RPC encoding: strings are pushed onto one array and joined once, and text is only
// run through the escaping regex when a cheap test says it needs it.

import { BuilddError } from "../errors.js";
import type { Fault, XmlRpcValue } from "./values.js";

const HEAD = '<?xml version="1.0"?>\n';
const INT32_MIN = -2147483648;
const INT32_MAX = 2147483647;

// Besides markup, this catches what XML 1.0 cannot carry at all: most C0 controls,
// U+FFFE/U+FFFF and surrogate halves. \r is escaped rather than replaced because a
// literal one would be read back as \n by any conforming parser.
// eslint-disable-next-line no-control-regex
const NEEDS_ESCAPE = /[&<>\r\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]/;
// Surrogate pairs are matched whole so that only lone halves are replaced.
const ESCAPE =
  // eslint-disable-next-line no-control-regex
  /[&<>\r\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]|[\ud800-\udbff][\udc00-\udfff]|[\ud800-\udfff]/g;

function escapeChar(c: string): string {
  switch (c) {
    case "&":
      return "&amp;";
    case "<":
      return "&lt;";
    case ">":
      return "&gt;";
    case "\r":
      return "&#13;";
    default:
      // Build logs are full of ANSI escapes; losing one character beats losing the reply.
      return c.length === 2 ? c : "\ufffd";
  }
}

function escapeText(s: string): string {
  return NEEDS_ESCAPE.test(s) ? s.replace(ESCAPE, escapeChar) : s;
}

/** Raised inside the encoder; carries the path to the bad value out of the recursion. */
class Unencodable extends Error {
  readonly path: string[] = [];
}

function pad(n: number, width: number): string {
  return String(n).padStart(width, "0");
}

function encodeDate(d: Date): string {
  if (Number.isNaN(d.getTime())) throw new Unencodable("an invalid Date");
  const year = d.getUTCFullYear();
  if (year < 0 || year > 9999) throw new Unencodable(`a Date in year ${year}`);
  return (
    pad(year, 4) +
    pad(d.getUTCMonth() + 1, 2) +
    pad(d.getUTCDate(), 2) +
    "T" +
    pad(d.getUTCHours(), 2) +
    ":" +
    pad(d.getUTCMinutes(), 2) +
    ":" +
    pad(d.getUTCSeconds(), 2)
  );
}

function encodeValue(v: unknown, out: string[], open: Set<object>): void {
  switch (typeof v) {
    case "string":
      out.push("<value><string>", escapeText(v), "</string></value>");
      return;
    case "number":
      if (Number.isInteger(v) && v >= INT32_MIN && v <= INT32_MAX) {
        out.push("<value><int>", String(v), "</int></value>");
      } else if (Number.isFinite(v)) {
        out.push("<value><double>", String(v), "</double></value>");
      } else {
        throw new Unencodable(`the number ${v}`);
      }
      return;
    case "boolean":
      out.push(v ? "<value><boolean>1</boolean></value>" : "<value><boolean>0</boolean></value>");
      return;
    case "undefined":
      out.push("<value><nil/></value>");
      return;
    case "object":
      break;
    default:
      throw new Unencodable(`a ${typeof v}`);
  }
  if (v === null) {
    out.push("<value><nil/></value>");
  } else if (v instanceof Uint8Array) {
    const buf = Buffer.isBuffer(v) ? v : Buffer.from(v.buffer, v.byteOffset, v.byteLength);
    out.push("<value><base64>", buf.toString("base64"), "</base64></value>");
  } else if (v instanceof Date) {
    out.push("<value><dateTime.iso8601>", encodeDate(v), "</dateTime.iso8601></value>");
  } else {
    if (open.has(v)) throw new Unencodable("a cyclic structure");
    open.add(v);
    if (Array.isArray(v)) {
      out.push("<value><array><data>");
      for (let i = 0; i < v.length; i++) {
        try {
          encodeValue(v[i], out, open);
        } catch (err) {
          if (err instanceof Unencodable) err.path.push(`[${i}]`);
          throw err;
        }
      }
      out.push("</data></array></value>");
    } else {
      const proto = Object.getPrototypeOf(v) as object | null;
      if (proto !== Object.prototype && proto !== null) {
        const ctor = Object.hasOwn(proto, "constructor")
          ? (proto as { constructor: unknown }).constructor
          : undefined;
        throw new Unencodable(
          typeof ctor === "function" && ctor.name !== ""
            ? `an object of class ${ctor.name}`
            : "an object with a custom prototype",
        );
      }
      const struct = v as Record<string, unknown>;
      out.push("<value><struct>");
      for (const key of Object.keys(struct)) {
        out.push("<member><name>", escapeText(key), "</name>");
        try {
          encodeValue(struct[key], out, open);
        } catch (err) {
          if (err instanceof Unencodable) err.path.push(`.${key}`);
          throw err;
        }
        out.push("</member>");
      }
      out.push("</struct></value>");
    }
    open.delete(v);
  }
}

/** Runs the encoder and turns its internal failure into the registry's error. */
function build(
  what: "param" | "result",
  head: string,
  values: readonly unknown[],
  between: string,
  tail: string,
): string {
  const out = [head];
  const open = new Set<object>();
  for (let i = 0; i < values.length; i++) {
    if (i > 0) out.push(between);
    try {
      encodeValue(values[i], out, open);
    } catch (err) {
      if (!(err instanceof Unencodable)) throw err;
      const where = (what === "param" ? `param ${i}` : "result") + err.path.reverse().join("");
      throw new BuilddError("BUILDD_ERR_SERIALIZE", `cannot encode ${err.message} at ${where}`);
    }
  }
  out.push(tail);
  return out.join("");
}

export function encodeMethodCall(methodName: string, params: readonly XmlRpcValue[]): string {
  if (methodName === "") throw new BuilddError("BUILDD_ERR_SERIALIZE", "empty method name");
  const head = `${HEAD}<methodCall><methodName>${escapeText(methodName)}</methodName><params>`;
  if (params.length === 0) return `${head}</params></methodCall>\n`;
  return build(
    "param",
    `${head}<param>`,
    params,
    "</param><param>",
    "</param></params></methodCall>\n",
  );
}

export function encodeMethodResponse(value: XmlRpcValue): string {
  return build(
    "result",
    `${HEAD}<methodResponse><params><param>`,
    [value],
    "",
    "</param></params></methodResponse>\n",
  );
}

export function encodeFault(fault: Fault): string {
  const { faultCode, faultString } = fault;
  if (!Number.isInteger(faultCode) || faultCode < INT32_MIN || faultCode > INT32_MAX) {
    throw new BuilddError("BUILDD_ERR_SERIALIZE", `faultCode ${faultCode} is not a 32-bit integer`);
  }
  if (typeof faultString !== "string") {
    throw new BuilddError("BUILDD_ERR_SERIALIZE", "faultString is not a string");
  }
  return (
    `${HEAD}<methodResponse><fault><value><struct>` +
    `<member><name>faultCode</name><value><int>${faultCode}</int></value></member>` +
    `<member><name>faultString</name><value><string>${escapeText(faultString)}</string></value></member>` +
    `</struct></value></fault></methodResponse>\n`
  );
}
