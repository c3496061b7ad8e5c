// `buildd logs [--follow]`: the current build's log (from build() until clean()). With
// --follow it keeps printing what is appended until the build is no longer running,
// then prints the rest and exits.

import { BuilderStatus } from "../protocol/states.js";
import { BuilderClient, str } from "./client.js";
import { CliError } from "./errors.js";
import { LogFollower } from "./log-follower.js";
import type { Target } from "./target.js";

const POLL_MS = 500;

export async function logs(
  target: Target,
  opts: { follow?: boolean },
  out: NodeJS.WritableStream,
): Promise<void> {
  const client = new BuilderClient(target);
  const log = new LogFollower(client);
  const first = await log.poll();
  if (first === null) {
    throw new CliError(
      `the builder at ${target.base} has no build log: it is IDLE (a log exists from build() until clean())`,
    );
  }
  out.write(first);
  if (!opts.follow) return;
  for (;;) {
    const state = str(await client.status(), "builder_status");
    const more = await log.poll();
    if (more) out.write(more);
    if (state !== BuilderStatus.BUILDING && state !== BuilderStatus.ABORTING) return;
    await new Promise((r) => setTimeout(r, POLL_MS));
  }
}
