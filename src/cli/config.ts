// The configuration as the commands read it: loaded once, a bad file is a usage error
// (exit status 2) naming file, section and key, as `buildd serve` reports it.

import { loadConfig, type Config } from "../config/config.js";
import { isBuilddError } from "../errors.js";
import { CliError, EXIT } from "./errors.js";

export function loadCliConfig(file: string | undefined): Config {
  try {
    return loadConfig({ file, env: process.env });
  } catch (err) {
    if (isBuilddError(err, "BUILDD_ERR_CONFIG")) {
      throw new CliError(`configuration error: ${err.message}`, EXIT.USAGE);
    }
    throw err;
  }
}
