/** The DKU report: an aligned text table (terminal and .txt) and a JSON file with the same facts. */
import { mkdir, writeFile } from "node:fs/promises";
import { join, resolve } from "node:path";
import type { CheckResult, CheckStatus } from "./check.ts";

/** Bumped whenever a field of the JSON report changes meaning or disappears. */
export const REPORT_SCHEMA_VERSION = 1;

/** Everything one DKU run found. */
export interface Report {
  schemaVersion: typeof REPORT_SCHEMA_VERSION;
  tool: "ketter-dku";
  ketterVersion: string;
  host: string;
  startedAt: string;
  finishedAt: string;
  durationMs: number;
  summary: Record<CheckStatus, number>;
  /** 0 when no check failed, 1 otherwise (warnings do not fail the run). */
  exitCode: 0 | 1;
  checks: CheckResult[];
}

/** Builds the report from the check results of one run. */
export function buildReport(checks: CheckResult[], meta: { ketterVersion: string; host: string; startedAt: Date; finishedAt: Date }): Report {
  const summary: Record<CheckStatus, number> = { ok: 0, warn: 0, fail: 0 };
  for (const c of checks) summary[c.status]++;
  return {
    schemaVersion: REPORT_SCHEMA_VERSION,
    tool: "ketter-dku",
    ketterVersion: meta.ketterVersion,
    host: meta.host,
    startedAt: meta.startedAt.toISOString(),
    finishedAt: meta.finishedAt.toISOString(),
    durationMs: meta.finishedAt.getTime() - meta.startedAt.getTime(),
    summary,
    exitCode: summary.fail > 0 ? 1 : 0,
    checks,
  };
}

const MARK: Record<CheckStatus, string> = { ok: "✓", warn: "!", fail: "✗" };

function formatDuration(ms: number): string {
  return ms < 10_000 ? `${ms} ms` : `${(ms / 1000).toFixed(1)} s`;
}

/** The report as an aligned table: one row per check, its hint underneath when it is not ok. */
export function formatTable(report: Report): string {
  const rows = report.checks.map((c) => ({ mark: MARK[c.status], name: c.name, status: c.status.toUpperCase(), time: formatDuration(c.durationMs), value: c.value, hint: c.hint }));
  const head = { mark: " ", name: "CHECK", status: "STATUS", time: "TIME", value: "VALUE" };
  const w = {
    name: Math.max(head.name.length, ...rows.map((r) => r.name.length)),
    status: Math.max(head.status.length, ...rows.map((r) => r.status.length)),
    time: Math.max(head.time.length, ...rows.map((r) => r.time.length)),
  };
  const line = (r: { mark: string; name: string; status: string; time: string; value: string }) =>
    `${r.mark} ${r.name.padEnd(w.name)}  ${r.status.padEnd(w.status)}  ${r.time.padStart(w.time)}  ${r.value}`;
  const out = [
    `Ketter DKU — ${report.host} — ketter ${report.ketterVersion} — ${report.startedAt}`,
    "",
    line(head),
  ];
  const hintIndent = " ".repeat(2 + w.name + 2);
  for (const r of rows) {
    out.push(line(r));
    if (r.hint) out.push(`${hintIndent}hint: ${r.hint}`);
  }
  const { ok, warn, fail } = report.summary;
  out.push("", `${fail > 0 ? "✗ FAIL" : "✓ PASS"}: ${ok} ok, ${warn} warn, ${fail} fail in ${formatDuration(report.durationMs)} (exit ${report.exitCode})`);
  return out.join("\n") + "\n";
}

/** `20261125T031500Z`: sortable, and free of characters file systems dislike. */
export function reportStamp(at: Date): string {
  return at.toISOString().replace(/\.\d{3}Z$/, "Z").replace(/[-:]/g, "");
}

/** Writes `dku-<stamp>.txt` and `.json` into `dir` (created if missing); returns both paths. */
export async function writeReport(report: Report, dir: string): Promise<{ txt: string; json: string }> {
  await mkdir(dir, { recursive: true });
  const base = `dku-${reportStamp(new Date(report.startedAt))}`;
  // Two runs in the same second must not overwrite each other: the second gets a suffix.
  for (let n = 1; ; n++) {
    const name = n === 1 ? base : `${base}-${n}`;
    const txt = resolve(join(dir, `${name}.txt`));
    const json = resolve(join(dir, `${name}.json`));
    try {
      await writeFile(json, JSON.stringify(report, null, 2) + "\n", { flag: "wx" });
    } catch (err) {
      if ((err as { code?: string }).code === "EEXIST" && n < 100) continue;
      throw err;
    }
    await writeFile(txt, formatTable(report));
    return { txt, json };
  }
}
