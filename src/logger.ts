// The builder's own log, from pino on standard output: JSON lines for a service manager
// or a log collector, and readable coloured lines (pino-pretty) when standard output is
// a terminal, i.e. someone ran `buildd serve` by hand. Every line passes the same
// credential scrubber as the build log before it is written or prettified, so a URL with
// a password that reaches a log call is never written out in clear.
//
// pino-pretty is loaded only on a terminal, and only if it is installed: an install
// without it (npm ci --omit=dev) still logs, as JSON.
import { createRequire } from "node:module";
import pino, { type Logger } from "pino";
import type PinoPretty from "pino-pretty";
import { scrubText } from "./log/scrub.js";

export type { Logger };

/** A pino-pretty stream writing to standard output, or null when it is not installed. */
function prettyDestination(): pino.DestinationStream | null {
  try {
    const pretty = createRequire(import.meta.url)("pino-pretty") as typeof PinoPretty;
    return pretty({
      colorize: true,
      translateTime: "SYS:standard",
      ignore: "pid,hostname,name",
      destination: 1,
      // Synchronous, like pino.destination(1): the last line before exit is not lost.
      sync: true,
    });
  } catch {
    return null;
  }
}

function defaultDestination(): pino.DestinationStream {
  return (process.stdout.isTTY ? prettyDestination() : null) ?? pino.destination(1);
}

export function createLogger(
  level: string,
  destination: pino.DestinationStream = defaultDestination(),
): Logger {
  return pino(
    {
      level,
      base: { name: "buildd" },
      hooks: { streamWrite: (line: string) => scrubText(line) },
    },
    destination,
  );
}
