// `bun run migrate [up|down [--all]|status]` — a thin shell over db/migrate.ts.
import { loadConfig, ConfigError } from "../config/config.ts";
import { migrateDown, migrateUp, migrationStatus } from "./migrate.ts";

const USAGE = "usage: bun run migrate [up | down [--all] | status]";

async function main(argv: string[]): Promise<number> {
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

process.exitCode = await main(process.argv.slice(2)).catch((err: unknown) => {
  console.error(`migration failed: ${err instanceof Error ? err.message : String(err)}`);
  return 1;
});
