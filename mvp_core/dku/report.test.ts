import { describe, expect, test } from "bun:test";
import { mkdtemp, readFile, readdir, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { CheckResult } from "./check.ts";
import { REPORT_SCHEMA_VERSION, buildReport, formatTable, reportStamp, writeReport } from "./report.ts";

const at = "2026-11-25T03:15:00.000Z";
const checks: CheckResult[] = [
  { name: "runtime.bun", status: "ok", value: "bun 1.4.5 (pinned 1.4.5)", at, durationMs: 2 },
  { name: "redis", status: "fail", value: "cannot connect", hint: "start Redis", at, durationMs: 31 },
  { name: "postgres.migrations", status: "warn", value: "odd", hint: "look", at, durationMs: 12_345 },
];
const meta = { ketterVersion: "3.0.0", host: "lab-01", startedAt: new Date(at), finishedAt: new Date(Date.parse(at) + 1500) };

describe("report", () => {
  test("counts statuses; any fail makes exit code 1, warnings alone do not", () => {
    const r = buildReport(checks, meta);
    expect(r).toMatchObject({ schemaVersion: REPORT_SCHEMA_VERSION, summary: { ok: 1, warn: 1, fail: 1 }, exitCode: 1, durationMs: 1500 });
    expect(buildReport([checks[0]!, checks[2]!], meta).exitCode).toBe(0);
  });

  test("the table aligns columns, marks rows ✓/✗ and puts hints under failing rows", () => {
    const lines = formatTable(buildReport(checks, meta)).split("\n");
    const header = lines.find((l) => l.includes("CHECK"))!;
    const row = (name: string) => lines.find((l) => l.includes(` ${name} `))!;
    expect(row("runtime.bun").startsWith("✓ ")).toBe(true);
    expect(row("redis").startsWith("✗ ")).toBe(true);
    // VALUE starts in the same column on every row.
    const col = header.indexOf("VALUE");
    expect(row("runtime.bun").indexOf("bun 1.4.5")).toBe(col);
    expect(row("redis").indexOf("cannot connect")).toBe(col);
    expect(row("postgres.migrations").indexOf("odd")).toBe(col);
    expect(row("postgres.migrations")).toContain("12.3 s");
    expect(lines[lines.indexOf(row("redis")) + 1]!.trim()).toBe("hint: start Redis");
    expect(lines.some((l) => l.startsWith("✗ FAIL: 1 ok, 1 warn, 1 fail"))).toBe(true);
  });

  test("writes dku-<UTC stamp>.txt and .json; a second run in the same second gets its own files", async () => {
    const dir = join(await mkdtemp(join(tmpdir(), "ketter-dku-report-")), "nested");
    try {
      const report = buildReport(checks, meta);
      const first = await writeReport(report, dir);
      const second = await writeReport(report, dir);
      expect(reportStamp(new Date(at))).toBe("20261125T031500Z");
      expect(first.txt).toEndWith("dku-20261125T031500Z.txt");
      expect(second.json).toEndWith("dku-20261125T031500Z-2.json");
      expect((await readdir(dir)).sort()).toHaveLength(4);
      expect(JSON.parse(await readFile(first.json, "utf8"))).toEqual(JSON.parse(JSON.stringify(report)));
      expect(await readFile(first.txt, "utf8")).toBe(formatTable(report));
    } finally {
      await rm(join(dir, ".."), { recursive: true, force: true });
    }
  });
});
