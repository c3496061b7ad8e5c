// argv → the command it names. Each command lives in src/cli/ and throws a CliError to
// fail; this file prints that message and is the only place the process exits.

import { Command, Option } from "commander";
import { VERSION } from "./version.js";
import { CliError, EXIT } from "./cli/errors.js";
import { history } from "./cli/history.js";
import { init } from "./cli/init.js";
import type { CreateWorkerOptions } from "./cli/create-worker.js";
import { status } from "./cli/status.js";
import { logs } from "./cli/logs.js";
import { drain, undrain } from "./cli/drain.js";
import { drive, type DriveOptions } from "./cli/build.js";
import {
  binaryPackagePlan,
  scriptPlan,
  type BinaryPackageOptions,
  type ScriptOptions,
} from "./cli/build-inputs.js";
import { resolveTarget, type TargetOptions } from "./cli/target.js";
import { BuilderFault } from "./cli/client.js";

function exit(code: number): never {
  process.exit(code);
}

/** A repeatable option: each use adds one value (no default, so help shows none). */
const collect = (value: string, previous: string[] = []): string[] => [...previous, value];

const CONFIG_HELP = "configuration file (default: $BUILDD_CONFIG, else built-in defaults)";
const URL_HELP =
  "the builder, e.g. http://buildd:PASSWORD@127.0.0.1:8221 (default: $BUILDD_URL, else the address and [auth] of --config)";

/** The options of every command that talks to a running builder. */
function targetOptions(cmd: Command): Command {
  return cmd.option("-u, --url <url>", URL_HELP).option("-c, --config <file>", CONFIG_HELP);
}

function driveOptions(cmd: Command): Command {
  return targetOptions(cmd)
    .option("-o, --out <dir>", "where the results and the build log go", "results")
    .option("--build-id <id>", "the build's id (default: cli-TYPE-TIMESTAMP-PID)")
    .option(
      "--serve-host <address>",
      "the address the builder reaches this command at to download the files",
      "127.0.0.1",
    )
    .option("--keep", "leave the builder WAITING with the build instead of cleaning it")
    .option("-q, --quiet", "do not show the build log");
}

type DriveCliOptions = TargetOptions & DriveOptions;

const program = new Command();
program
  .name("buildd")
  .description("A build slave server speaking the Launchpad builder protocol (XML-RPC).")
  .version(VERSION, "-V, --version")
  .showHelpAfterError();

program
  .command("serve")
  .description("start the builder (XML-RPC on /rpc, files on /filecache)")
  .option("-c, --config <file>", CONFIG_HELP)
  // Loaded only here: the other commands talk to a builder and need none of its machinery.
  .action(async (opts: { config?: string }) => (await import("./cli/serve.js")).serve(opts, exit));

program
  .command("init")
  .description("write a commented buildd.conf into a new directory")
  .argument("<dir>", "the builder's directory (created if missing; state goes in DIR/var)")
  .option("--bindhost <address>", "the address to listen on", "127.0.0.1")
  .option("--port <port>", "the port to listen on", "8221")
  .option("--no-auth", "no password: anyone who reaches the port may drive the builder")
  .action((dir: string, opts: { bindhost: string; port: string; auth: boolean }) =>
    init(dir, opts, process.stdout),
  );

program
  .command("create-worker")
  .description("write a Buildbot worker's buildd.conf and secrets file into a new directory")
  .argument("<basedir>", "the worker's directory (created if missing; state goes in BASEDIR/var)")
  .argument("<master>", "the master's worker port, HOST:PORT (msgpack_experimental_v7)")
  .argument("<name>", "the worker's name, as the master's Worker() lists it")
  .argument("<password>", "the worker's password on the master (kept in BASEDIR/secrets.conf)")
  .option("--max-builds <n>", "builds at once, of both kinds together", "1")
  .option("--admin <text>", "who looks after this worker, for the master's worker page")
  .option("--host <text>", "a description of this machine, for the master's worker page")
  .option("--bindhost <address>", "the address the XML-RPC side listens on", "127.0.0.1")
  .option("--port <port>", "the port the XML-RPC side listens on", "8221")
  .action(
    async (
      dir: string,
      master: string,
      name: string,
      password: string,
      opts: CreateWorkerOptions,
    ) =>
      (await import("./cli/create-worker.js")).createWorker(
        dir,
        master,
        name,
        password,
        opts,
        process.stdout,
      ),
  );

