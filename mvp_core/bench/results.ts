/** What every benchmark records about its machine and how it saves its results under docs/bench/. */
import fs from "node:fs";
import os from "node:os";
import path from "node:path";

const BENCH_DIR = path.resolve(import.meta.dir, "../../docs/bench");

/** The machine a figure was measured on: ratios only mean something next to it. */
export function machineInfo(): { cpus: number; model: string | undefined; kernel: string; bun: string; memGiB: number } {
  return { cpus: os.cpus().length, model: os.cpus()[0]?.model, kernel: os.release(), bun: Bun.version, memGiB: Math.round(os.totalmem() / 1024 ** 3) };
}

/**
 * Writes `report` as docs/bench/<name>-<when>.json and <name>-latest.json; returns the first path
 * relative to the repository. `when` is an ISO time, made safe for file names.
 */
export function saveResults(name: string, when: string, report: unknown): string {
  fs.mkdirSync(BENCH_DIR, { recursive: true });
  const json = `${JSON.stringify(report, null, 2)}\n`;
  const file = path.join(BENCH_DIR, `${name}-${when.replace(/[:.]/g, "-")}.json`);
  fs.writeFileSync(file, json);
  fs.writeFileSync(path.join(BENCH_DIR, `${name}-latest.json`), json);
  return path.relative(path.resolve(BENCH_DIR, "../.."), file);
}

/** The PASS/FAIL lines under a benchmark's table. */
export function formatTargets(targets: readonly { ok: boolean; what: string; detail: string }[]): string {
  return `\ntargets:\n${targets.map((t) => `  ${t.ok ? "PASS" : "FAIL"}  ${t.what}: ${t.detail}`).join("\n")}\n`;
}
