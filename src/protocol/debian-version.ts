// Debian version comparison (dpkg's verrevcmp), so that `postgresql >= 15` or
// `selenium-server >> 4.1~rc1` mean what they mean in a Debian control file.
//
// A version is [epoch:]upstream[-revision]. Epochs compare as numbers; upstream and
// revision are compared in alternating runs of non-digits (letters sort before other
// characters, and `~` before everything, even the end of the string) and digits
// (compared as numbers).

export interface DebianVersion {
  readonly epoch: number;
  readonly upstream: string;
  readonly revision: string;
}

const UPSTREAM = /^[0-9][A-Za-z0-9.+~-]*$/;
const UPSTREAM_WITH_EPOCH = /^[0-9][A-Za-z0-9.+~:-]*$/;
const REVISION = /^[A-Za-z0-9.+~]+$/;

/** Parse a version; returns null when it is not a valid Debian version. */
export function parseVersion(text: string): DebianVersion | null {
  let rest = text;
  let epoch = 0;
  const m = /^(\d+):/.exec(rest);
  if (m) {
    epoch = Number(m[1]);
    rest = rest.slice(m[0].length);
  }
  // The revision is what follows the last hyphen; the upstream part may contain hyphens.
  const dash = rest.lastIndexOf("-");
  const upstream = dash < 0 ? rest : rest.slice(0, dash);
  const revision = dash < 0 ? "" : rest.slice(dash + 1);
  // A colon in the upstream part is only allowed when there is an epoch (as in dpkg).
  if (!(m ? UPSTREAM_WITH_EPOCH : UPSTREAM).test(upstream)) return null;
  if (dash >= 0 && !REVISION.test(revision)) return null;
  if (!Number.isSafeInteger(epoch)) return null;
  return { epoch, upstream, revision };
}

export function isValidVersion(text: string): boolean {
  return parseVersion(text) !== null;
}

const isDigit = (c: string | undefined): boolean => c !== undefined && c >= "0" && c <= "9";

/** Weight of one character in a non-digit run; undefined is the end of the string. */
function order(c: string | undefined): number {
  if (c === undefined || isDigit(c)) return 0;
  if (/[A-Za-z]/.test(c)) return c.charCodeAt(0);
  if (c === "~") return -1;
  return c.charCodeAt(0) + 256;
}

function verrevcmp(a: string, b: string): number {
  let i = 0;
  let j = 0;
  while (i < a.length || j < b.length) {
    while ((i < a.length && !isDigit(a[i])) || (j < b.length && !isDigit(b[j]))) {
      const d = order(a[i]) - order(b[j]);
      if (d !== 0) return d;
      i++;
      j++;
    }
    while (a[i] === "0") i++;
    while (b[j] === "0") j++;
    let firstDiff = 0;
    while (isDigit(a[i]) && isDigit(b[j])) {
      if (firstDiff === 0) firstDiff = a.charCodeAt(i) - b.charCodeAt(j);
      i++;
      j++;
    }
    if (isDigit(a[i])) return 1;
    if (isDigit(b[j])) return -1;
    if (firstDiff !== 0) return firstDiff;
  }
  return 0;
}

/** Negative, zero or positive as a sorts before, equal to or after b. Throws on invalid input. */
export function compareVersions(a: string, b: string): number {
  const va = parseVersion(a);
  const vb = parseVersion(b);
  if (!va) throw new Error(`invalid version ${JSON.stringify(a)}`);
  if (!vb) throw new Error(`invalid version ${JSON.stringify(b)}`);
  if (va.epoch !== vb.epoch) return va.epoch - vb.epoch;
  return verrevcmp(va.upstream, vb.upstream) || verrevcmp(va.revision, vb.revision);
}
