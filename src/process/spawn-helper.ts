// The spawn helper: a small Node process (forked by spawner.ts) that starts every
// command the builder runs, with execa, and owns the commands' pipes. Spawning blocks
// whoever does it (libuv forks, then waits until the child has exec'd: about 7 ms per
// command on two busy cores), and a fork from the builder's own process made every page
// the builder then wrote fault once (spawner.ts); here it costs the builder neither.
//
// The helper keeps no state beyond its running jobs and decides nothing: the builder
// says what to spawn and gets back the pid, the namespace, the output, the exit and the
// result. A pipe is paused after each chunk it relays until the builder says the chunk
// is in the log, so a full log holds the child back exactly as a full pipe would.
//
// It lives as long as the builder: when the builder's channel closes (the builder
// exited, even by SIGKILL) it kills what it started and exits. It ignores SIGINT and
// SIGTERM, which reach it with the builder's process group or service: the builder
// decides when commands stop. `setpriv --pdeathsig` (isolation.ts) on each command is
// the kernel's own backstop for a helper killed outright.

import { existsSync } from "node:fs";
import type { Readable } from "node:stream";
import { execa, type ResultPromise } from "execa";
import { DEFAULT_PATH, defaultEnv } from "./environment.js";
import { UNSHARE_FLAGS } from "./isolation.js";
import { identifyNamespace, nsChildPid, pidNamespaceOf, type NamespaceIdentity } from "./pidns.js";
import type { FromHelper, IsolationSupport, Settled, ToHelper } from "./spawn-messages.js";

if (!process.send) throw new Error("spawn-helper.ts runs as a child process (see spawner.ts)");

const post = (message: FromHelper): void => {
  if (process.connected) process.send!(message);
};

/**
 * Whether PID namespaces work here: `unshare … -- true`, once, as the helper starts. Not
 * awaited before other work: a command that asks for no namespace (dpkg at start-up)
 * runs meanwhile.
 */
async function probeIsolation(): Promise<IsolationSupport> {
  const unshare = DEFAULT_PATH.split(":")
    .map((dir) => `${dir}/unshare`)
    .find((file) => existsSync(file));
  if (!unshare) return { ok: false, detail: "unshare not found" };
  const probe = await execa(unshare, [...UNSHARE_FLAGS, "--", "true"], {
    env: defaultEnv(),
    extendEnv: false,
    stdin: "ignore",
    stdout: "ignore",
    reject: false,
    timeout: 10_000,
  });
  if (probe.exitCode === 0) return { ok: true, detail: unshare };
  const why = probe.stderr?.trim() || probe.originalMessage || probe.shortMessage || "failed";
  return { ok: false, detail: why };
}

interface Job {
  readonly subprocess: ResultPromise;
  readonly pipes: Partial<Record<1 | 2, Readable>>;
  /** Settles once "namespace" is posted (at once when there is none to find). */
  readonly namespaceReported: Promise<void>;
}
const jobs = new Map<number, Job>();

const OWN_NAMESPACE = pidNamespaceOf(process.pid);

/**
 * The namespace whose PID 1 is unshare's child. It appears shortly after the spawn, so
 * /proc is polled (nsChildPid): here, where it blocks no one, not in the builder,
 * where it took a few tenths of a millisecond of every build step. Read while PID 1
 * certainly exists, which is what lets the kill ladder tell it from a reused number.
 */
async function findNamespace(unsharePid: number): Promise<NamespaceIdentity | null> {
  const init = await nsChildPid(unsharePid);
  const id = init === null ? null : identifyNamespace(init);
  return id !== null && id.ns !== OWN_NAMESPACE ? id : null;
}

function start(m: Extract<ToHelper, { op: "start" }>): void {
  const { id, command, options, kind } = m;
  let subprocess: ResultPromise;
  try {
    subprocess = execa(command[0]!, command.slice(1), {
      cwd: options.cwd,
      env: options.env,
      extendEnv: false,
      // execa writes the input into a pipe and closes it; a command that does not read
      // it is not held up (a write into a closed pipe is ignored).
      ...(options.input === undefined ? { stdin: "ignore" } : { input: options.input }),
      reject: false,
      // Its own process group: the fallback kill target, and unshare's group when isolated.
      detached: true,
      ...(kind === "capture"
        ? { all: true, maxBuffer: m.maxBuffer, stripFinalNewline: false }
        : { buffer: false, encoding: "buffer" }),
    });
  } catch (e) {
    // Invalid arguments (a NUL byte in argv or env) throw instead of failing the promise.
    post({ ev: "spawned", id, pid: undefined });
    const message = e instanceof Error ? e.message : String(e);
    post({ ev: "settled", id, result: { exitCode: undefined, signal: undefined, message } });
    return;
  }
  const pid = subprocess.pid;
  post({ ev: "spawned", id, pid });
  const namespaceReported =
    m.isolated && pid !== undefined
      ? findNamespace(pid)
          .catch(() => null)
          .then((namespace) => post({ ev: "namespace", id, namespace }))
      : Promise.resolve();
  const job: Job = { subprocess, pipes: {}, namespaceReported };
  jobs.set(id, job);
  subprocess.once("exit", () => post({ ev: "exit", id }));
  if (kind === "stream") {
    for (const fd of [1, 2] as const) {
      const pipe = fd === 1 ? subprocess.stdout : subprocess.stderr;
      if (!pipe) continue;
      job.pipes[fd] = pipe;
      pipe.on("data", (chunk: Buffer) => {
        pipe.pause();
        post({ ev: "data", id, fd, chunk });
      });
    }
  }
  void subprocess.then(
    (r) => settle(job, id, r),
    (e: unknown) => settle(job, id, { message: e instanceof Error ? e.message : String(e) }),
  );
}

function settle(
  job: Job,
  id: number,
  r: {
    exitCode?: number | undefined;
    signal?: string | undefined;
    originalMessage?: string | undefined;
    shortMessage?: string | undefined;
    message?: string;
    stdout?: unknown;
    stderr?: unknown;
    all?: unknown;
    isMaxBuffer?: boolean;
  },
): void {
  jobs.delete(id);
  const text = (v: unknown): string | undefined => (typeof v === "string" ? v : undefined);
  const result: Settled = {
    exitCode: r.exitCode,
    signal: r.signal,
    message: r.originalMessage ?? r.shortMessage ?? r.message,
    stdout: text(r.stdout),
    stderr: text(r.stderr),
    all: text(r.all),
    isMaxBuffer: r.isMaxBuffer ?? false,
  };
  void job.namespaceReported.then(() => post({ ev: "settled", id, result }));
}

process.on("message", (m: ToHelper) => {
  switch (m.op) {
    case "start":
      start(m);
      return;
    case "resume":
      jobs.get(m.id)?.pipes[m.fd]?.resume();
      return;
    case "cut": {
      const job = jobs.get(m.id);
      job?.subprocess.stdout?.destroy();
      job?.subprocess.stderr?.destroy();
      return;
    }
  }
});

/** The builder is gone: nothing is left to report to, so nothing it started may go on. */
function builderGone(): void {
  for (const { subprocess } of jobs.values()) {
    // Its process group: unshare when isolated, whose --kill-child then takes down the
    // namespace; the command and what it started otherwise.
    if (subprocess.pid !== undefined) {
      try {
        process.kill(-subprocess.pid, "SIGKILL");
      } catch {
        // gone already
      }
    }
  }
  process.exit(0);
}

process.on("disconnect", builderGone);
for (const signal of ["SIGINT", "SIGTERM"] as const) process.on(signal, () => {});

void probeIsolation().then((isolation) => post({ ev: "ready", isolation }));