targetOptions(program.command("status").description("show what a running builder is doing"))
  .option("--json", "print JSON")
  .action((opts: TargetOptions & { json?: boolean }) =>
    status(resolveTarget(opts), opts, process.stdout),
  );

targetOptions(
  program.command("logs").description("print the current build's log (--follow: as it grows)"),
)
  .option("-f, --follow", "keep printing what is appended until the build ends")
  .action((opts: TargetOptions & { follow?: boolean }) =>
    logs(resolveTarget(opts), opts, process.stdout),
  );

targetOptions(
  program.command("drain").description("finish the current build, then refuse new ones"),
)
  .option("-w, --wait", "return once no build is running")
  .action((opts: TargetOptions & { wait?: boolean }) =>
    drain(resolveTarget(opts), opts, process.stdout),
  );

targetOptions(
  program.command("undrain").description("take builds again after buildd drain"),
).action((opts: TargetOptions) => undrain(resolveTarget(opts), process.stdout));

program
  .command("history")
  .description("list recent builds from the journal, newest first")
  .option("-c, --config <file>", CONFIG_HELP)
  .option("-n, --limit <count>", "how many builds (1 to 10000)", "20")
  .option("--json", "print JSON")
  .action((opts: { config?: string; limit: string; json?: boolean }) =>
    history(opts, process.stdout),
  );

const build = program
  .command("build")
  .description("drive one build from local files; fetch its results");

driveOptions(
  build
    .command("script")
    .description("run steps in a copy of a directory (a script build)")
    .argument("<dir>", "the directory, tarred as the build's workspace"),
)
  .option(
    "-s, --step <name=command>",
    "a step, run by /bin/sh -c (repeatable, in order)",
    collect,
    [],
  )
  .option("--steps <file>", 'steps from a JSON file: [{"name": "...", "run": "..." or [...]}]')
  .option("-a, --artifact <glob>", "files in the workspace to bring back (repeatable)", collect)
  .option(
    "-e, --env <name=value>",
    "an environment variable for every step (repeatable)",
    collect,
    [],
  )
  .option(
    "--secret <name>",
    "send $NAME from this environment as a masked secret (repeatable)",
    collect,
    [],
  )
  .option("--timeout <seconds>", "for the whole build")
  .action(async (dir: string, opts: DriveCliOptions & ScriptOptions) => {
    const plan = await scriptPlan(dir, opts);
    try {
      exit(await drive(resolveTarget(opts), plan, opts));
    } finally {
      plan.cleanup();
    }
  });

driveOptions(
  build
    .command("binarypackage")
    .description("build a Debian source package in a chroot (the builder must run as root)")
    .argument("<dsc>", "the .dsc; the files it lists must be beside it")
    .argument("<chroot>", "a chroot tarball, e.g. made by mmdebstrap"),
)
  .option("--suite <name>", "the series and suite to send", "bookworm")
  .option("--component <name>", "the component to send", "main")
  .option("--arch-indep", "also build Architecture: all packages")
  .option(
    "--archive <line>",
    "a sources.list line replacing the chroot's (repeatable)",
    collect,
    [],
  )
  .option(
    "--trusted-key <file>",
    "an ASCII-armoured key for those archives (repeatable)",
    collect,
    [],
  )
  .addOption(new Option("--series <name>").hideHelp())
  .action(async (dsc: string, chroot: string, opts: DriveCliOptions & BinaryPackageOptions) => {
    const plan = await binaryPackagePlan(dsc, chroot, opts);
    exit(await drive(resolveTarget(opts), plan, opts));
  });

program.parseAsync(process.argv).then(
  () => {
    // `serve` keeps running; every other command is done when its action returns.
  },
  (err: unknown) => {
    if (err instanceof CliError) {
      console.error(`buildd: ${err.message}`);
      exit(err.exitCode);
    }
    if (err instanceof BuilderFault) {
      console.error(`buildd: ${err.message}`);
      exit(EXIT.FAILED);
    }
    console.error(`buildd: ${err instanceof Error ? err.message : String(err)}`);
    exit(EXIT.FAILED);
  },
);
