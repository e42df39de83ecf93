// Every command answers --help and --version without touching anything, and refuses an unknown
// argument with exit 2 and its usage. (The engine CLI, `bun run engine`, has its own tests.)
import { describe, expect, test } from "bun:test";
import { join } from "node:path";
import { VERSION } from "./process.ts";

const REPO = join(import.meta.dir, "../..");

const COMMANDS: [string, string, string][] = [
  ["api", "mvp_core/app/main.ts", "ketter-api"],
  ["worker", "mvp_core/worker/main.ts", "ketter-worker"],
  ["dku", "mvp_core/dku/main.ts", "ketter-dku"],
  ["migrate", "mvp_core/db/migrate_cli.ts", "ketter-migrate"],
  ["field", "mvp_core/field/main.ts", "ketter-field"],
  ["bench:engine", "mvp_core/bench/engine.ts", "ketter-bench-engine"],
  ["bench:sftp", "mvp_core/bench/sftp.ts", "ketter-bench-sftp"],
  ["bench:jobs", "mvp_core/bench/jobs.ts", "ketter-bench-jobs"],
];

async function run(entry: string, args: string[]) {
  // A database nobody listens on: a command that tried to connect would fail, not hang.
  const p = Bun.spawn(["bun", entry, ...args], { cwd: REPO, env: { ...process.env, DATABASE_URL: "postgres://nobody@127.0.0.1:1/none", REDIS_URL: "redis://127.0.0.1:1/0" }, stdout: "pipe", stderr: "pipe" });
  const [code, out, err] = await Promise.all([p.exited, new Response(p.stdout).text(), new Response(p.stderr).text()]);
  return { code, out, err };
}

describe("--help, --version, unknown arguments", () => {
  for (const [script, entry, name] of COMMANDS) {
    test(`bun run ${script}`, async () => {
      const help = await run(entry, ["--help"]);
      expect(help.code).toBe(0);
      expect(help.out).toContain(`usage: bun run ${script}`);
      expect(help.out).toContain("exit status");
      expect(help.out).toContain("130/143");
      const version = await run(entry, ["--version"]);
      expect(version.code).toBe(0);
      expect(version.out.trim()).toBe(`${name} ${VERSION}`);
      const bad = await run(entry, ["--no-such-flag"]);
      expect(bad.code).toBe(2);
      expect(bad.err).toContain("usage:");
    }, 30_000);
  }
});
