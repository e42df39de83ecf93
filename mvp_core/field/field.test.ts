// The field test's pure pieces: dataset verification, event-log judgement, options, report rendering.
// The field run itself needs a running stack and is run by `bun run field`, not by `bun test`.
import { afterAll, describe, expect, test } from "bun:test";
import { mkdtemp, open, rm, unlink, writeFile } from "node:fs/promises";
import { hostname, tmpdir } from "node:os";
import { join } from "node:path";
import type { Health } from "./api.ts";
import { datasetSpecs, verifyFolder, writeDataset, type DatasetSpec } from "./datasets.ts";
import { eventLogProblems, ranOn, type JobOutcome } from "./jobs.ts";
import { parseOptions, UsageError } from "./options.ts";
import { buildTable, failures, renderMarkdown, renderTerminalTable, siteCell, type FieldReport } from "./report.ts";
import { skipReason, type ReferenceRun } from "./measure.ts";
import { labSiteOf, PreflightError, sitesPreflight } from "./setup.ts";
import { readDku, relayedUrl, urlTarget } from "./site2.ts";
import { placementProblems, type SitesReport } from "./sites.ts";

const dirs: string[] = [];
afterAll(async () => {
  for (const d of dirs) await rm(d, { recursive: true, force: true });
});

const spec: DatasetSpec = {
  name: "small", describe: "test",
  files: [{ rel: "a/one.bin", size: 10_000 }, { rel: "a/b/two.bin", size: 3 }, { rel: "empty.bin", size: 0 }],
  dirs: ["c/empty"],
};

async function written() {
  const root = await mkdtemp(join(tmpdir(), "ketter-field-test-"));
  dirs.push(root);
  const dir = join(root, "ds");
  return { dir, manifest: await writeDataset(dir, spec) };
}

describe("dataset verification", () => {
  test("an intact copy has no problems", async () => {
    const { dir, manifest } = await written();
    expect(manifest.files.size).toBe(3);
    expect([...manifest.dirs].sort()).toEqual(["a", "a/b", "c", "c/empty"]);
    expect(await verifyFolder(dir, manifest)).toEqual([]);
  });

  test("one flipped byte is caught", async () => {
    const { dir, manifest } = await written();
    const fh = await open(join(dir, "a/one.bin"), "r+");
    const buf = Buffer.alloc(1);
    await fh.read(buf, 0, 1, 5_000);
    buf[0] = buf[0]! ^ 0x01;
    await fh.write(buf, 0, 1, 5_000);
    await fh.close();
    expect(await verifyFolder(dir, manifest)).toEqual([expect.stringContaining("a/one.bin: content differs")]);
  });

  test("missing, extra and truncated files and a missing empty folder are caught", async () => {
    const { dir, manifest } = await written();
    await unlink(join(dir, "a/b/two.bin"));
    await writeFile(join(dir, "a/one.bin"), "short");
    await writeFile(join(dir, "stray.partial"), "x");
    await rm(join(dir, "c/empty"), { recursive: true });
    const problems = await verifyFolder(dir, manifest);
    expect(problems).toContain("missing file a/b/two.bin");
    expect(problems).toContain("a/one.bin: 5 bytes, expected 10000");
    expect(problems).toContain("unexpected file stray.partial");
    expect(problems).toContain("missing folder c/empty");
  });

  test("a missing destination is one problem", async () => {
    const { manifest } = await written();
    expect(await verifyFolder("/nonexistent/ketter-field", manifest)).toEqual(["/nonexistent/ketter-field does not exist"]);
  });

  test("the full datasets have the advertised shapes", () => {
    const [small, many, large] = datasetSpecs(false);
    expect(small!.files.length).toBe(50);
    expect(many!.files.length).toBe(10_000);
    expect(new Set(many!.files.map((f) => f.rel.split("/")[0])).size).toBe(100);
    expect(large!.files.reduce((n, f) => n + f.size, 0)).toBe(1024 * 1024 * 1024);
  });
});

