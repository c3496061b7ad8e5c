// Every error the builder raises on purpose, in one registry.
//
// Expected outcomes (a failed download, an unknown checksum) are values, not errors.
// What is here are violations: bad input, an illegal state change, a broken config; and
// the causes of a failed download, which `ensurepresent` answers as values (so they have
// no fault code) but which callers still match by a stable code.
// The dispatcher is the only place that turns these into XML-RPC faults, and
// docs/errors.md lists exactly these codes (a test keeps the two in sync).

export interface ErrorSpec {
  /** XML-RPC fault code the dispatcher answers with (null: never reaches the wire). */
  readonly faultCode: number | null;
  /** One line for docs/errors.md. */
  readonly summary: string;
}

export const ERRORS = {
  BUILDD_ERR_DESERIALIZE: {
    faultCode: 8002,
    summary:
      "The request body is not a well-formed XML-RPC call (answered `Can't deserialize input: …`).",
  },
  BUILDD_ERR_METHOD_NOT_FOUND: {
    faultCode: 8001,
    summary: "No such method (answered `procedure NAME not found`).",
  },
  BUILDD_ERR_ARGUMENTS: {
    faultCode: 8002,
    summary: "A method was called with the wrong number or types of arguments.",
  },
  BUILDD_ERR_INVALID_ARGUMENT: {
    faultCode: 8002,
    summary:
      "An argument has the right type but an unacceptable value (a SHA-1 that is not 40 lowercase hex digits, an unsafe file name).",
  },
  BUILDD_ERR_ILLEGAL_STATE: {
    faultCode: 8002,
    summary:
      "The call is not allowed in the builder's current state (`Builder is not IDLE when asked to start building`).",
  },
  BUILDD_ERR_REQUIREMENTS: {
    faultCode: 8002,
    summary:
      "A build's `build_requires` are not met by this worker's available capabilities, or the worker is reserved for other builds.",
  },
  BUILDD_ERR_SERIALIZE: {
    faultCode: 8002,
    summary:
      "A method returned a value XML-RPC cannot carry (answered `Can't serialize output: …`).",
  },
  BUILDD_ERR_INTERNAL: {
    faultCode: 8002,
    summary:
      "An unexpected failure inside the builder; it is logged with a stack and the server keeps running.",
  },
  BUILDD_ERR_LOCKED: {
    faultCode: null,
    summary:
      "Another process holds the state directory or the file cache (a second `buildd serve` on the same directories); start-up stops, names the directory and the PID holding it, and changes nothing.",
  },
  BUILDD_ERR_CONFIG: {
    faultCode: null,
    summary:
      "The configuration file is missing, malformed or invalid; start-up stops and names the file, section and key.",
  },
  BUILDD_ERR_FETCH_BAD_URL: {
    faultCode: null,
    summary:
      "A download's URL (or a redirect's `Location`) cannot be parsed or is not `http:`/`https:`.",
  },
  BUILDD_ERR_FETCH_HTTP_STATUS: {
    faultCode: null,
    summary:
      "The librarian's final answer to a download was not 2xx (`HTTP Error 404: Not Found`).",
  },
  BUILDD_ERR_FETCH_NOT_ALLOWED: {
    faultCode: null,
    summary:
      "A download's host, or the address it or a redirect resolves to, is not in `[download] allow` (or is a link-local metadata address that is not listed).",
  },
  BUILDD_ERR_FETCH_REDIRECT: {
    faultCode: null,
    summary: "A download was redirected too many times, or by a redirect without `Location`.",
  },
  BUILDD_ERR_FETCH_NETWORK: {
    faultCode: null,
    summary: "A download failed on the network: connection refused or reset, host not found, TLS.",
  },
  BUILDD_ERR_FETCH_TIMEOUT: {
    faultCode: null,
    summary: "A download exceeded its connect, idle or total timeout (`[download]` keys).",
  },
  BUILDD_ERR_FETCH_TOO_LARGE: {
    faultCode: null,
    summary:
      "A download is larger than `[download] max_size` (by its Content-Length or its bytes).",
  },
  BUILDD_ERR_FETCH_BAD_RESPONSE: {
    faultCode: null,
    summary:
      "A download's body was shorter or longer than its Content-Length, or the response was not valid HTTP.",
  },
  BUILDD_ERR_FETCH_LOCAL: {
    faultCode: null,
    summary:
      "A download's temporary file could not be created or written, or the cache has no room for it.",
  },
  BUILDD_ERR_FETCH_ABORTED: {
    faultCode: null,
    summary: "A download was stopped by its caller (the builder shutting down).",
  },
} as const satisfies Record<string, ErrorSpec>;

export type ErrorCode = keyof typeof ERRORS;

/** The causes of a failed download (src/filecache/fetch-errors.ts raises them). */
export type FetchErrorCode = Extract<ErrorCode, `BUILDD_ERR_FETCH_${string}`>;

export class BuilddError extends Error {
  readonly code: ErrorCode;
  readonly faultCode: number | null;

  constructor(code: ErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = "BuilddError";
    this.code = code;
    this.faultCode = ERRORS[code].faultCode;
  }
}

export function isBuilddError(err: unknown, code?: ErrorCode): err is BuilddError {
  return err instanceof BuilddError && (code === undefined || err.code === code);
}

/** Shorthands for the errors raised most often, so call sites read as sentences. */
export const invalidArgument = (message: string): BuilddError =>
  new BuilddError("BUILDD_ERR_INVALID_ARGUMENT", message);
export const illegalState = (message: string): BuilddError =>
  new BuilddError("BUILDD_ERR_ILLEGAL_STATE", message);
export const badArguments = (message: string): BuilddError =>
  new BuilddError("BUILDD_ERR_ARGUMENTS", message);

/** The message of anything thrown, for log lines. */
export function describeError(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
