// The msgpack side of the Buildbot worker protocol (msgpack_experimental_v7): one map per
// binary WebSocket frame. Text must travel as msgpack str and file data as bin: the
// master stores log text sent as bin as empty logs, and UTF-8-encodes an upload chunk
// sent as str a second time. @msgpack/msgpack encodes a JS string as str and a
// Uint8Array (Buffer) as bin, so keeping the two JS types apart is the whole rule.
//
// Everything that arrives is `unknown` and is narrowed here, once, with messages that say
// which field was wrong.

import { decode, encode } from "@msgpack/msgpack";

export type WireMap = { readonly [key: string]: unknown };

/** A frame's bytes for one message. */
export function encodeFrame(message: WireMap): Buffer {
  const bytes = encode(message);
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

/** The message in a frame; throws (with a reason) when it is not a map with an op. */
export function decodeFrame(data: Buffer): { seq: number; op: string; msg: WireMap } {
  const value = decode(data);
  if (value === null || typeof value !== "object" || Array.isArray(value)) {
    throw new WireError("a frame from the master is not a map");
  }
  const msg = value as WireMap;
  const seq = msg.seq_number;
  const op = msg.op;
  if (typeof seq !== "number" || !Number.isInteger(seq) || typeof op !== "string") {
    throw new WireError("a message from the master has no integer seq_number or no op");
  }
  return { seq, op, msg };
}

/** A malformed message or argument: the master gets its text as the exception. */
export class WireError extends Error {}

/** The `args` map of a message (start_command, set_worker_settings); {} when absent. */
export function argsOf(msg: WireMap, key = "args"): WireMap {
  const v = msg[key];
  if (v === undefined || v === null) return {};
  if (typeof v !== "object" || Array.isArray(v) || v instanceof Uint8Array) {
    throw new WireError(`"${key}" is not a map`);
  }
  return v as WireMap;
}

export function str(args: WireMap, key: string): string {
  const v = args[key];
  if (typeof v === "string") return v;
  if (v instanceof Uint8Array) return Buffer.from(v).toString("utf8");
  throw new WireError(`argument "${key}" is missing or not a string`);
}

export function optStr(args: WireMap, key: string): string | null {
  const v = args[key];
  return v === undefined || v === null ? null : str(args, key);
}

/** A number of seconds or bytes; null when absent or None. */
export function optNum(args: WireMap, key: string): number | null {
  const v = args[key];
  if (v === undefined || v === null) return null;
  if (typeof v === "number" && Number.isFinite(v)) return v;
  throw new WireError(`argument "${key}" is not a number`);
}

export function bool(args: WireMap, key: string, dflt: boolean): boolean {
  const v = args[key];
  if (v === undefined || v === null) return dflt;
  // The master sends want_stdout as True/False, older masters as 1/0.
  if (typeof v === "boolean") return v;
  if (typeof v === "number") return v !== 0;
  throw new WireError(`argument "${key}" is not a boolean`);
}

/** A list of strings (paths); a lone string counts as a list of one. */
export function strList(args: WireMap, key: string): string[] {
  const v = args[key];
  if (typeof v === "string") return [v];
  if (!Array.isArray(v) || !v.every((x) => typeof x === "string")) {
    throw new WireError(`argument "${key}" is not a list of strings`);
  }
  return v as string[];
}

/** Bytes that came as bin (or, from a sloppy peer, as str); null for None or absent. */
export function asBytes(v: unknown): Buffer | null {
  if (v === undefined || v === null) return null;
  if (v instanceof Uint8Array) return Buffer.from(v.buffer, v.byteOffset, v.byteLength);
  if (typeof v === "string") return Buffer.from(v, "latin1");
  throw new WireError("expected file data (bin)");
}

/** Why something failed, in one line, for a header or an exception result. */
export function reason(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
