/** `bun run field [--quick] …`: the field test LAB → SRVTRF against the running stack; see options.ts for the flags. */
import { onStopSignals, SIGNAL_EXIT, VERSION, type StopSignal } from "../cli/process.ts";
import { ConfigError, loadConfig } from "../config/config.ts";
import { parseOptions, USAGE, UsageError } from "./options.ts";
import { runField } from "./run.ts";
import { PreflightError } from "./setup.ts";

async function main(): Promise<number> {
  const argv = process.argv.slice(2);
  const opts = parseOptions(argv);
  if (opts.help) {
    console.log(USAGE);
    return 0;
  }
  if (opts.version) {
    console.log(`ketter-field ${VERSION}`);
    return 0;
  }
  const config = loadConfig();
  const log = (line: string) => process.stderr.write(`[field ${new Date().toISOString().slice(11, 19)}] ${line}\n`);
  // The first Ctrl-C stops the run cleanly (cancel the running job, clean up, write the report); a second one quits at once.
  const interrupt = new AbortController();
  let stoppedBy: StopSignal | undefined;
  onStopSignals((signal) => {
    if (stoppedBy) process.exit(SIGNAL_EXIT[signal]);
    stoppedBy = signal;
    log(`${signal}: cancelling the running job, cleaning up and writing the report (again to quit at once)`);
    interrupt.abort(new Error(`interrupted by ${signal}`));
  });
  const { report, paths, table } = await runField(opts, { api: config.api, databaseUrl: config.databaseUrl, redisUrl: config.redisUrl, command: ["bun run field", ...argv].join(" "), signal: interrupt.signal, log });
  console.log(`\n${table}\n`);
  console.log(`${report.passed ? "PASS" : "FAIL"}: ${report.jobs.filter((j) => j.status === "DONE" && j.problems.length === 0).length} of ${report.jobs.length} jobs DONE and verified in ${report.durationS.toFixed(0)} s`);
  console.log(`report: ${paths.join("\n        ")}`);
  if (stoppedBy) return SIGNAL_EXIT[stoppedBy];
  return report.passed ? 0 : 1;
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    if (err instanceof UsageError) console.error(`${err.message}\n${USAGE}`);
    else if (err instanceof PreflightError || err instanceof ConfigError) console.error(err.message);
    else console.error(err);
    process.exit(err instanceof UsageError || err instanceof PreflightError || err instanceof ConfigError ? 2 : 1);
  },
);
