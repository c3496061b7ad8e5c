// The values build arguments and extra status are made of: the shapes XML-RPC can carry
// (and JSON, once Buffers and Dates are encoded), named here so that the builder, build
// types and capabilities speak them without knowing about any wire format. rpc/ decodes
// requests into these and encodes them back; nothing below rpc/ imports the codec.

export interface Struct {
  [key: string]: Value;
}

export type Value = string | number | boolean | null | Buffer | Date | Value[] | Struct;

/** A struct: an object that is not a list, bytes or a date. */
export function isStruct(v: Value | undefined): v is Struct {
  return (
    typeof v === "object" &&
    v !== null &&
    !Array.isArray(v) &&
    !Buffer.isBuffer(v) &&
    !(v instanceof Date)
  );
}

/** A struct whose values are all strings (environment, filemap), or null. */
export function asStringStruct(v: Value | undefined): Record<string, string> | null {
  if (!isStruct(v)) return null;
  const out: Record<string, string> = {};
  for (const [k, x] of Object.entries(v)) {
    if (typeof x !== "string") return null;
    out[k] = x;
  }
  return out;
}
