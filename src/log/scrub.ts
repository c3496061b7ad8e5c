// Credential scrubbing for everything the build log shows.
//
// Two kinds of credentials are removed:
//  - URL/proxy patterns: `scheme://user:pass@host` loses `user:pass@` (the userinfo, by
//    the rules of the URL grammar, below), and `,proxyauth=user:token` disappears;
//  - literal secrets a build declares (a password in its arguments), masked as `********`.
//
// Matching works on bytes: a Buffer is decoded as latin1 (one char per byte), scrubbed,
// and re-encoded as latin1. The patterns are ASCII, so bytes that are not valid UTF-8
// pass through unchanged. Every character class uses ASCII whitespace only: JS `\s`
// would also match 0x85 and 0xA0, which are UTF-8 continuation bytes, and would let a
// password containing e.g. "à" escape the URL pattern.

export const MASK = "********";

/** Literal secrets shorter than this are ignored: masking "a" or "123" would shred the log. */
export const MIN_SECRET_LENGTH = 4;

// ASCII whitespace: tab, LF, VT, FF, CR, space.
const WS = "\\t\\n\\v\\f\\r ";
// Where a URL's authority ends (RFC 3986 §3.2: the next "/", "?" or "#"), and where a
// token of text ends: whitespace, and `"` (the builder's own log is JSON lines, so a URL
// there is followed by a quote).
const AUTHORITY_END = `/?#"${WS}`;
// The userinfo: everything in the authority before its "@", with a ":" in it and a
// non-empty password after that ":". RFC 3986 §3.2.1 allows ":" in the password
// (`userinfo = *( unreserved / pct-encoded / sub-delims / ":" )`), so `user:pa:ss@`,
// `u:p;w=1@` and `u:pa%40ss@` are credentials whole. A raw "@" is not legal there, but
// WHATWG URL parsers (Node's own, which our downloads use) take the *last* "@" of the
// authority as the end of the userinfo, so a sloppy `user:p@ss@host` is sent with the
// password `p@ss`: matching greedily up to the last "@" scrubs what would be sent.
// Bytes outside the grammar (non-ASCII) are matched too: when in doubt, scrub.
// A match never contains whitespace, which the streaming scrubber relies on.
const URL_CREDENTIALS = new RegExp(`://[^:${AUTHORITY_END}]*:[^${AUTHORITY_END}]+@`, "g");
// The reference uses `[^:]+` for the user; we stop at whitespace too so a match never
// spans two tokens (the streaming scrubber relies on that).
const PROXY_AUTH = new RegExp(`,proxyauth=[^:${WS}]+:[A-Za-z0-9-]+`, "g");

export interface Scrubber {
  /** Scrub a whole JS string (builder messages, RUN lines). */
  scrub(text: string): string;
  /** Scrub whole bytes; invalid UTF-8 passes through unchanged. */
  scrubBuffer(bytes: Buffer): Buffer;
  /** The literal secrets masked (empty and too-short ones dropped, longest first). */
  readonly secrets: readonly string[];
}

/** URL/proxy patterns only. */
export function scrubText(text: string): string {
  return text.replace(URL_CREDENTIALS, "://").replace(PROXY_AUTH, "");
}

function replaceAll(text: string, secrets: readonly string[]): string {
  let out = text;
  for (const secret of secrets) {
    if (out.includes(secret)) out = out.split(secret).join(MASK);
  }
  return out;
}

export function createScrubber(secrets: readonly string[] = []): Scrubber {
  // Longest first, so a secret that contains another is masked whole.
  const kept = [...new Set(secrets.filter((s) => s.length >= MIN_SECRET_LENGTH))].sort(
    (a, b) => b.length - a.length,
  );
  // The same secrets as byte strings (UTF-8 bytes viewed as latin1) for scrubBuffer.
  const keptBytes = kept.map((s) => Buffer.from(s, "utf8").toString("latin1"));
  return {
    secrets: kept,
    scrub: (text) => scrubText(replaceAll(text, kept)),
    scrubBuffer: (bytes) =>
      Buffer.from(scrubText(replaceAll(bytes.toString("latin1"), keptBytes)), "latin1"),
  };
}

/** Bytes held back at most; a longer run of non-whitespace is emitted (scrubbed) anyway. */
export const MAX_HOLD_BACK = 64 * 1024;

