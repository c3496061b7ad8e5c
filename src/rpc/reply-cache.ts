// The last answer of a method, encoded once: status() is polled every few seconds per
// builder by every manager and mostly says the same thing, so its reply is re-encoded
// only when its value changed. Exactly correct by construction: the encoding is a pure
// function of the value, the new value is compared in full with a private copy of the
// last one (so an object changed in place after it was answered cannot fool the check),
// and anything the comparison does not know is simply encoded again.

import { encodeMethodResponse, type XmlRpcValue } from "./codec.js";

/** Whether `a` and `b` encode to the same XML-RPC (same types, keys in order, values). */
export function sameValue(a: unknown, b: unknown): boolean {
  if (a === b && (typeof a !== "object" || a === null)) return true;
  if (typeof a !== "object" || typeof b !== "object" || a === null || b === null) return false;
  if (a instanceof Uint8Array) {
    return b instanceof Uint8Array && Buffer.from(a.buffer, a.byteOffset, a.byteLength).equals(b);
  }
  if (a instanceof Date) return b instanceof Date && a.getTime() === b.getTime();
  if (Array.isArray(a)) {
    if (!Array.isArray(b) || a.length !== b.length) return false;
    for (let i = 0; i < a.length; i++) if (!sameValue(a[i], b[i])) return false;
    return true;
  }
  const proto = Object.getPrototypeOf(a) as unknown;
  if ((proto !== Object.prototype && proto !== null) || Object.getPrototypeOf(b) !== proto) {
    return false;
  }
  if (b instanceof Uint8Array || b instanceof Date || Array.isArray(b)) return false;
  const ka = Object.keys(a);
  const kb = Object.keys(b);
  if (ka.length !== kb.length) return false;
  const ra = a as Record<string, unknown>;
  const rb = b as Record<string, unknown>;
  for (let i = 0; i < ka.length; i++) {
    const k = ka[i]!;
    if (k !== kb[i] || !sameValue(ra[k], rb[k])) return false;
  }
  return true;
}

/** A copy that shares nothing mutable with `v` (v was just encoded, so it is acyclic). */
function copyOf(v: unknown): unknown {
  if (typeof v !== "object" || v === null) return v;
  if (v instanceof Uint8Array) return Buffer.from(v);
  if (v instanceof Date) return new Date(v.getTime());
  if (Array.isArray(v)) return v.map(copyOf);
  const out: Record<string, unknown> = Object.create(Object.getPrototypeOf(v) as object | null);
  for (const k of Object.keys(v)) {
    Object.defineProperty(out, k, {
      value: copyOf((v as Record<string, unknown>)[k]),
      enumerable: true,
      writable: true,
      configurable: true,
    });
  }
  return out;
}

export class ReplyCache {
  private last: { value: unknown; bytes: Buffer } | null = null;

  /** The encoded methodResponse for `value`, reusing the last one if `value` is the same. */
  encode(value: XmlRpcValue): Buffer {
    const last = this.last;
    if (last !== null && sameValue(value, last.value)) return last.bytes;
    const bytes = Buffer.from(encodeMethodResponse(value), "utf8");
    this.last = { value: copyOf(value), bytes };
    return bytes;
  }
}
