// `buildd create-worker BASEDIR HOST:PORT NAME PASSWORD`: a ready-to-run Buildbot worker,
// as `buildbot-worker create-worker` makes one. BASEDIR/buildd.conf has [buildbot] set
// to the master, with the state, the file cache, the builders' directories and the
// shared cache inside BASEDIR; BASEDIR/secrets.conf (mode 0600) holds the worker's
// password and a generated [auth] password for the XML-RPC side, which stays closed to
// anyone without it. Run as root, it also makes sure the unprivileged user steps run as
// exists, so that the first build never waits for it.

import { usageError, wholeNumber } from "./errors.js";
import {
  baseKeys,
  ensureBuildUserFor,
  generatedPassword,
  listenOptions,
  managerUrl,
  writeBuilderDirectory,
} from "./init.js";

export interface CreateWorkerOptions {
  readonly bindhost: string;
  readonly port: string;
  readonly maxBuilds: string;
  readonly admin?: string;
  readonly host?: string;
}

export async function createWorker(
  dir: string,
  master: string,
  name: string,
  password: string,
  opts: CreateWorkerOptions,
  out: NodeJS.WritableStream,
): Promise<void> {
  const { bindhost, port } = listenOptions(opts);
  const maxBuilds = wholeNumber("--max-builds", opts.maxBuilds, 1, 64);
  if (password === "") {
    throw usageError("PASSWORD is empty: give the password the master's Worker() has for NAME");
  }
  const set = baseKeys(bindhost, port);
  set.set("buildbot.master", master);
  set.set("buildbot.name", name);
  set.set("buildbot.max_builds", String(maxBuilds));
  set.set("buildbot.basedir", "var/buildbot");
  set.set("buildbot.shared_cache", "var/shared-cache");
  if (opts.admin !== undefined) set.set("buildbot.admin", opts.admin);
  if (opts.host !== undefined) set.set("buildbot.host", opts.host);
  // Anything wrong with HOST:PORT or NAME is the configuration's own message, naming
  // the key, and nothing is left written.
  const { file, secretsFile } = writeBuilderDirectory(dir, {
    command: "buildd create-worker",
    set,
    secrets: new Map([
      ["auth", new Map([["password", generatedPassword()]])],
      ["buildbot", new Map([["password", password]])],
    ]),
  });
  out.write(
    `wrote ${file}\n` +
      `wrote the worker's password and a generated [auth] password to ${secretsFile} (mode 0600)\n`,
  );
  await ensureBuildUserFor(file, out);
  out.write(
    `start the worker:  buildd serve --config ${file}\n` +
      `it connects to the Buildbot master at ${master} as ${name}; in master.cfg:\n` +
      `  c['workers'] = [worker.Worker(${JSON.stringify(name)}, PASSWORD, max_builds=${maxBuilds})]\n` +
      `  c['protocols'] = {'msgpack_experimental_v7': {'port': ${master.slice(master.lastIndexOf(":") + 1)}}}\n` +
      managerUrl(bindhost, port, secretsFile),
  );
}