function isAsciiSpace(byte: number): boolean {
  return byte === 0x20 || (byte >= 0x09 && byte <= 0x0d);
}

/**
 * Scrubs a byte stream that arrives in arbitrary chunks.
 *
 * A URL credential or proxyauth match never contains whitespace, so cutting the stream
 * right after a whitespace byte never splits one: push() emits everything up to the last
 * whitespace and holds back the trailing non-whitespace run until more arrives. Literal
 * secrets that contain whitespace are the exception; the cut is moved back before any
 * (complete or partial) occurrence that would straddle it.
 */
export class StreamScrubber {
  private pending: Buffer = Buffer.alloc(0);
  private readonly secretBytes: readonly Buffer[];
  private readonly spacedSecrets: readonly Buffer[];
  /** First bytes that can start a match: ':' (URL), ',' (proxyauth), each secret's first. */
  private readonly startBytes: ReadonlySet<number>;

  constructor(private readonly scrubber: Scrubber) {
    this.secretBytes = scrubber.secrets.map((s) => Buffer.from(s, "utf8"));
    this.spacedSecrets = this.secretBytes.filter((b) => b.some(isAsciiSpace));
    this.startBytes = new Set([0x3a, 0x2c, ...this.secretBytes.map((b) => b[0] ?? 0x3a)]);
  }

  /** Scrubbed bytes that are safe to emit now. */
  push(chunk: Buffer): Buffer {
    if (chunk.length === 0) return Buffer.alloc(0);
    this.pending = this.pending.length === 0 ? chunk : Buffer.concat([this.pending, chunk]);
    return this.emitUpTo(this.safeCut());
  }

  /**
   * Called when the stream has been quiet for a while, so a partial line (a progress
   * counter, a prompt) shows up. Emits up to the last whitespace and then on through the
   * held-back run until the first byte that could begin a match: text before it cannot
   * be part of any match, whatever follows (no pattern looks behind).
   */
  flushIdle(): Buffer {
    let cut = this.safeCut();
    while (cut < this.pending.length && !this.startBytes.has(this.pending[cut]!)) cut++;
    return this.emitUpTo(cut);
  }

  /** End of stream: everything left, scrubbed. */
  end(): Buffer {
    return this.emitUpTo(this.pending.length);
  }

  private emitUpTo(cut: number): Buffer {
    if (cut <= 0) return Buffer.alloc(0);
    const head = this.pending.subarray(0, cut);
    this.pending = Buffer.from(this.pending.subarray(cut));
    return this.scrubber.scrubBuffer(head);
  }

  /** Largest prefix length that can be scrubbed independently of what comes next. */
  private safeCut(): number {
    const buf = this.pending;
    let cut = lastSpaceEnd(buf, buf.length);
    if (this.spacedSecrets.length > 0) {
      // Move the cut back before any whitespace-containing secret occurrence (or a prefix
      // of one at the very end) that straddles it, then to the start of that token, until
      // nothing straddles. The cut only decreases, so this terminates.
      for (let moved = true; moved && cut > 0;) {
        moved = false;
        for (const secret of this.spacedSecrets) {
          const start = straddlingStart(buf, secret, cut);
          if (start !== -1) {
            cut = lastSpaceEnd(buf, start);
            moved = true;
          }
        }
      }
    }
    // Pathological output (a 64 KiB token): emit it rather than buffer without bound.
    if (buf.length - cut > MAX_HOLD_BACK) return buf.length;
    return cut;
  }
}

/** Index just after the last ASCII whitespace before `end` (0 if none). */
function lastSpaceEnd(buf: Buffer, end: number): number {
  for (let i = end - 1; i >= 0; i--) if (isAsciiSpace(buf[i]!)) return i + 1;
  return 0;
}

/**
 * Start of an occurrence of `secret` that begins before `cut` and ends after it, or of a
 * proper prefix of `secret` that begins before `cut` and runs to the end of `buf` (the
 * rest may still arrive); else -1.
 */
function straddlingStart(buf: Buffer, secret: Buffer, cut: number): number {
  for (let s = Math.max(0, cut - secret.length + 1); s < cut; s++) {
    const n = Math.min(secret.length, buf.length - s);
    const straddles = n < secret.length || s + n > cut;
    if (straddles && buf.compare(secret, 0, n, s, s + n) === 0) return s;
  }
  return -1;
}

/** The same class under the name the design notes also use. */
export { StreamScrubber as LineScrubber };
