// Starts a real builder for tests: the same code `buildd serve` runs, on port 0, with a
// temporary config, cache and state directory. Two ways:
//   - startTestBuilder() (here): in this process (fast; logs captured for assertions);
//   - startBuilderProcess() (process.ts): as a child process, so a test can SIGKILL it
//     and start it again on the same directories (restart tests), and a benchmark can
//     run the built program as `npm start` does; startBuilderExpectingExit() for a start
//     that must refuse and exit.
// Directories and the config file come from dirs.ts. This module re-exports both, so a
// test imports every way of starting a builder from one place.

import fs from "node:fs";
import { Writable } from "node:stream";
import { loadConfig } from "../src/config/config.js";
import { createLogger } from "../src/logger.js";
import { startBuilder, type BuilderOverrides } from "../src/app.js";
import { createClient, type RpcClient } from "./client.js";
import { makeBuilderDirs, type BuilderDirs, type ConfSections, type RawSections } from "./dirs.js";

export { makeBuilderDirs, type BuilderDirs, type ConfSections, type RawSections } from "./dirs.js";
export {
  startBuilderExpectingExit,
  startBuilderProcess,
  type BuilderProcess,
  type Entry,
  type ExitedStart,
  type ProcessOptions,
} from "./process.js";

export interface TestBuilder extends BuilderDirs {
  readonly url: string;
  readonly client: RpcClient;
  /** Every line the builder logged so far (JSON text, as written). */
  logText(): string;
  stop(): Promise<void>;
}

export async function startTestBuilder(
  sections: ConfSections = {},
  raw: RawSections = {},
  overrides: BuilderOverrides = {},
): Promise<TestBuilder> {
  const dirs = makeBuilderDirs(sections, undefined, raw);
  const config = loadConfig({ file: dirs.configFile });
  const chunks: string[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, cb) {
      chunks.push(chunk.toString("utf8"));
      cb();
    },
  });
  const log = createLogger(config.log.level, sink);
  const running = await startBuilder(config, log, overrides);
  // The web surface loads a moment after the builder listens; tests may use it at once.
  await running.loadWeb();
  return {
    ...dirs,
    url: running.url,
    client: createClient(running.url),
    logText: () => chunks.join(""),
    async stop() {
      await running.close();
      fs.rmSync(dirs.dir, { recursive: true, force: true });
    },
  };
}
