// The names the protocol puts on the wire, as string unions, so that a typo is a type error.

export const BuilderStatus = {
  IDLE: "BuilderStatus.IDLE",
  BUILDING: "BuilderStatus.BUILDING",
  ABORTING: "BuilderStatus.ABORTING",
  WAITING: "BuilderStatus.WAITING",
  /** Only as a build() result. */
  UNKNOWNSUM: "BuilderStatus.UNKNOWNSUM",
  /** Only as a build() result. */
  UNKNOWNBUILDER: "BuilderStatus.UNKNOWNBUILDER",
} as const;

/** The four states the builder itself can be in. */
export type BuilderState = (typeof BuilderStatus)["IDLE" | "BUILDING" | "ABORTING" | "WAITING"];

export const BuildStatus = {
  OK: "BuildStatus.OK",
  DEPFAIL: "BuildStatus.DEPFAIL",
  GIVENBACK: "BuildStatus.GIVENBACK",
  PACKAGEFAIL: "BuildStatus.PACKAGEFAIL",
  CHROOTFAIL: "BuildStatus.CHROOTFAIL",
  BUILDERFAIL: "BuildStatus.BUILDERFAIL",
  ABORTED: "BuildStatus.ABORTED",
} as const;

export type BuildResult = (typeof BuildStatus)[keyof typeof BuildStatus];

export const PROTOCOL_VERSION = "1.0";

/**
 * The builder's phases: the four protocol states plus CLEANING, the inside of clean()
 * (journaled, files being removed). CLEANING never reaches the wire: status() shows it
 * as WAITING without a filemap, and build() is refused until clean() has returned.
 */
export type BuilderPhase = BuilderState | "CLEANING";
