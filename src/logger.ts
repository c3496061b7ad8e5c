// The builder's own log: JSON lines from pino on standard output. Every line passes the
// same credential scrubber as the build log, so a URL with a password that reaches a log
// call (an ensurepresent URL, a failing command line) is never written out in clear.
import pino, { type Logger } from "pino";
import { scrubText } from "./log/scrub.js";

export type { Logger };

export function createLogger(
  level: string,
  destination: pino.DestinationStream = pino.destination(1),
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
