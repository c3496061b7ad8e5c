// Where ensurepresent() may download from: `[download] allow`, a list of host names,
// host:port pairs and CIDR networks. Parsed by the configuration, checked by the file
// cache's fetch on the resolved address of the first URL and of every redirect, so a
// name that resolves to a forbidden address, or a redirect to one, is refused too.
//
// Without a list everything is allowed (the reference's behaviour), except the
// link-local addresses cloud machines serve their credentials on (169.254.0.0/16 and
// fd00:ec2::254): a manager's URL must name those explicitly to reach them.

import net from "node:net";

export type AllowEntry =
  | { readonly kind: "host"; readonly host: string; readonly port: number | null }
  | {
      readonly kind: "net";
      readonly address: string;
      readonly prefix: number;
      readonly family: "ipv4" | "ipv6";
    };

/** A download's destination at one hop: the URL's host and port, and what it resolved to. */
export interface Destination {
  /** Lowercase, without IPv6 brackets. */
  readonly host: string;
  readonly port: number;
  readonly address: string;
}

const HOST_NAME =
  /^(?=.{1,253}$)[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)*$/;

function familyOf(address: string): "ipv4" | "ipv6" {
  return net.isIPv6(address) ? "ipv6" : "ipv4";
}

/** One entry: `host`, `host:port`, `[v6]:port`, an IP address, or `address/prefix`. */
export function parseAllowEntry(text: string): AllowEntry {
  const t = text.trim().toLowerCase();
  const cidr = /^([^/]+)\/(\d{1,3})$/.exec(t);
  if (cidr) {
    const address = cidr[1]!;
    const prefix = Number(cidr[2]);
    if (!net.isIP(address)) throw new Error(`"${text}": ${address} is not an IP address`);
    const family = familyOf(address);
    if (prefix > (family === "ipv4" ? 32 : 128)) {
      throw new Error(`"${text}": /${prefix} is too long for an ${family} network`);
    }
    return { kind: "net", address, prefix, family };
  }
  const bracketed = /^\[([0-9a-f:.]+)\](?::(\d+))?$/.exec(t);
  if (bracketed) {
    if (!net.isIPv6(bracketed[1]!)) throw new Error(`"${text}" is not an IPv6 address`);
    return { kind: "host", host: bracketed[1]!, port: port(bracketed[2], text) };
  }
  if (net.isIPv6(t)) return { kind: "host", host: t, port: null };
  const hostPort = /^([^:]+)(?::(\d+))?$/.exec(t);
  if (!hostPort || !(net.isIPv4(hostPort[1]!) || HOST_NAME.test(hostPort[1]!))) {
    throw new Error(
      `"${text}" is not a host, host:port or network (such as librarian.example, 10.0.0.5:8080 or 10.0.0.0/8)`,
    );
  }
  return { kind: "host", host: hostPort[1]!, port: port(hostPort[2], text) };
}

function port(text: string | undefined, entry: string): number | null {
  if (text === undefined) return null;
  const n = Number(text);
  if (!Number.isInteger(n) || n < 1 || n > 65535) throw new Error(`"${entry}": bad port ${text}`);
  return n;
}

/** A whole list: entries separated by blanks or commas; empty text → null (no list). */
export function parseAllowList(text: string): AllowEntry[] | null {
  const words = text.split(/[\s,]+/).filter(Boolean);
  return words.length === 0 ? null : words.map(parseAllowEntry);
}

const METADATA = new net.BlockList();
METADATA.addSubnet("169.254.0.0", 16, "ipv4");
METADATA.addAddress("fd00:ec2::254", "ipv6");

function inNet(e: Extract<AllowEntry, { kind: "net" }>, address: string): boolean {
  const list = new net.BlockList();
  list.addSubnet(e.address, e.prefix, e.family);
  return list.check(address, familyOf(address));
}

function entryMatches(e: AllowEntry, d: Destination): boolean {
  if (e.kind === "net") return inNet(e, d.address);
  if (e.port !== null && e.port !== d.port) return false;
  return e.host === d.host || (net.isIP(e.host) !== 0 && e.host === d.address);
}

/** An entry that names a metadata address itself (not merely a network around it). */
function namesMetadata(e: AllowEntry): boolean {
  if (e.kind === "host") return net.isIP(e.host) !== 0 && METADATA.check(e.host, familyOf(e.host));
  return METADATA.check(e.address, e.family) && e.prefix >= (e.family === "ipv4" ? 16 : 128);
}

/** null when the destination may be fetched from; else why not. */
export function refusal(list: readonly AllowEntry[] | null, d: Destination): string | null {
  const where = `${d.host}:${d.port}${d.address !== d.host ? ` (${d.address})` : ""}`;
  if (METADATA.check(d.address, familyOf(d.address))) {
    const listed = (list ?? []).some((e) => namesMetadata(e) && entryMatches(e, d));
    if (!listed) {
      return `${where} is a link-local metadata address, refused unless [download] allow names it`;
    }
    return null;
  }
  if (list === null) return null;
  if (list.some((e) => entryMatches(e, d))) return null;
  return `${where} is not in [download] allow`;
}
