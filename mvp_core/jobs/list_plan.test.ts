// GET /jobs at scale: for every filter combination the list offers, the plan of the exact list
// statement (EXPLAIN ANALYZE on a seeded table) reads through indexes only — no sequential scan,
// no more rows than the page needs, and a few pages' worth removed by a filter at most — even when
// nothing matches (the issue's case: portal + status with no match removed 1,000,626 rows by
// filter), and when a portal's or a status's jobs are all old (seed_jobs.ts). Counts, never times.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import type { Sql } from "postgres";
import { connectDb } from "../db/client.ts";
import { seedJobs } from "../testing/seed_jobs.ts";
import { createMigratedDatabase } from "../testing/services.ts";
import { jobListStatement, type JobListOptions, listJobs } from "./repository.ts";
import type { JobStatus } from "./types.ts";

const JOBS = 60_000;
const PORTALS = 20;
const LIMIT = 50;

let sql: Sql;
let busy: string;
let retired: string;
let idle: string;

interface PlanNode {
  "Node Type": string;
  "Relation Name"?: string;
  "Index Name"?: string;
  "Actual Rows": number;
  "Actual Loops": number;
  "Rows Removed by Filter"?: number;
  "Rows Removed by Index Recheck"?: number;
  Plans?: PlanNode[];
}

function nodes(n: PlanNode): PlanNode[] {
  return [n, ...(n.Plans ?? []).flatMap(nodes)];
}

async function plan(opts: JobListOptions): Promise<PlanNode[]> {
  const [row] = await sql<{ "QUERY PLAN": [{ Plan: PlanNode }] }[]>`explain (analyze, format json) ${jobListStatement(sql, opts)}`;
  return nodes(row!["QUERY PLAN"][0].Plan);
}

beforeAll(async () => {
  sql = connectDb(await createMigratedDatabase(), { max: 2 });
  const seeded = await seedJobs(sql, JOBS, PORTALS);
  busy = seeded.active[1]!;
  retired = seeded.retired;
  // A portal no job uses: "no match" must cost an index probe, not a scan.
  const [row] = await sql<{ id: string }[]>`insert into portals (name, kind, root_path) values ('idle', 'local', '/data/idle') returning id`;
  idle = row!.id;
}, 120_000);
afterAll(() => sql.end());

describe("GET /jobs plans at scale", () => {
  const statusSets: (JobStatus[] | undefined)[] = [undefined, ["DONE"], ["QUEUED"], ["CANCELLED"], ["QUEUED", "RUNNING", "RETRY_WAIT"], ["CANCELLING"]];
  const portalsOf = () => [undefined, busy, retired, idle];

  test("every filter combination reads through indexes, at most a page per branch", async () => {
    let checked = 0;
    for (const statuses of statusSets) {
      for (const portalId of portalsOf()) {
        const first = await listJobs(sql, { limit: LIMIT, ...(statuses ? { statuses } : {}), ...(portalId ? { portalId } : {}) });
        for (const cursor of [undefined, first.nextCursor ?? undefined]) {
          const opts: JobListOptions = { limit: LIMIT, ...(statuses ? { statuses } : {}), ...(portalId ? { portalId } : {}), ...(cursor ? { cursor } : {}) };
          const what = JSON.stringify({ statuses, portal: portalId === busy ? "busy" : portalId === retired ? "retired" : portalId === idle ? "idle" : undefined, cursor: Boolean(cursor) });
          const all = await plan(opts);
          if (process.env.SHOW_PLANS) console.log(what, all.map((n) => `${n["Node Type"]}${n["Index Name"] ? `(${n["Index Name"]})` : ""} rows=${n["Actual Rows"]}x${n["Actual Loops"]} removed=${n["Rows Removed by Filter"] ?? 0}`).join(" | "));
          const scans = all.filter((n) => n["Relation Name"] === "jobs");
          const branches = (statuses?.length ?? 1) * (portalId ? 2 : 1);
          // Each branch yields at most a page (limit + 1 rows), then the page's rows are fetched by
          // id. Where it expects few matches for two filters, the planner may instead collect them
          // (a bitmap, or one filter's index range with the other as a filter) and sort them: work
          // bounded by those matches, so a few pages' worth skipped at most — never the table.
          const rowsRead = scans.reduce((sum, n) => sum + n["Actual Rows"] * n["Actual Loops"], 0);
          const removed = all.reduce((sum, n) => sum + (n["Rows Removed by Filter"] ?? 0) + (n["Rows Removed by Index Recheck"] ?? 0), 0);
          const kinds = [...new Set(scans.map((n) => n["Node Type"]))];
          expect({ what, kinds: kinds.filter((k) => !["Index Scan", "Index Only Scan", "Bitmap Heap Scan"].includes(k)) }).toEqual({ what, kinds: [] });
          expect({ what, removed: removed <= branches * 10 * (LIMIT + 1) }).toEqual({ what, removed: true });
          expect({ what, read: rowsRead <= branches * (LIMIT + 1) + (LIMIT + 1) }).toEqual({ what, read: true });
          checked++;
        }
      }
    }
    expect(checked).toBe(statusSets.length * 4 * 2);
  }, 60_000);

  test("the pages of a filtered list are the rows the filter selects, newest first", async () => {
    const want = await sql<{ id: string }[]>`
      select id from jobs where (source_portal_id = ${busy} or target_portal_id = ${busy}) and status in ('QUEUED', 'FAILED')
      order by created_at desc, id desc limit 120`;
    const seen: string[] = [];
    let cursor: string | undefined;
    while (seen.length < 120) {
      const page = await listJobs(sql, { limit: LIMIT, portalId: busy, statuses: ["QUEUED", "FAILED"], ...(cursor ? { cursor } : {}) });
      seen.push(...page.jobs.map((j) => j.id));
      cursor = page.nextCursor ?? undefined;
      if (!cursor) break;
    }
    expect(seen.slice(0, 120)).toEqual(want.map((r) => r.id));
  });
});
