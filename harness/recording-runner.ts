// A ProcessRunner that runs nothing: it records every command exactly as the real runner
// would get it (argv, environment, working directory, isolation, wrap) and answers with
// scripted exit codes and output. Tests hand it to the real backends and build types to
// assert the exact commands they run, without root and without a chroot.

import type {
  CaptureResult,
  CaptureSpec,
  Isolation,
  ProcessRunner,
  RunResult,
  RunSpec,
  RunningProcess,
} from "../src/process/runner.js";

/** One command as it was given to the runner. */
export interface RecordedCommand {
  readonly kind: "start" | "capture";
  readonly argv: readonly string[];
  readonly env?: Readonly<Record<string, string>>;
  readonly cwd?: string;
  readonly isolation?: Isolation;
  readonly wrap?: readonly string[];
  readonly logArgv?: readonly string[];
  readonly timeoutMs?: number;
}

/** How a recorded command "ends": defaults are exit 0 and no output. */
export interface ScriptedAnswer {
  readonly exitCode?: number | null;
  readonly signal?: NodeJS.Signals | null;
  readonly stdout?: string;
  readonly stderr?: string;
}

export class RecordingRunner implements ProcessRunner {
  readonly commands: RecordedCommand[] = [];
  /** Commands that were terminate()d, by their index in `commands`. */
  readonly terminated: number[] = [];

  constructor(private readonly answer: (cmd: RecordedCommand) => ScriptedAnswer = () => ({})) {}

  /** The argv of every command started (not captured), in order. */
  started(): (readonly string[])[] {
    return this.commands.filter((c) => c.kind === "start").map((c) => c.argv);
  }

  start(spec: RunSpec): RunningProcess {
    const cmd = this.record("start", spec, {
      wrap: spec.wrap,
      logArgv: spec.logArgv,
    });
    const index = this.commands.length - 1;
    const a = this.answer(cmd);
    spec.log.logCommand(spec.logArgv ?? spec.argv);
    // Output arrives after start() returned, as from a real process.
    const done = new Promise<RunResult>((resolve) =>
      setImmediate(() => {
        const stdout = a.stdout ?? "";
        if (stdout !== "") spec.log.write(stdout);
        if (a.stderr) spec.log.write(a.stderr);
        resolve({ exitCode: a.exitCode ?? 0, signal: a.signal ?? null });
      }),
    );
    return {
      pid: Promise.resolve(-1),
      done,
      terminate: async () => {
        this.terminated.push(index);
        return { survivors: [] };
      },
      namespace: Promise.resolve(null),
      killRemaining: () => [],
    };
  }

  async capture(spec: CaptureSpec): Promise<CaptureResult> {
    const a = this.answer(this.record("capture", spec, { timeoutMs: spec.timeoutMs }));
    const stdout = a.stdout ?? "";
    const stderr = a.stderr ?? "";
    return {
      exitCode: a.exitCode ?? 0,
      signal: a.signal ?? null,
      stdout,
      stderr,
      output: stdout + stderr,
      timedOut: false,
      canceled: false,
      error: null,
    };
  }

  private record(
    kind: RecordedCommand["kind"],
    spec: CaptureSpec | RunSpec,
    extra: Partial<RecordedCommand>,
  ): RecordedCommand {
    // Only the keys that were given, so tests can compare with deepEqual.
    const cmd = Object.fromEntries(
      Object.entries({
        kind,
        argv: [...spec.argv],
        env: spec.env,
        cwd: spec.cwd,
        isolation: spec.isolation,
        ...extra,
      }).filter(([, v]) => v !== undefined),
    ) as unknown as RecordedCommand;
    this.commands.push(cmd);
    return cmd;
  }
}
