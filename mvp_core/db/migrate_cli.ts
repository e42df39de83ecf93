// `bun run migrate [up|down [--all]|status]` — a thin shell over db/migrate.ts.
import { answerHelpOrVersion, onStopSignals, SIGNAL_EXIT } from "../cli/process.ts";
import { loadConfig, ConfigError } from "../config/config.ts";
import { migrateDown, migrateUp, migrationStatus } from "./migrate.ts";

const USAGE = `usage: bun run migrate [up | down [--all] | status] [--help | --version]
  up           apply every pending migration (default)
  down         revert the last one; --all reverts every one
  status       print applied, pending and unknown migrations as JSON
DATABASE_URL (environment or .env) names the database. Each migration runs in one transaction.
exit status: 0 done, 1 failed (or unknown migrations applied), 2 bad arguments or configuration,
             130/143 interrupted (the running transaction is rolled back)`;

async function main(argv: string[]): Promise<number> {
  const answered = answerHelpOrVersion("ketter-migrate", USAGE, argv);
  if (answered !== null) return answered;
  const [command = "up", ...rest] = argv;
  if (!["up", "down", "status"].includes(command) || rest.some((a) => a !== "--all") || (rest.length > 0 && command !== "down")) {
    console.error(`unknown arguments: ${argv.join(" ")}\n${USAGE}`);
    return 2;
  }
  let config;
  try {
    config = loadConfig();
  } catch (err) {
    if (err instanceof ConfigError) {
      console.error(err.message);
      return 2;
    }
    throw err;
  }
  if (command === "up") {
    const applied = await migrateUp(config.databaseUrl);
    console.log(applied.length ? `applied: ${applied.join(", ")}` : "schema is up to date");
  } else if (command === "down") {
    const reverted = await migrateDown(config.databaseUrl, { all: rest.includes("--all") });
    console.log(reverted.length ? `reverted: ${reverted.join(", ")}` : "nothing to revert");
  } else {
    const s = await migrationStatus(config.databaseUrl);
    console.log(JSON.stringify(s, null, 2));
    if (s.unknown.length) return 1;
  }
  return 0;
}

// Ending the process closes the connection, and Postgres rolls back the migration in flight.
onStopSignals((signal) => process.exit(SIGNAL_EXIT[signal]));
process.exitCode = await main(process.argv.slice(2)).catch((err: unknown) => {
  console.error(`migration failed: ${err instanceof Error ? err.message : String(err)}`);
  return 1;
});
