// How a Buildbot step is sandboxed: the same prologue as a Launchpad host step
// (backends/sandbox.ts) — the build user, private /tmp, PID and mount namespace — with the
// builder's directory as the workspace. What is covered: the worker's basedir (the other
// builders' directories, info/) and the builder's state directory (journal, Launchpad
// workspaces). The prologue covers one directory with a tmpfs and binds the workspace
// back into it, and hides the rest; so the covered one is whichever of the two holds the
// basedir, and the state directory is hidden too when it is elsewhere. The shared cache
// is bound back like a directory a capability hands the build.

import path from "node:path";
import { inside, keptDirectories, sandboxWrap, type HostSandbox } from "../backends/sandbox.js";

/** The wrap and isolation that run a command sandboxed in `builderDir`. */
export function sandboxedRun(
  sandbox: HostSandbox,
  basedir: string,
  builderDir: string,
  env: Readonly<Record<string, string>>,
  sharedCache: string | null,
): { wrap: string[]; isolation: { mount: true } } {
  const basedirInState = inside(basedir, sandbox.statedir);
  const forBuildbot: HostSandbox = basedirInState
    ? sandbox
    : { ...sandbox, statedir: basedir, hidden: [...sandbox.hidden, sandbox.statedir] };
  const keep = keptDirectories(env, builderDir);
  if (sharedCache !== null && !inside(sharedCache, builderDir)) {
    keep.unshift(path.normalize(sharedCache));
  }
  return {
    // The shared cache first: sandboxWrap keeps at most MAX_KEPT directories.
    wrap: sandboxWrap(forBuildbot, builderDir, [...new Set(keep)]),
    isolation: { mount: true },
  };
}
