// argv → config → builder → listen. Signals and the only process.exit live here.

import fs from "node:fs";
import { Command } from "commander";
import { loadConfig } from "./config/config.js";
import { isBuilddError } from "./errors.js";
import { createLogger } from "./logger.js";
import { startBuilder } from "./app.js";
import { VERSION } from "./version.js";
import { openDatabase } from "./state/db.js";
import { Journal } from "./builder/journal.js";

async function serve(opts: { config?: string }): Promise<void> {
  const config = loadOrExit(opts.config);
  const log = createLogger(config.log.level);
  let builder;
  try {
    builder = await startBuilder(config, log);
  } catch (err) {
    // A configured directory that cannot be created is found at start-up, not when the
    // file is read; it is still the configuration's fault, so it exits as one.
    if (isBuilddError(err, "BUILDD_ERR_CONFIG")) configErrorExit(err);
    log.fatal({ err }, "could not start");
    console.error(`buildd: could not start: ${err instanceof Error ? err.message : String(err)}`);
    process.exit(1);
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

function loadOrExit(file: string | undefined): ReturnType<typeof loadConfig> {
  try {
    return loadConfig({ file, env: process.env });
  } catch (err) {
    if (isBuilddError(err, "BUILDD_ERR_CONFIG")) configErrorExit(err);
    throw err;
  }
}

function configErrorExit(err: Error): never {
  console.error(`buildd: configuration error: ${err.message}`);
  process.exit(2);
}

/** The journal's record of recent builds, newest first (it is safe to read while serving). */
function history(opts: { config?: string; limit: string; json?: boolean }): void {
  const config = loadOrExit(opts.config);
  // Reading must not create a state directory (the database would make one here).
  if (!fs.existsSync(config.builder.statedir)) {
    console.error(
      `buildd: no journal yet: [builder] statedir ${config.builder.statedir} does not exist (no builder has run with this configuration)`,
    );
    process.exit(1);
  }
  const db = openDatabase(config.builder.statedir);
  try {
    const records = new Journal(db).history(Number(opts.limit) || 20).map((r) => ({
      build_id: r.buildId,
      build_type: r.buildType,
      build_status: r.buildStatus,
      started: new Date(r.startedAt).toISOString(),
      ended: r.endedAt === null ? null : new Date(r.endedAt).toISOString(),
      cleaned: r.cleanedAt === null ? null : new Date(r.cleanedAt).toISOString(),
      dependencies: r.dependencies,
    }));
    if (opts.json) {
      process.stdout.write(`${JSON.stringify(records, null, 2)}\n`);
      return;
    }
    for (const r of records) {
      const status = (r.build_status ?? "(running)").replace("BuildStatus.", "");
      process.stdout.write(
        `${r.started}  ${status.padEnd(11)}  ${r.build_type.padEnd(13)}  ${r.build_id}\n`,
      );
    }
  } finally {
    db.close();
  }
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
program
  .command("history")
  .description("list recent builds from the journal, newest first")
  .option(
    "-c, --config <file>",
    "configuration file (default: $BUILDD_CONFIG, else built-in defaults)",
  )
  .option("-n, --limit <count>", "how many builds", "20")
  .option("--json", "print JSON")
  .action(history);

program.parseAsync(process.argv).catch((err: unknown) => {
  console.error(`buildd: ${err instanceof Error ? err.message : String(err)}`);
  process.exit(1);
});
