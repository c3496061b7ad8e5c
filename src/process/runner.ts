// The one process runner: every process the builder starts — build steps, tar, capability
// probes, rm, dpkg — goes through a ProcessRunner, and `processRunner` is the one real
// one (the composition root hands it to the backends, probes and host set-up). argv
// only, never a shell string; the child's whole environment is given, never inherited;
// by default each command is PID 1 of its own PID namespace (isolation.ts), so a kill
// reaches everything it started (tree.ts).
//
// Built on execa (spawning, argv and environment handling, buffering with a cap,
// interleaved output, errors that name the command); the namespace and its kill ladder
// are ours, because execa 9 only ever signals the direct child (docs/dependencies.md).
// execa runs in a process of its own, the spawn helper (spawner.ts, spawn-helper.ts):
// spawning blocks whoever does it until the child has exec'd, and a fork from the
// builder's process costs it a page fault on every page it writes afterwards, while the
// builder must keep answering. Only the helper loads execa.
//
// Without isolation (isolation.pid false, or unshare unusable here), the command leads its
// own process group and terminate() signals the group. That is weaker: a process that
// calls setsid/setpgid leaves the group and survives, and a daemonised leftover can keep
// our pipes open (done still settles 2 s after the top process exits).

import { capture } from "./capture.js";
import type { ProcessRunner } from "./spec.js";
import { startStreaming } from "./stream.js";

export type {
  CaptureResult,
  CaptureSpec,
  Isolation,
  ProcessRunner,
  RunResult,
  RunSpec,
  RunningProcess,
} from "./spec.js";
export { isolationSupport, spawnHelperPid, startSpawnHelper } from "./spawner.js";
export type { IsolationSupport } from "./spawn-messages.js";
export { killAlive } from "./pidns.js";

export const processRunner: ProcessRunner = Object.freeze({
  start: startStreaming,
  capture,
});
