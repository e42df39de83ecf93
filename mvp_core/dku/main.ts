// `bun run dku [--portals] [--no-smoke] [--json] [--report-dir DIR] [--smoke-dir DIR]` — checks the whole
// stack, runs a smoke transfer, writes docs/dku_reports/dku-<UTC time>.txt/.json (see docs/dku.md).
// Exit 0 all passed (warnings allowed), 1 a check failed, 2 bad flags or configuration, 130/143 interrupted.
import { onStopSignals, SIGNAL_EXIT, VERSION, type StopSignal } from "../cli/process.ts";
import { ConfigError, loadConfig, type Config } from "../config/config.ts";
import { USAGE, UsageError, parseFlags, type DkuFlags } from "./flags.ts";
import { formatTable, writeReport } from "./report.ts";
import { runDku } from "./run.ts";

function setup(): { flags: DkuFlags; config: Config } | number {
  try {
    const flags = parseFlags(process.argv.slice(2));
    if (flags.help) return console.log(USAGE), 0;
    if (flags.version) return console.log(`ketter-dku ${VERSION}`), 0;
    return { flags, config: loadConfig() };
  } catch (err) {
    if (err instanceof UsageError) return console.error(`dku: ${err.message}\n${USAGE}`), 2;
    if (err instanceof ConfigError) return console.error(`dku: ${err.message}`), 2;
    throw err;
  }
}

async function main(): Promise<number> {
  const ready = setup();
  if (typeof ready === "number") return ready;
  const { flags, config } = ready;
  const reportDir = flags.reportDir ?? config.dkuReportDir;
  // First Ctrl-C (or SIGTERM): stop waiting, clean up the smoke test, write the report. A second one exits at once.
  const interrupt = new AbortController();
  let stoppedBy: StopSignal | undefined;
  onStopSignals((signal) => {
    if (stoppedBy) process.exit(SIGNAL_EXIT[signal]);
    stoppedBy = signal;
    interrupt.abort();
  });
  const report = await runDku(config, { reportDir, portals: flags.portals, smoke: flags.smoke, smokeDir: flags.smokeDir, interrupt: interrupt.signal });
  process.stdout.write(flags.json ? JSON.stringify(report, null, 2) + "\n" : formatTable(report));
  try {
    const paths = await writeReport(report, reportDir);
    if (!flags.json) console.log(`report: ${paths.txt}\n        ${paths.json}`);
  } catch (err) {
    console.error(`dku: could not write the report into ${reportDir}: ${err instanceof Error ? err.message : String(err)}`);
    return 1;
  }
  return stoppedBy ? SIGNAL_EXIT[stoppedBy] : report.exitCode;
}

process.exitCode = await main();
