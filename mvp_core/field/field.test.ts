// The field test's pure pieces: dataset verification, event-log judgement, options, report rendering.
// The field run itself needs a running stack and is run by `bun run field`, not by `bun test`.
import { afterAll, describe, expect, test } from "bun:test";
import { mkdtemp, open, rm, unlink, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { datasetSpecs, verifyFolder, writeDataset, type DatasetSpec } from "./datasets.ts";
import { eventLogProblems, type JobOutcome } from "./jobs.ts";
import { parseOptions, UsageError } from "./options.ts";
import { buildTable, renderMarkdown, renderTerminalTable, type FieldReport } from "./report.ts";
import { skipReason, type ReferenceRun } from "./measure.ts";

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
  });
});

function outcome(over: Partial<JobOutcome>): JobOutcome {
  return {
    label: "large-copy-push-rtt0", dataset: "large", direction: "push", type: "copy", rttMs: 0, fault: "none", jobId: "j1", status: "DONE",
    attempts: 1, strategy: "direct", files: 4, bytes: 1_000_000_000, seconds: 5, engineSeconds: 4.9, events: [{ kind: "done", count: 1 }], faultNote: null, problems: [],
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
