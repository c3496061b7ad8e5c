// argv → config → builder → listen. Signals and the only process.exit live here.

import { Command } from "commander";
import { loadConfig } from "./config.js";
import { isBuilddError } from "./errors.js";
import { createLogger } from "./logger.js";
import { startBuilder } from "./app.js";
import { VERSION } from "./version.js";

async function serve(opts: { config?: string }): Promise<void> {
  let config;
  try {
    config = loadConfig({ file: opts.config, env: process.env });
  } catch (err) {
    if (isBuilddError(err, "BUILDD_ERR_CONFIG")) {
      console.error(`buildd: configuration error: ${err.message}`);
      process.exit(2);
    }
    throw err;
  }
  const log = createLogger(config.log.level);
  let builder;
  try {
    builder = await startBuilder(config, log);
  } catch (err) {
    log.fatal({ err }, "could not start");
    console.error(`buildd: could not start: ${err instanceof Error ? err.message : String(err)}`);
    process.exit(1);
  }
  const running = builder;
  let stopping = false;
  const stop = (signal: NodeJS.Signals): void => {
    if (stopping) return;
    stopping = true;
    log.info({ signal }, "stopping: letting in-flight calls finish");
    running.close().then(
      () => {
        log.info("stopped");
        process.exit(0);
      },
      (err: unknown) => {
        log.error({ err }, "error while stopping");
        process.exit(1);
      },
    );
  };
  process.on("SIGTERM", stop);
  process.on("SIGINT", stop);
}

const program = new Command();
program
  .name("buildd")
  .description("A build slave server speaking the Launchpad builder protocol (XML-RPC).")
  .version(VERSION, "-V, --version");
program
  .command("serve")
  .description("start the builder and serve XML-RPC on /rpc and the file cache on /filecache")
  .option(
    "-c, --config <file>",
    "configuration file (default: $BUILDD_CONFIG, else built-in defaults)",
  )
  .action(serve);

program.parseAsync(process.argv).catch((err: unknown) => {
  console.error(`buildd: ${err instanceof Error ? err.message : String(err)}`);
  process.exit(1);
});
