/**
 * What every command-line entry point shares (api, worker, dku, migrate, field, the benchmarks):
 * --help and --version, and the exit status after SIGINT/SIGTERM. Library code; the entry points
 * decide when to exit.
 */
import pkg from "../../package.json" with { type: "json" };

/** The project's version (package.json), printed by --version and reported by /health. */
export const VERSION: string = pkg.version;

/** Exit status after SIGINT (Ctrl-C) and SIGTERM: 128 + the signal's number, as shells report it. */
export const SIGNAL_EXIT = { SIGINT: 130, SIGTERM: 143 } as const;

/** The signals a command stops on. */
export type StopSignal = keyof typeof SIGNAL_EXIT;

/**
 * Prints `usage` for --help/-h or "`name` VERSION" for --version/-V; returns the exit status to end
 * with (0), or null when `argv` asks for neither.
 */
export function answerHelpOrVersion(name: string, usage: string, argv: readonly string[]): number | null {
  if (argv.includes("--help") || argv.includes("-h")) {
    console.log(usage);
    return 0;
  }
  if (argv.includes("--version") || argv.includes("-V")) {
    console.log(`${name} ${VERSION}`);
    return 0;
  }
  return null;
}

/**
 * For a command that takes no arguments (api, worker): answers --help/--version (0), refuses
 * anything else with its usage (2), or returns null to start.
 */
export function onlyHelpOrVersion(name: string, usage: string, argv: readonly string[]): number | null {
  const answered = answerHelpOrVersion(name, usage, argv);
  if (answered !== null || argv.length === 0) return answered;
  console.error(`${name}: unknown argument ${JSON.stringify(argv[0])}\n${usage}`);
  return 2;
}

/** Calls `handler` on every SIGINT and SIGTERM (it decides what a second signal means). */
export function onStopSignals(handler: (signal: StopSignal) => void): void {
  process.on("SIGINT", () => handler("SIGINT"));
  process.on("SIGTERM", () => handler("SIGTERM"));
}

/**
 * Runs `stop` once on the first SIGINT/SIGTERM (later signals wait for the same stop), then exits
 * 130/143; a failing stop is logged through `onError` and exits 1. What every long-running
 * process (API, worker) does at shutdown.
 */
export function exitAfterStop(stop: (signal: StopSignal) => Promise<void>, onError: (err: unknown) => void): void {
  let stopping: Promise<void> | undefined;
  onStopSignals((signal) => {
    stopping ??= stop(signal);
    void stopping.then(
      () => process.exit(SIGNAL_EXIT[signal]),
      (err: unknown) => {
        onError(err);
        process.exit(1);
      },
    );
  });
}
