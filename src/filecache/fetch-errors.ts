// The one error type a download rejects with, and the mapping from Node's error codes to
// the short human reason that ends up in `ensurepresent`'s answer
// ("Error accessing Librarian: <reason>"). The reason is what the manager's operators read,
// so it names the cause ("connection refused"), never a stack or an errno alone.

import { BuilddError, describeError, type FetchErrorCode } from "../errors.js";

export type { FetchErrorCode } from "../errors.js";

/**
 * Why a download failed. Its code is one of the registry's `BUILDD_ERR_FETCH_…` codes
 * (stable, so callers branch without parsing the reason text); it never becomes a fault,
 * because `ensurepresent` answers it as a value.
 */
export class FetchError extends BuilddError {
  declare readonly code: FetchErrorCode;
  /** The short human reason, the same text as `message`. */
  readonly reason: string;

  constructor(code: FetchErrorCode, reason: string, options?: { cause?: unknown }) {
    super(code, reason, options);
    this.name = "FetchError";
    this.reason = reason;
  }
}

const NETWORK_REASONS: Readonly<Record<string, string>> = {
  ECONNREFUSED: "connection refused",
  ECONNRESET: "connection reset",
  ECONNABORTED: "connection aborted",
  EPIPE: "connection closed by the server",
  ETIMEDOUT: "connection timed out",
  EHOSTUNREACH: "host unreachable",
  EHOSTDOWN: "host is down",
  ENETUNREACH: "network unreachable",
  ENETDOWN: "network is down",
  EADDRNOTAVAIL: "address not available",
};

// getaddrinfo failures: "not found" and "try again" both mean we could not resolve the
// name, and the manager's operator needs the name, not the resolver's vocabulary.
const DNS_CODES = new Set(["ENOTFOUND", "EAI_AGAIN", "EAI_NONAME", "EAI_FAIL", "EAI_NODATA"]);

function errnoCode(err: unknown): string | undefined {
  if (typeof err === "object" && err !== null && "code" in err) {
    const code = (err as { code: unknown }).code;
    if (typeof code === "string") return code;
  }
  return undefined;
}

/** A network-side failure (from the request or response stream) as a FetchError. */
export function networkError(err: unknown, host: string): FetchError {
  if (err instanceof FetchError) return err;
  const code = errnoCode(err);
  const opts = { cause: err };
  if (code !== undefined) {
    if (DNS_CODES.has(code))
      return new FetchError("BUILDD_ERR_FETCH_NETWORK", `host not found: ${host}`, opts);
    // "socket hang up": the server closed the connection before sending a status line.
    if (code === "ECONNRESET" && describeError(err) === "socket hang up") {
      return new FetchError(
        "BUILDD_ERR_FETCH_NETWORK",
        "connection closed without a response",
        opts,
      );
    }
    const known = NETWORK_REASONS[code];
    if (known !== undefined) return new FetchError("BUILDD_ERR_FETCH_NETWORK", known, opts);
    if (code.startsWith("HPE_")) {
      return new FetchError(
        "BUILDD_ERR_FETCH_BAD_RESPONSE",
        `invalid HTTP response: ${describeError(err)}`,
        opts,
      );
    }
    if (code.startsWith("ERR_TLS_") || code.includes("CERT") || code.startsWith("ERR_SSL_")) {
      return new FetchError("BUILDD_ERR_FETCH_NETWORK", `TLS error: ${describeError(err)}`, opts);
    }
  }
  return new FetchError("BUILDD_ERR_FETCH_NETWORK", describeError(err), opts);
}

/** A failure creating, writing or syncing the temporary file. */
export function localError(err: unknown, path: string): FetchError {
  if (err instanceof FetchError) return err;
  const code = errnoCode(err) ?? describeError(err);
  return new FetchError("BUILDD_ERR_FETCH_LOCAL", `cannot write ${path}: ${code}`, { cause: err });
}

/** The connection ended before the body reached its declared length. */
export function shortBody(bytes: number, declared: number): FetchError {
  return new FetchError(
    "BUILDD_ERR_FETCH_BAD_RESPONSE",
    `body ended after ${bytes} of ${declared} bytes (Content-Length)`,
  );
}
