// What the worker tells the master about itself (get_worker_info), and what the master
// tells the worker (set_worker_settings, set_builder_list), narrowed from the wire.

import os from "node:os";
import { workerCommands } from "./commands.js";
import { DEFAULT_SETTINGS, newlinePattern, type OutputSettings } from "./output.js";
import { optNum, optStr, WireError, type WireMap } from "./wire.js";

export interface InfoSource {
  readonly basedir: string;
  readonly version: string;
  /** admin, host, capabilities (a JSON string), …: read at each get_worker_info. */
  readonly info: () => Record<string, string>;
}

/**
 * get_worker_info's answer. `environ` is the environment steps start from (the master
 * expands "~" in transfer paths with its HOME), never the daemon's own, which may name
 * our configuration and secrets.
 */
export function workerInfo(
  src: InfoSource,
  environ: Readonly<Record<string, string>>,
): Record<string, unknown> {
  return {
    ...src.info(),
    environ,
    system: "posix",
    basedir: src.basedir,
    numcpus: os.availableParallelism(),
    version: src.version,
    worker_commands: workerCommands(),
    // Our builder directories are ours to keep: a master must not delete them.
    delete_leftover_dirs: false,
  };
}

/** set_worker_settings: how output is batched and cut (buffer_timeout is in seconds). */
export function outputSettings(args: WireMap): OutputSettings {
  const size = optNum(args, "buffer_size");
  const timeout = optNum(args, "buffer_timeout");
  const lineLength = optNum(args, "max_line_length");
  const newline = optStr(args, "newline_re");
  return {
    bufferSize: size ?? DEFAULT_SETTINGS.bufferSize,
    bufferTimeoutMs: timeout === null ? DEFAULT_SETTINGS.bufferTimeoutMs : timeout * 1000,
    maxLineLength: lineLength ?? DEFAULT_SETTINGS.maxLineLength,
    newline: newline === null ? DEFAULT_SETTINGS.newline : newlinePattern(newline),
  };
}

/** set_builder_list's `builders`: [name, directory] pairs. */
export function builderList(v: unknown): [string, string][] {
  if (!Array.isArray(v)) throw new WireError('"builders" is not a list');
  return v.map((pair: unknown) => {
    if (Array.isArray(pair) && typeof pair[0] === "string" && typeof pair[1] === "string") {
      return [pair[0], pair[1]];
    }
    throw new WireError('"builders" has an entry that is not [name, directory]');
  });
}