const kinds = (...k: string[]) => k.map((kind) => ({ kind }));
const complete = kinds("created", "queued", "started", "strategy_chosen", "progress", "verified", "committed", "done");

describe("event log judgement", () => {
  test("a complete copy log passes", () => {
    expect(eventLogProblems(complete, "copy", "none", 1)).toEqual([]);
  });
  test("a move needs source_removed; done must be last and unique", () => {
    expect(eventLogProblems(complete, "move", "none", 1)).toEqual(["move without a source_removed event"]);
    expect(eventLogProblems([...complete, { kind: "done" }], "copy", "none", 1)).toEqual(["2 done events, expected exactly 1"]);
    expect(eventLogProblems([...complete, { kind: "progress" }], "copy", "none", 1)).toEqual(["last event is progress, expected done"]);
  });
  test("a fault must leave its trace, and every attempt its started event", () => {
    expect(eventLogProblems(complete, "copy", "worker_kill", 1)).toEqual(["worker killed but no reclaimed event: the kill missed the job"]);
    expect(eventLogProblems(complete, "copy", "sshd_restart", 2)).toEqual([
      "1 started events for 2 attempts",
      "sshd restarted but no retry_scheduled event: the restart missed the transfer",
    ]);
  });
});

describe("options", () => {
  test("defaults and refusals", () => {
    const o = parseOptions([]);
    expect(o).toMatchObject({ quick: false, rttsMs: [0, 2, 20], datasets: ["small", "many", "large"], faults: true, address: "127.0.0.42", maxToolSeconds: 120 });
    expect(() => parseOptions(["--latency", "2,20"])).toThrow(UsageError);
    expect(() => parseOptions(["--address", "10.0.0.1"])).toThrow(UsageError);
    expect(parseOptions([]).loopback).toBe(false); // as root: the WAN testbed
    expect(parseOptions(["--loopback"]).loopback).toBe(true);
    expect(() => parseOptions(["--datasets", "small"])).toThrow(UsageError);
    expect(parseOptions(["--datasets", "small", "--no-faults"]).datasets).toEqual(["small"]);
    expect(() => parseOptions(["--bogus"])).toThrow(UsageError);
    expect(parseOptions([]).sites).toBe(true);
    expect(parseOptions(["--no-sites"]).sites).toBe(false);
    expect(parseOptions(["--datasets", "small", "--no-faults", "--no-sites"])).toMatchObject({ sites: false, faults: false, datasets: ["small"] });
  });
});

function outcome(over: Partial<JobOutcome>): JobOutcome {
  return {
    label: "large-copy-push-rtt0", scenario: "main", dataset: "large", direction: "push", type: "copy", rttMs: 0, fault: "none", jobId: "j1", status: "DONE",
    attempts: 1, strategy: "direct", files: 4, bytes: 1_000_000_000, seconds: 5, engineSeconds: 4.9, site: "lab", ranOn: [{ workerId: "vm:1:a", site: "lab" }],
    events: [{ kind: "done", count: 1 }], faultNote: null, problems: [],
    ...over,
  };
}
const ref = (over: Partial<ReferenceRun>): ReferenceRun => ({ tool: "rsync", dataset: "large", direction: "push", rttMs: 0, seconds: 4, stoppedAfter: null, problems: [], command: "rsync", ...over });

