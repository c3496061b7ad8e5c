// `buildd serve`: start the builder and keep it running until a signal. The first
// SIGTERM/SIGINT stops taking work and gives a running build [build] shutdown_grace to
// finish; a second one ends the grace at once (hurry()).

import type { Config } from "../config/config.js";
import { isBuilddError } from "../errors.js";
import { createLogger } from "../logger.js";
import { startBuilder } from "../app.js";
import { loadCliConfig } from "./config.js";
import { CliError, EXIT } from "./errors.js";

/** The process's exit, passed in by src/cli.ts: the only place that ends the process. */
export type Exit = (code: number) => never;

export async function serve(opts: { config?: string }, exit: Exit): Promise<void> {
  const config: Config = loadCliConfig(opts.config);
  const log = createLogger(config.log.level);
  let builder;
  try {
    builder = await startBuilder(config, log);
  } catch (err) {
    // A configured directory that cannot be created is found at start-up, not when the
    // file is read; it is still the configuration's fault, so it exits as one.
    if (isBuilddError(err, "BUILDD_ERR_CONFIG"))
      throw new CliError(`configuration error: ${err.message}`, EXIT.USAGE);
    log.fatal({ err }, "could not start");
    throw new CliError(`could not start: ${err instanceof Error ? err.message : String(err)}`);
  }
  const running = builder;
  let stopping = false;
  const stop = (signal: NodeJS.Signals): void => {
    if (stopping) {
      log.warn({ signal }, "second signal: stopping the running build now");
      running.hurry();
      return;
    }
    stopping = true;
    log.info(
      { signal },
      "stopping: no new builds; a running build gets [build] shutdown_grace to finish",
    );
    running.close().then(
      () => {
        log.info("stopped");
        exit(EXIT.OK);
      },
      (err: unknown) => {
        log.error({ err }, "error while stopping");
        exit(EXIT.FAILED);
      },
    );
  };
  process.on("SIGTERM", stop);
  process.on("SIGINT", stop);
  // A renewed certificate is picked up without a restart: running builds go on.
  process.on("SIGHUP", () => void running.reloadTls());
}
