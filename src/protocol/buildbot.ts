// What the Buildbot worker connection reports about itself, for the status page, the
// API and /metrics (src/web/ reads it; src/buildbot/ owns it).

export type BuildbotConnectionState =
  /** Trying to connect (first attempt, or waiting for the next one after a failure). */
  | "connecting"
  /** The WebSocket is open and the master has attached us. */
  | "connected"
  /** Not connected; `lastError` says why and `nextAttemptAt` when it tries again. */
  | "disconnected"
  /** Closed by buildd (shutdown, or the master's `shutdown`). */
  | "stopped";

export interface BuildbotCommandInfo {
  readonly builder: string;
  readonly commandId: string;
  /** shell, upload_file, … */
  readonly command: string;
  /** Epoch milliseconds. */
  readonly startedAt: number;
}

export interface BuildbotStatus {
  /** host:port as configured. */
  readonly master: string;
  readonly name: string;
  readonly state: BuildbotConnectionState;
  /** Epoch milliseconds of the last change of state. */
  readonly since: number;
  /** Why the last attempt or connection failed ("401 Unauthorized", "connect ECONNREFUSED …"); null if none did. */
  readonly lastError: string | null;
  /** Epoch milliseconds of the next connection attempt, when disconnected. */
  readonly nextAttemptAt: number | null;
  /** Builders the master has set (set_builder_list). */
  readonly builders: readonly string[];
  /** Commands running now. */
  readonly running: readonly BuildbotCommandInfo[];
  /** Totals since start-up. */
  readonly connects: number;
  readonly commands: number;
  readonly commandFailures: number;
}