describe("report", () => {
  const jobs = [outcome({}), outcome({ label: "large-move-push-rtt0", type: "move", jobId: "j2" }), outcome({ label: "x", fault: "worker_kill", jobId: "j3", faultNote: "killed" })];
  const refs = [ref({}), ref({ tool: "scp", seconds: null, stoppedAfter: 120, problems: ["stopped after 120 s"] })];

  test("the table pairs Ketter's copies with the tools' runs of the same data, direction and latency", () => {
    const table = buildTable(jobs, refs);
    expect(table).toHaveLength(1);
    expect(table[0]).toMatchObject({ ketterS: 5, rsyncS: 4, vsRsync: 1.25, scpS: null, scpOverS: 120, ketterMBps: 200 });
    expect(renderTerminalTable(table)).toContain("> 120");
  });

  test("the markdown says PASS or FAIL and lists every failure", () => {
    const report: FieldReport = {
      when: "2026-11-25T02:00:00.000Z", runId: "r1", quick: false, command: "bun run field", passed: false, durationS: 100,
      machine: { host: "vm", nproc: 2, memGiB: 24, cpu: "cpu", kernel: "6", bun: "1.4.5", os: "Linux", loadAvgStart: [0.5, 0.4, 0.3], loadAvgEnd: [1, 0.8, 0.5] },
      stack: { apiUrl: "http://127.0.0.1:8080", version: "3.0.0", workers: ["vm:1:a"] },
      srvtrf: null, datasets: [{ name: "large", describe: "4 files" }], rttsMs: [0], table: buildTable(jobs, refs),
      jobs: [...jobs, outcome({ label: "bad", jobId: "j4", status: "FAILED", problems: ["job ended FAILED (X: y)"] })], references: refs, notes: [], errors: ["cleanup: z"],
    };
    const md = renderMarkdown(report);
    expect(md).toContain("**Result: FAIL**");
    expect(md).toContain("| large | LAB → SRVTRF | 0 ms | 5.00 | 4.90 | 200.0 | 4.00 | > 120 | 1.25× | < 0.04× | DONE, verified |");
    expect(md).toContain("- bad (j4): job ended FAILED (X: y)");
    expect(md).toContain("- cleanup: z");
    expect(md).toContain("## Faults");
  });
});

