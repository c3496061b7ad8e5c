// The commands this worker runs, under both the old and the new names the master may use
// (get_worker_info's worker_commands lists them all: a master refuses a step whose
// command the worker does not list).

import type { CommandRun } from "./command.js";
import {
  cpdirCommand,
  globCommand,
  listdirCommand,
  mkdirCommand,
  rmdirCommand,
  rmfileCommand,
  statCommand,
} from "./fscommands.js";
import { shellCommand } from "./shell.js";
import { downloadFile, uploadDirectory, uploadFile } from "./transfer.js";

/** The command protocol version the reference worker reports. */
export const COMMAND_VERSION = "3.1";

export const COMMANDS: ReadonlyMap<string, CommandRun> = new Map<string, CommandRun>([
  ["shell", shellCommand],
  ["uploadFile", uploadFile],
  ["upload_file", uploadFile],
  ["uploadDirectory", uploadDirectory],
  ["upload_directory", uploadDirectory],
  ["downloadFile", downloadFile],
  ["download_file", downloadFile],
  ["mkdir", mkdirCommand],
  ["rmdir", rmdirCommand],
  ["cpdir", cpdirCommand],
  ["stat", statCommand],
  ["glob", globCommand],
  ["listdir", listdirCommand],
  ["rmfile", rmfileCommand],
]);

export function workerCommands(): Record<string, string> {
  return Object.fromEntries([...COMMANDS.keys()].map((name) => [name, COMMAND_VERSION]));
}
