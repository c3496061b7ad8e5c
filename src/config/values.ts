// One configuration value, checked against its key's type and range (src/config-keys.ts).
// Pure. A value is either taken exactly or refused with what is allowed; nothing is
// rounded, clamped or read with a unit the file did not give.

import net from "node:net";
import { MAX_TIMER_MS, MIN_SIZE, type KeySpec } from "./keys.js";
import { BuilddError } from "../errors.js";
import { parseAllowList } from "../protocol/allow.js";

/** A parsed value: milliseconds or bytes for numbers, null for "compute at start-up". */
export type Value = number | string | null;

const UNITS: Record<string, number> = { K: 1024, M: 1024 ** 2, G: 1024 ** 3, T: 1024 ** 4 };
const MAX_SIZE_TEXT = `${Math.floor(Number.MAX_SAFE_INTEGER / UNITS["T"]!)}T`;
const MAX_SECONDS = Math.floor(MAX_TIMER_MS / 1000);

/** RFC 1123 host name: dot-separated labels of letters, digits and inner hyphens. */
const HOST_NAME =
  /^(?=.{1,253}$)[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$/;
const BOOLEANS: Readonly<Record<string, boolean>> = {
  yes: true,
  no: false,
  true: true,
  false: false,
  on: true,
  off: false,
  "1": true,
  "0": false,
};
/** Debian's adduser rule for system user names. */
const USER = /^[a-z_][a-z0-9_-]{0,31}$/;
/** Debian architecture names: amd64, arm64, armhf, ppc64el, hurd-i386, … */
const ARCH = /^[a-z0-9][a-z0-9-]*$/;

/**
 * `value` as the file's reader returns it: unquoted values are already trimmed, and the
 * blanks of a quoted one were asked for, so nothing here trims (a quoted " 80" is refused
 * as a port rather than quietly read as 80).
 */
export function parseValue(spec: KeySpec, v: string, where: string): Value {
  const name = `[${spec.section}] ${spec.key}`;
  const fail = (what: string): BuilddError =>
    new BuilddError("BUILDD_ERR_CONFIG", `${where}: ${name} = ${JSON.stringify(v)} ${what}`);
  const bad = (what: string): BuilddError => fail(`is not ${what}`);
  const type = spec.type;
  switch (type.kind) {
    case "ignored":
    case "names":
      return v;
    case "secret":
    case "username":
      // RFC 7617: the user-id ends at the first colon, so this one could never log in.
      if (type.kind === "username" && v.includes(":")) {
        throw fail('contains ":", which an HTTP Basic user name cannot');
      }
      return v;
    case "path":
      if (v === "" || v.includes("\0")) throw bad("a path");
      return v;
    case "file":
      if (v === "") return null;
      if (v.includes("\0")) throw bad("a path");
      return v;
    case "boolean": {
      const b = BOOLEANS[v.toLowerCase()];
      if (b === undefined) throw bad("yes or no");
      return b ? "yes" : "no";
    }
    case "user":
      if (!USER.test(v)) {
        throw bad("a user name (lowercase letters, digits, _ and -, starting with a letter or _)");
      }
      return v;
    case "allow-list":
      try {
        parseAllowList(v);
      } catch (err) {
        throw fail(`is not a list of hosts and networks: ${(err as Error).message}`);
      }
      return v;
    case "host":
      if (!net.isIP(v) && !HOST_NAME.test(v)) {
        throw bad("a host name or IP address (such as 127.0.0.1, ::1 or localhost; no brackets)");
      }
      return v;
    case "arch":
      if (v === "") return null;
      if (!ARCH.test(v)) {
        throw bad('an architecture name (lowercase letters, digits and "-", such as amd64)');
      }
      return v;
    case "port":
      if (!/^\d+$/.test(v) || Number(v) > 65535) throw bad("a whole number from 0 to 65535");
      return Number(v);
    case "count":
      if (!/^\d+$/.test(v) || Number(v) < type.min || Number(v) > type.max) {
        throw bad(`a whole number from ${type.min} to ${type.max}`);
      }
      return Number(v);
    case "seconds":
      return seconds(v, type.zero, bad, fail);
    case "bytes":
      return bytes(v, type.zero, bad, fail);
    case "enum":
      if (!type.choices.includes(v)) throw bad(`one of ${type.choices.join(", ")}`);
      return v;
    case "text":
      // eslint-disable-next-line no-control-regex
      if (/[\x00-\x1f\x7f]/.test(v)) throw fail("contains a control character");
      return v;
    case "endpoint":
      return v === "" ? null : endpoint(v, fail);
  }
}

/** `host:port` (`[v6]:port` for IPv6), checked; returned as written. */
function endpoint(v: string, fail: Fail): string {
  const m = /^(?:\[([^\]]+)\]|([^:[\]]+)):(\d+)$/.exec(v);
  const host = m?.[1] ?? m?.[2];
  if (!m || host === undefined) {
    throw fail("is not host:port (such as buildbot.example.org:9989, or [::1]:9989 for IPv6)");
  }
  if (!net.isIP(host) && !HOST_NAME.test(host))
    throw fail(`names ${JSON.stringify(host)}, which is not a host name or IP address`);
  if (m[1] !== undefined && net.isIPv6(host) === false)
    throw fail("has brackets around something that is not an IPv6 address");
  const port = Number(m[3]);
  if (port < 1 || port > 65535) throw fail("has a port outside 1–65535");
  return v;
}

/** A checked `host:port` value, split (brackets removed). */
export function splitEndpoint(v: string): { host: string; port: number } {
  const i = v.lastIndexOf(":");
  return { host: v.slice(0, i).replace(/^\[(.*)\]$/, "$1"), port: Number(v.slice(i + 1)) };
}

type Fail = (what: string) => BuilddError;

/** Seconds → milliseconds; at most three decimals, so the conversion is exact. */
function seconds(v: string, zero: string | null, bad: Fail, fail: Fail): number {
  const what = zero === null ? "a positive number of seconds" : `a number of seconds (0: ${zero})`;
  if (!/^\d+(?:\.\d+)?$/.test(v)) throw bad(what);
  if (/\.\d{4,}$/.test(v)) throw fail("has more than 3 decimals (times count milliseconds)");
  const ms = Math.round(Number(v) * 1000);
  if (ms === 0 && zero === null) throw bad(what);
  if (ms > MAX_TIMER_MS) {
    throw fail(`is more than ${MAX_SECONDS} seconds (about 24 days), the longest a timer can wait`);
  }
  return ms;
}

/** A size with a unit → bytes. */
function bytes(v: string, zero: string | null, bad: Fail, fail: Fail): number {
  if (v === "0" && zero !== null) return 0;
  const units = "K, M, G or T, powers of 1024";
  const orZero = zero === null ? "" : `, or 0 for ${zero}`;
  if (/^\d+(?:\.\d+)?$/.test(v)) {
    throw fail(`has no unit: write ${v}K, ${v}M, ${v}G or ${v}T (powers of 1024)${orZero}`);
  }
  const m = /^(\d+(?:\.\d+)?)\s*([KMGT])(?:i?B)?$/i.exec(v);
  if (!m) throw bad(`a size such as 512M or 20G (${units})${orZero}`);
  const n = Number(m[1]) * UNITS[m[2]!.toUpperCase()]!;
  if (!Number.isInteger(n)) throw fail(`is not a whole number of bytes (${n})`);
  if (n > Number.MAX_SAFE_INTEGER) throw fail(`is more than the largest size, ${MAX_SIZE_TEXT}`);
  if (n < MIN_SIZE) throw fail(`is less than the smallest size, 1K${orZero}`);
  return n;
}
