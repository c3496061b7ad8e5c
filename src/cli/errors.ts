// How a command fails: a message for the person at the terminal and an exit status.
// Commands throw these; src/cli.ts prints the message and is the only place that exits.

/** Exit statuses every command shares (`buildd build` adds one per build result). */
export const EXIT = {
  OK: 0,
  /** The builder refused, could not be reached, or a file could not be read or written. */
  FAILED: 1,
  /** Bad command-line input or configuration: nothing was tried. */
  USAGE: 2,
  /** Interrupted by SIGINT before anything could be cleaned up in order. */
  INTERRUPTED: 130,
} as const;

export class CliError extends Error {
  constructor(
    message: string,
    readonly exitCode: number = EXIT.FAILED,
  ) {
    super(message);
    this.name = "CliError";
  }
}

/** A usage error: what was wrong with the input, and what to do instead. */
export function usageError(message: string): CliError {
  return new CliError(message, EXIT.USAGE);
}

/** A whole number within [min, max] from an option's text, or a usage error naming it. */
export function wholeNumber(option: string, text: string, min: number, max: number): number {
  const n = /^\d+$/.test(text.trim()) ? Number(text.trim()) : NaN;
  if (!Number.isSafeInteger(n) || n < min || n > max) {
    throw usageError(
      `${option} must be a whole number from ${min} to ${max}, not ${JSON.stringify(text)}`,
    );
  }
  return n;
}
