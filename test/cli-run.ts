// Running the `buildd` command as a real child process, as an operator does: its exit
// status and its output, with standard output a pipe (so never a terminal).
import { execFile } from "node:child_process";
import path from "node:path";
import { fileURLToPath } from "node:url";

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const CLI = path.join(ROOT, "src/cli.ts");

export interface CliRun {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

/** `buildd ARGS…` in `cwd` (default: the repository); resolves however it exits. */
export function buildd(
  args: readonly string[],
  opts: { cwd?: string; env?: NodeJS.ProcessEnv; timeoutMs?: number } = {},
): Promise<CliRun> {
  // The CLI reads $BUILDD_CONFIG and $BUILDD_URL: keep the caller's out of the tests.
  const env = { ...process.env, ...opts.env };
  if (opts.env?.["BUILDD_CONFIG"] === undefined) delete env["BUILDD_CONFIG"];
  if (opts.env?.["BUILDD_URL"] === undefined) delete env["BUILDD_URL"];
  return new Promise((resolve, reject) => {
    execFile(
      process.execPath,
      // tsx is found from the repository whatever the working directory.
      ["--import", import.meta.resolve("tsx"), CLI, ...args],
      {
        cwd: opts.cwd ?? ROOT,
        env,
        timeout: opts.timeoutMs ?? 60_000,
        killSignal: "SIGKILL",
        maxBuffer: 64 << 20,
      },
      (err, stdout, stderr) => {
        if (err && typeof err.code !== "number") {
          reject(new Error(`buildd ${args.join(" ")}: ${err.message}\n${stdout}\n${stderr}`));
          return;
        }
        resolve({ code: err ? (err.code as number) : 0, stdout, stderr });
      },
    );
  });
}
