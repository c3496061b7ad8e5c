// Every error the builder raises on purpose, in one registry.
//
// Expected outcomes (a failed download, an unknown checksum) are values, not errors.
// What is here are violations: bad input, an illegal state change, a broken config.
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
} as const satisfies Record<string, ErrorSpec>;

export type ErrorCode = keyof typeof ERRORS;

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