describe("sites", () => {
  const siteJobs = [
    outcome({ label: "sites-site2-push", scenario: "sites", dataset: "small", jobId: "s1", site: "site-2", ranOn: [{ workerId: "vm:2:b", site: "site-2" }] }),
    outcome({ label: "sites-sftp-to-sftp", scenario: "sites", dataset: "small", direction: "srvtrf-to-srvtrf", jobId: "s2", site: null, ranOn: [{ workerId: "vm:2:b", site: "site-2" }] }),
    outcome({ label: "sites-site2-push-worker-kill", scenario: "sites", fault: "worker_kill", jobId: "s3", site: "site-2", ranOn: [{ workerId: "vm:2:b", site: "site-2" }, { workerId: "vm:3:c", site: "site-2" }] }),
  ];
  const sites = (problems: string[]): SitesReport => ({
    lab: "lab", second: "site-2", kind: "netns", describe: "netns: a host beside LAB", workers: ["vm:2:b", "vm:3:c"],
    checks: [
      { name: "site-2 folder → SRVTRF runs at site-2", expected: "site site-2", seen: "site site-2; vm:2:b (site site-2)", job: "sites-site2-push", problems: [] },
      { name: "LAB folder → site-2 folder refused", expected: "422 CROSS_SITE at POST /jobs", seen: "HTTP 422 CROSS_SITE: source portal …", job: null, problems },
    ],
    dku: { exitCode: 0, summary: { ok: 9, warn: 0, fail: 0 }, checks: [{ name: "worker", status: "ok", value: "2 live (lab: 1 live, 0 pending; site-2: 1 live, 0 pending)" }], sites: [], output: "" },
  });
  const report = (s: SitesReport | null): FieldReport => ({
    when: "2026-11-25T02:00:00.000Z", runId: "r1", quick: true, command: "bun run field --quick", passed: true, durationS: 100,
    machine: { host: "vm", nproc: 2, memGiB: 24, cpu: "cpu", kernel: "6", bun: "1.4.5", os: "Linux", loadAvgStart: [0.5, 0.4, 0.3], loadAvgEnd: [1, 0.8, 0.5] },
    stack: { apiUrl: "http://127.0.0.1:8080", version: "3.0.0", workers: ["vm:1:a"] },
    srvtrf: null, datasets: [{ name: "large", describe: "4 files" }], rttsMs: [0], table: buildTable([outcome({}), ...siteJobs], []),
    jobs: [outcome({}), ...siteJobs], references: [], sites: s, notes: [], errors: [],
  });

  test("the sites jobs stay out of the comparison, moves and faults tables, and each job shows where it ran", () => {
    expect(buildTable([outcome({}), ...siteJobs], [])).toHaveLength(1);
    const md = renderMarkdown(report(sites([])));
    expect(md).not.toContain("## Faults");
    expect(md).toContain("## Sites");
    expect(md).toContain("| sites-sftp-to-sftp | s2 | copy | DONE | any → site-2 |");
    expect(md).toContain("| site-2 folder → SRVTRF runs at site-2 (`sites-site2-push`) | site site-2 | site site-2; vm:2:b (site site-2) | ok |");
    expect(md).toContain("2 of 2 sites checks passed");
    expect(md).toContain("| worker | ok | 2 live (lab: 1 live, 0 pending; site-2: 1 live, 0 pending) |");
    expect(renderMarkdown(report(null))).not.toContain("## Sites");
  });

  test("a failed sites check is a failure of the run, listed with the others", () => {
    const r = report(sites(["answered HTTP 201, expected 422 CROSS_SITE"]));
    expect(failures(r)).toEqual(["sites: LAB folder → site-2 folder refused: answered HTTP 201, expected 422 CROSS_SITE"]);
    const md = renderMarkdown(r);
    expect(md).toContain("1 of 2 sites checks passed");
    expect(md).toContain("| FAIL: answered HTTP 201, expected 422 CROSS_SITE |");
  });

  test("the site cell: routed site, and where the attempts ran when that differs", () => {
    expect(siteCell({ site: "lab", ranOn: [{ workerId: "a", site: "lab" }] })).toBe("lab");
    expect(siteCell({ site: null, ranOn: [] })).toBe("any");
    expect(siteCell({ site: "site-2", ranOn: [{ workerId: "a", site: "lab" }] })).toBe("site-2 (ran at lab)");
  });

  test("placement: the routed site, every attempt's site and the last attempt's worker are judged", () => {
    const ran = (...sites: string[]) => ({ site: "site-2", ranOn: sites.map((site, i) => ({ workerId: `vm:${i}:x`, site })) });
    expect(placementProblems(ran("site-2", "site-2"), "site-2", ["site-2"], "vm:1:x")).toEqual([]);
    expect(placementProblems(ran("site-2", "lab"), "site-2", ["site-2"])).toEqual(["an attempt ran on vm:1:x at site lab, expected site-2"]);
    expect(placementProblems(ran("site-2"), "site-2", ["site-2"], "vm:9:x")).toEqual(["the last attempt ran on vm:0:x, expected vm:9:x"]);
    expect(placementProblems({ site: "lab", ranOn: [] }, null, ["lab", "site-2"])).toEqual(["routed to site lab, expected any site", "no started event: it never ran"]);
  });

  test("ranOn reads each started event's worker and site", () => {
    const events = [
      { kind: "created", data: {} },
      { kind: "started", data: { workerId: "vm:1:a", site: "lab", attempt: 1 } },
      { kind: "reclaimed", data: {} },
      { kind: "started", data: { workerId: "vm:2:b", site: "site-2" } },
    ];
    expect(ranOn(events)).toEqual([{ workerId: "vm:1:a", site: "lab" }, { workerId: "vm:2:b", site: "site-2" }]);
  });

  test("site-2's URLs point at the relays, keeping credentials, database and query", () => {
    expect(relayedUrl("postgres://ketter:s3cret@127.0.0.1:5432/ketter?sslmode=disable", "198.18.7.1", 40001)).toBe("postgres://ketter:s3cret@198.18.7.1:40001/ketter?sslmode=disable");
    expect(relayedUrl("redis://127.0.0.1:6379/0", "198.18.7.1", 40002)).toBe("redis://198.18.7.1:40002/0");
    expect(relayedUrl("http://127.0.0.1:58080", "198.18.7.1", 40003)).toBe("http://198.18.7.1:40003/");
    expect(urlTarget("redis://localhost/0", 6379)).toEqual({ host: "localhost", port: 6379 });
    expect(urlTarget("postgres://u:p@127.0.0.1:55432/db", 5432)).toEqual({ host: "127.0.0.1", port: 55432 });
  });

  test("the DKU's JSON report is read for its verdict and its per-site worker lines; anything else is shown, not guessed", () => {
    const json = JSON.stringify({
      exitCode: 0, summary: { ok: 2, warn: 0, fail: 0 },
      checks: [
        { name: "worker", status: "ok", value: "2 live", details: { sites: [{ site: "lab", live: 1, pending: 0, processing: 0, delayed: 0 }, { site: "site-2", live: 1, pending: 0 }] } },
        { name: "smoke", status: "ok", value: "copied" },
      ],
    });
    const run = readDku(0, json, "");
    expect(run.summary).toEqual({ ok: 2, warn: 0, fail: 0 });
    expect(run.sites).toEqual([{ site: "lab", live: 1, pending: 0 }, { site: "site-2", live: 1, pending: 0 }]);
    expect(run.checks.map((c) => c.name)).toEqual(["worker", "smoke"]);
    const broken = readDku(2, "dku: KETTER_SITE: bad", "usage: …");
    expect(broken).toMatchObject({ exitCode: 2, summary: null, checks: [], sites: [] });
    expect(broken.output).toContain("KETTER_SITE: bad");
  });

  describe("preflight", () => {
    // A worker id of this very process: on this host and alive, as findLocalWorker requires.
    const here = `${hostname()}:${process.pid}:t3st`;
    const health = (sites: Array<{ name: string; ids: string[] }>): Health => ({
      status: "ok", database: { ok: true }, redis: { ok: true }, version: "3.0.0",
      workers: { live: sites.flatMap((s) => s.ids).length, ids: sites.flatMap((s) => s.ids) },
      sites: sites.map((s) => ({ name: s.name, live: s.ids.length, workers: s.ids.map((id) => ({ id })), queue: { pending: 0, processing: 0, delayed: 0 } })),
    });

    test("LAB's site is the site of the stack worker on this machine", () => {
      expect(labSiteOf(health([{ name: "lab", ids: [here] }]))).toBe("lab");
      expect(labSiteOf(health([{ name: "far", ids: ["elsewhere:1:x"] }]))).toBeUndefined();
      expect(sitesPreflight(health([{ name: "far", ids: ["elsewhere:1:x"] }, { name: "lab", ids: [here] }]), "site-2")).toBe("lab");
    });

    test("refused: no stack worker here, the stack already at site-2, or site-2 busy", () => {
      expect(() => sitesPreflight(health([{ name: "far", ids: ["elsewhere:1:x"] }]), "site-2")).toThrow(PreflightError);
      expect(() => sitesPreflight(health([{ name: "site-2", ids: [here] }]), "site-2")).toThrow(/already runs for site site-2/);
      expect(() => sitesPreflight(health([{ name: "lab", ids: [here] }, { name: "site-2", ids: ["elsewhere:2:y"] }]), "site-2")).toThrow(/already has live workers/);
    });
  });
});

describe("reference tools that would blow the budget are not run", () => {
  const at = (rttMs: number, seconds: number | null, stoppedAfter: number | null = null) => ref({ tool: "scp", dataset: "many", rttMs, seconds, stoppedAfter });
  test("extrapolated from the two latest times", () => {
    expect(skipReason([at(0, 7.4), at(2, 106.5)], "scp", "many", "push", 20, 120)).toContain("~998 s expected");
    expect(skipReason([at(0, 1), at(2, 1.3)], "scp", "many", "push", 20, 120)).toBeNull();
    expect(skipReason([at(0, 7.4)], "scp", "many", "push", 2, 120)).toBeNull();
  });
  test("already stopped at a lower latency; other tools, data and directions do not count", () => {
    expect(skipReason([at(2, null, 120)], "scp", "many", "push", 20, 120)).toBe("not run: already over 120 s at 2 ms");
    expect(skipReason([at(2, null, 120)], "rsync", "many", "push", 20, 120)).toBeNull();
    expect(skipReason([at(2, null, 120)], "scp", "many", "pull", 20, 120)).toBeNull();
  });
});
