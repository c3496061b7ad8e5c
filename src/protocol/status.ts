// What the builder says about itself: a typed snapshot that each edge renders its own
// way (rpc/ as the protocol's status() struct; later a page or JSON). The builder never
// builds wire structs.

import type { BuildResult, BuilderState } from "./states.js";
import type { Struct } from "./values.js";

export interface BuildSnapshot {
  readonly id: string;
  /** BUILDING: the last bytes of the build log. */
  readonly logtail?: Buffer;
  /** WAITING (and while cleaning): the result. */
  readonly result?: BuildResult | null;
  /** WAITING with a result that has files: name → SHA-1 of each result file. */
  readonly filemap?: Readonly<Record<string, string>>;
  /** WAITING with a result that has files: unmet dependencies ("" unless DEPFAIL). */
  readonly dependencies?: string;
  /** clean() is removing the build's files (the protocol still says WAITING). */
  readonly cleaning?: boolean;
  /** Keys a build type or a capability adds (build_step, capabilities, …). */
  readonly extra: Struct;
}

/** A download in progress (ensurepresent), as the manager may see it. */
export interface DownloadSnapshot {
  readonly sha1: string;
  /** Bytes received so far. */
  readonly bytes: number;
  /** The body's Content-Length; null until the librarian answered, or when it sent none. */
  readonly total: number | null;
}

export interface StatusSnapshot {
  readonly state: BuilderState;
  readonly version: string;
  /** The current build, from build() until clean() has finished. */
  readonly build: BuildSnapshot | null;
  /** Downloads in progress; absent or empty: none (the wire then has no such key). */
  readonly downloads?: readonly DownloadSnapshot[];
}
