// /readyz: can this builder take a build? Not while it drains, while the cache's file
// system is below its free-space reserve (the next download would be refused), or while a
// capability it is reserved for has no working version (every build it may take needs
// one). A busy builder is still ready: whether it is IDLE is status()'s to say.

import type { WebDeps } from "./deps.js";

export interface NotReady {
  readonly code: "draining" | "disk" | "capability";
  readonly message: string;
}

export function readiness(deps: WebDeps): NotReady[] {
  const reasons: NotReady[] = [];
  if (deps.draining()) {
    reasons.push({
      code: "draining",
      message:
        "the builder is draining: it takes no new builds (POST /api/v1/undrain, or buildd undrain, to take builds again)",
    });
  }
  const cache = deps.cache();
  if (cache.reserveBytes > 0 && cache.freeBytes < cache.reserveBytes) {
    reasons.push({
      code: "disk",
      message: `free space on the file cache's file system is ${cache.freeBytes} bytes, below the reserve of ${cache.reserveBytes} bytes ([cache] min_free); free some space or lower the reserve`,
    });
  }
  const caps = deps.capabilities();
  for (const name of deps.requiredCapabilities) {
    const versions = caps.filter((c) => c.name === name);
    if (versions.some((c) => c.available)) continue;
    const why = versions.map((c) => `${c.version ?? "(no version)"}: ${c.reason}`).join("; ");
    reasons.push({
      code: "capability",
      message: `capability ${name}, which this builder is reserved for ([builder] only_if_requires), is unavailable (${why})`,
    });
  }
  return reasons;
}
