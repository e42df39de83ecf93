/** Command-line flags of `bun run dku`. */

/** What the operator asked for. */
export interface DkuFlags {
  /** Also probe every SFTP portal (`--portals`). */
  portals: boolean;
  /** Run the smoke transfer (off with `--no-smoke`). */
  smoke: boolean;
  /** Print the JSON report instead of the table (`--json`). */
  json: boolean;
  /** Where reports go (`--report-dir DIR`); undefined: KETTER_DKU_REPORT_DIR. */
  reportDir: string | undefined;
  /** Parent of the smoke fixture (`--smoke-dir DIR`); must be the same path for the worker. Default: the OS temp folder. */
  smokeDir: string | undefined;
  help: boolean;
  version: boolean;
}

/** Printed with --help and after a usage error. */
export const USAGE = `usage: bun run dku [--portals] [--no-smoke] [--json] [--report-dir DIR] [--smoke-dir DIR] [--help | --version]
  --portals         also check every SFTP portal (reachable, host key, remote tools)
  --no-smoke        skip the smoke transfer (copy and move through the API and a worker)
  --json            print the JSON report instead of the table
  --report-dir DIR  write dku-<UTC time>.txt/.json into DIR (default: KETTER_DKU_REPORT_DIR or docs/dku_reports)
  --smoke-dir DIR   create the smoke fixture under DIR, a folder the worker sees at the same path (default: the OS temp folder)
exit status: 0 every check passed (warnings allowed), 1 a check failed, 2 bad flags or configuration,
             130/143 interrupted by SIGINT/SIGTERM (the smoke test is cleaned up and the report written first)`;

/** Raised for flags the DKU does not understand; main prints it with the usage and exits 2. */
export class UsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "UsageError";
  }
}

/** Parses `argv` (without the runtime and script), throwing UsageError on anything unknown. */
export function parseFlags(argv: readonly string[]): DkuFlags {
  const flags: DkuFlags = { portals: false, smoke: true, json: false, reportDir: undefined, smokeDir: undefined, help: false, version: false };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (arg === "--portals") flags.portals = true;
    else if (arg === "--no-smoke") flags.smoke = false;
    else if (arg === "--json") flags.json = true;
    else if (arg === "--help" || arg === "-h") flags.help = true;
    else if (arg === "--version" || arg === "-V") flags.version = true;
    else if (arg === "--report-dir" || arg.startsWith("--report-dir=")) flags.reportDir = folderValue(argv, i, "--report-dir", () => i++);
    else if (arg === "--smoke-dir" || arg.startsWith("--smoke-dir=")) flags.smokeDir = folderValue(argv, i, "--smoke-dir", () => i++);
    else throw new UsageError(`unknown argument ${JSON.stringify(arg)}`);
  }
  return flags;
}

/** The folder after `--flag DIR` or in `--flag=DIR`; `consume` skips the separate value. */
function folderValue(argv: readonly string[], i: number, flag: string, consume: () => void): string {
  const arg = argv[i]!;
  let value: string | undefined;
  if (arg.startsWith(`${flag}=`)) value = arg.slice(flag.length + 1);
  else {
    value = argv[i + 1];
    consume();
  }
  if (!value || value.startsWith("--")) throw new UsageError(`${flag} needs a folder, e.g. ${flag} /tmp/dku`);
  return value;
}
