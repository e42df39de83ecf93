// Per-file truth through the worker, on real Postgres, Redis and worker processes: a re-run with
// sync sends nothing, a file that cannot be read fails alone (DONE_WITH_ERRORS) and its retry sends
// only it, a move keeps only the failed file's source, a mirror removes nothing while a file failed,
// and a worker killed in the middle of a sync leaves every target file old or new.
import { describe, expect, test } from "bun:test";
import { existsSync, readdirSync, readFileSync, statSync, utimesSync, writeFileSync } from "node:fs";
import { copyFile, mkdir } from "node:fs/promises";
import path from "node:path";
import { countFiles, failedPaths, listFiles } from "../jobs/files.ts";
import { retryJob } from "../jobs/repository.ts";
import type { JobRow } from "../jobs/types.ts";
import { waitFor } from "../testing/ports.ts";
import type { Endpoint } from "../transfer_engine/index.ts";
import { withOverrides } from "../transfer_engine/endpoints/testing.ts";
import type { OpenEndpoint } from "./endpoints.ts";
import { faultyTransfer, pointFile } from "./fault_injection.ts";
import { openTestEndpoint, sameBytes, type Scenario, scenarioPerTest } from "./test_support.ts";

const T = 60_000;
const ENTRY = "mvp_core/worker/fault_entry.ts";

const setup = scenarioPerTest();

/** `count` files `clip_<i>.bin` of about `bytes` under src/take. */
async function take(s: Scenario, count: number, bytes = 4096): Promise<string[]> {
  const names = Array.from({ length: count }, (_, i) => `clip_${i}.bin`);
  for (const [i, n] of names.entries()) await s.writeSource(`take/${n}`, bytes + i);
  return names;
}

/** Inode and mtime of every file below `dir`: a file replaced (sent again) gets a new inode. */
function identities(dir: string): Record<string, string> {
  return Object.fromEntries(readdirSync(dir, { recursive: true, encoding: "utf8" }).sort().map((rel) => {
    const st = statSync(path.join(dir, rel));
    return [rel, `${st.ino}:${st.mtimeMs}`];
  }));
}

/**
 * The worker's endpoints, with the source unable to read files whose path ends in one of
 * `unreadable` (EACCES, as for a file whose permissions changed after the scan: as root, chmod
 * would not stop the worker). Empty the set to make them readable again.
 */
function unreadableSource(s: Scenario, unreadable: Set<string>): OpenEndpoint {
  return async (portal, signal) => {
    const ep = await openTestEndpoint(portal, signal);
    if (portal.id !== s.source.id) return ep;
    return withOverrides(ep, {
      openRead: (p: string, o?: Parameters<Endpoint["openRead"]>[1]) => {
        if ([...unreadable].some((u) => p.endsWith(u))) throw Object.assign(new Error(`EACCES: permission denied, open '${p}'`), { code: "EACCES" });
        return ep.openRead(p, o);
      },
    });
  };
}

/** A worker whose source cannot read `bad` (until the returned set is emptied), over `count` files under src/take. */
async function unreadableWorld(name: string, count: number, bad: string[]): Promise<{ s: Scenario; names: string[]; unreadable: Set<string> }> {
  const s = await setup(name);
  const names = await take(s, count);
  const unreadable = new Set(bad);
  await s.startWorker({}, { openEndpoint: unreadableSource(s, unreadable) });
  return { s, names, unreadable };
}

/** POST /jobs/{id}/retry as the API does it: Postgres first, then the queue. */
async function retry(s: Scenario, job: JobRow): Promise<JobRow> {
  const row = await retryJob(s.sql, job.id);
  await s.queue.enqueue(job.id, row.site);
  return row;
}

async function eventsOf(s: Scenario, jobId: string, kind: string) {
  return (await s.events(jobId)).filter((e) => e.kind === kind);
}

/** Every file of src/take is at dst/take with the same bytes. */
async function expectTargetComplete(s: Scenario, names: readonly string[]): Promise<void> {
  for (const n of names) expect(await sameBytes(s.path("src/take", n), s.path("dst/take", n)), n).toBe(true);
}

describe("per-file truth through the worker", () => {
  test("a re-run with sync sends nothing; a change that keeps size and mtime travels only at checksum", async () => {
    const s = await setup("sync-rerun");
    const names = await take(s, 40);
    await s.startWorker();
    const first = await s.job("take", "take");
    await s.waitForStatus(first.id, "DONE");
    expect(await countFiles(s.sql, first.id)).toEqual({ total: 40, skipped: 0, verified: 40, failed: 0 });
    expect((await listFiles(s.sql, first.id, { limit: 1 })).files[0]).toMatchObject({ state: "verified", hash_algorithm: expect.any(String), hash_value: expect.any(String), attempts: 1 });
    const before = identities(s.path("dst/take"));

    const again = await s.job("take", "take", { options: { sync: "mtime" } });
    const done = await s.waitForStatus(again.id, "DONE");
    expect(done).toMatchObject({ files_total: 0, bytes_total: 0, error_code: null });
    expect(await countFiles(s.sql, again.id)).toEqual({ total: 40, skipped: 40, verified: 0, failed: 0 });
    expect(identities(s.path("dst/take"))).toEqual(before);
    expect((await eventsOf(s, again.id, "compared"))[0]!.data).toMatchObject({ send: 0, skipped: 40 });
    expect((await eventsOf(s, again.id, "done"))[0]!.message).toContain("40 skipped (already at the target)");

    // New content, same size, mtime put back: the same at mtime, caught at checksum.
    const file = s.path("src/take/clip_3.bin");
    const st = statSync(file);
    writeFileSync(file, Buffer.alloc(st.size, 7));
    utimesSync(file, st.atime, st.mtime);
    const byMtime = await s.job("take", "take", { options: { sync: "mtime" } });
    await s.waitForStatus(byMtime.id, "DONE");
    expect((await countFiles(s.sql, byMtime.id)).verified).toBe(0);
    const byChecksum = await s.job("take", "take", { options: { sync: "checksum" } });
    expect(await s.waitForStatus(byChecksum.id, "DONE")).toMatchObject({ files_total: 1, bytes_total: st.size });
    expect((await listFiles(s.sql, byChecksum.id, { limit: 10, states: ["verified"] })).files.map((f) => f.path)).toEqual(["clip_3.bin"]);
    await expectTargetComplete(s, names);
  }, T);

  test("a single-file job has one row, whose path is empty (the source itself)", async () => {
    const s = await setup("single-file");
    await take(s, 1);
    await s.startWorker();
    const job = await s.job("take/clip_0.bin", "clip_0.bin");
    await s.waitForStatus(job.id, "DONE");
    expect((await listFiles(s.sql, job.id, { limit: 10 })).files).toEqual([expect.objectContaining({ path: "", state: "verified", size: 4096 })]);
    const again = await s.job("take/clip_0.bin", "clip_0.bin", { options: { sync: "checksum" } });
    await s.waitForStatus(again.id, "DONE");
    expect((await listFiles(s.sql, again.id, { limit: 10 })).files).toEqual([expect.objectContaining({ path: "", state: "skipped" })]);
  }, T);

  test("a file unreadable mid-run fails alone (DONE_WITH_ERRORS); the retry sends only that file and ends DONE", async () => {
    const { s, names, unreadable } = await unreadableWorld("partial-retry", 8, ["take/clip_3.bin"]);
    const job = await s.job("take", "take", { options: { skipFileErrors: true, strategy: "direct" } });
    const partial = await s.waitForStatus(job.id, "DONE_WITH_ERRORS");
    expect(partial).toMatchObject({ error_code: "FILES_FAILED", files_total: 7, committed_at: expect.any(Date) });
    expect(partial.error_message).toContain('"clip_3.bin" (PERMISSION_DENIED)');
    expect(await countFiles(s.sql, job.id)).toEqual({ total: 8, skipped: 0, verified: 7, failed: 1 });
    expect((await listFiles(s.sql, job.id, { limit: 10, states: ["failed"] })).files).toEqual([expect.objectContaining({ path: "clip_3.bin", state: "failed", error_code: "PERMISSION_DENIED" })]);
    expect(existsSync(s.path("dst/take/clip_3.bin"))).toBe(false);
    await expectTargetComplete(s, names.filter((n) => n !== "clip_3.bin"));
    expect((await eventsOf(s, job.id, "files_failed"))[0]!.data).toMatchObject({ failed: 1 });
    expect((await eventsOf(s, job.id, "done"))[0]).toMatchObject({ level: "warn", data: { outcomes: { total: 8, verified: 7, failed: 1 } } });
    const others = identities(s.path("dst/take"));

    unreadable.clear();
    expect(await retry(s, partial)).toMatchObject({ status: "QUEUED", scope: "failed" });
    const done = await s.waitForStatus(job.id, "DONE");
    expect(done).toMatchObject({ scope: "failed", files_total: 1, bytes_total: 4096 + 3, error_code: null });
    expect((await eventsOf(s, job.id, "compared")).at(-1)!.data).toMatchObject({ send: 1 });
    const rows = (await listFiles(s.sql, job.id, { limit: 100 })).files;
    expect(rows.map((r) => [r.path, r.state, r.attempts])).toEqual(names.map((n) => [n, "verified", n === "clip_3.bin" ? 2 : 1]));
    // The seven files verified before were not sent again.
    const now = identities(s.path("dst/take"));
    for (const [rel, id] of Object.entries(others)) expect(now[rel], rel).toBe(id);
    await expectTargetComplete(s, names);
  }, T);

  test("a move with a failed file keeps that source and removes the rest; its retry moves the last one", async () => {
    const { s, names, unreadable } = await unreadableWorld("partial-move", 6, ["take/clip_2.bin"]);
    const job = await s.job("take", "take", { type: "move", options: { skipFileErrors: true, strategy: "direct" } });
    const partial = await s.waitForStatus(job.id, "DONE_WITH_ERRORS");
    expect(readdirSync(s.path("src/take"))).toEqual(["clip_2.bin"]);
    expect(readdirSync(s.path("dst/take")).sort()).toEqual(names.filter((n) => n !== "clip_2.bin"));
    const kept = await Bun.file(s.path("src/take/clip_2.bin")).bytes();

    unreadable.clear();
    await retry(s, partial);
    await s.waitForStatus(job.id, "DONE");
    expect(Buffer.from(await Bun.file(s.path("dst/take/clip_2.bin")).bytes()).equals(Buffer.from(kept))).toBe(true);
    expect(existsSync(s.path("src/take/clip_2.bin"))).toBe(false);
    expect(readdirSync(s.path("dst/take")).sort()).toEqual(names);
  }, T);

  test("mirror removes nothing while a file failed, and the retry of the failed files never mirrors", async () => {
    const { s, names, unreadable } = await unreadableWorld("mirror-failed", 6, []);
    const first = await s.job("take", "take");
    await s.waitForStatus(first.id, "DONE");
    writeFileSync(s.path("dst/take/extra.txt"), "only at the target");
    for (const n of ["clip_1.bin", "clip_4.bin"]) await s.writeSource(`take/${n}`, 5000);
    unreadable.add("take/clip_4.bin");

    const job = await s.job("take", "take", { options: { sync: "size", mirror: true, skipFileErrors: true, strategy: "direct" } });
    const partial = await s.waitForStatus(job.id, "DONE_WITH_ERRORS");
    expect(await countFiles(s.sql, job.id)).toEqual({ total: 6, skipped: 4, verified: 1, failed: 1 });
    expect(await eventsOf(s, job.id, "mirrored")).toEqual([]);
    expect(readFile(s, "dst/take/extra.txt")).toBe("only at the target");

    unreadable.clear();
    await retry(s, partial);
    await s.waitForStatus(job.id, "DONE");
    expect(await eventsOf(s, job.id, "mirrored")).toEqual([]);
    expect(readFile(s, "dst/take/extra.txt")).toBe("only at the target");
    await expectTargetComplete(s, names);
    expect(await countFiles(s.sql, job.id)).toEqual({ total: 6, skipped: 4, verified: 2, failed: 0 });
  }, T);
});

function readFile(s: Scenario, rel: string): string {
  return readFileSync(s.path(rel), "utf8");
}

/**
 * An existing target to sync into: `same` files identical to the source (size and mtime), `changed`
 * files whose source is newer and bigger. Returns the old and new bytes of every file.
 */
async function targetToSync(s: Scenario, same: number, changed: number, bytes: number): Promise<{ names: string[]; old: Map<string, Buffer> }> {
  await mkdir(s.path("dst/take"), { recursive: true });
  const names: string[] = [];
  const old = new Map<string, Buffer>();
  for (let i = 0; i < same + changed; i++) {
    const n = `clip_${i}.mov`;
    names.push(n);
    if (i < same) {
      await s.writeSource(`take/${n}`, bytes / 4);
      await copyFile(s.path("src/take", n), s.path("dst/take", n));
      const st = statSync(s.path("src/take", n));
      utimesSync(s.path("dst/take", n), st.atime, st.mtime);
    } else {
      const prior = Buffer.alloc(bytes / 2, i);
      writeFileSync(s.path("dst/take", n), prior);
      utimesSync(s.path("dst/take", n), new Date(2020, 0, 1), new Date(2020, 0, 1));
      await s.writeSource(`take/${n}`, bytes);
    }
    old.set(n, Buffer.from(await Bun.file(s.path("dst/take", n)).bytes()));
  }
  return { names, old };
}

/** Every target file is, byte for byte, its old version or the source's: never torn, never a third. */
async function expectOldOrNew(s: Scenario, names: readonly string[], old: Map<string, Buffer>): Promise<void> {
  for (const n of names) {
    const now = Buffer.from(await Bun.file(s.path("dst/take", n)).bytes());
    const fresh = Buffer.from(await Bun.file(s.path("src/take", n)).bytes());
    expect(now.equals(old.get(n)!) || now.equals(fresh), n).toBe(true);
  }
}

describe("kill -9 of a worker process in the middle of a sync", () => {
  test("mid-transfer: every target file is old or new; the next attempt sends the rest and ends DONE", async () => {
    const s = await setup("kill-sync");
    const { names, old } = await targetToSync(s, 4, 5, 512 * 1024);
    const dir = s.path("faults");
    const doomed = await s.spawnWorker({ WORKER_MAX_BYTES_PER_SEC: String(512 * 1024), KETTER_TEST_FAULT: JSON.stringify({ dir }) }, ENTRY);
    const job = await s.job("take", "take", { options: { sync: "mtime", strategy: "direct" } });
    await s.waitForJob(job.id, "bytes to flow", (r) => r.status === "RUNNING" && r.bytes_done > 0, 20_000, doomed.output);
    doomed.proc.kill("SIGKILL");
    await doomed.proc.exited;
    await expectOldOrNew(s, names, old);
    expect((await s.row(job.id)).committed_at).toBeNull();

    await s.startWorker({}, { transfer: faultyTransfer({ dir }) });
    const done = await s.waitForStatus(job.id, "DONE", 30_000);
    expect(done).toMatchObject({ attempts: 2, files_total: 5 });
    await expectTargetComplete(s, names);
    expect(await countFiles(s.sql, job.id)).toEqual({ total: 9, skipped: 4, verified: 5, failed: 0 });
    expect(readdirSync(s.path("dst")).filter((n) => n.startsWith(".ketter-"))).toEqual([]);
  }, T);

  test("at the commit fence of a sync with a failed file: its outcome is recorded before the commit; the next attempt finds it gone from the source and ends DONE", async () => {
    const s = await setup("kill-sync-fence");
    const { names, old } = await targetToSync(s, 3, 3, 64 * 1024);
    const dir = s.path("faults");
    const plan = { dir, pauseAt: "commit_fence", removeAtTransfer: s.path("src/take/clip_5.mov") };
    const doomed = await s.spawnWorker({ KETTER_TEST_FAULT: JSON.stringify(plan), WORKER_LEASE_MS: "2000" }, ENTRY);
    const job = await s.job("take", "take", { options: { sync: "mtime", skipFileErrors: true, strategy: "direct" } });
    await waitFor(() => existsSync(pointFile(dir, job.id, "commit_fence")), { what: "the commit fence", timeoutMs: 20_000, intervalMs: 10 }).catch((err: unknown) => {
      throw new Error(`${(err as Error).message}\n${doomed.output().slice(-4000)}`);
    });
    // Nothing is committed yet, and the failure is already in job_files (the engine hands over
    // what it knows before its commit, and the worker waits for it to land).
    expect(await failedPaths(s.sql, job.id)).toEqual(["clip_5.mov"]);
    for (const n of names) expect(Buffer.from(await Bun.file(s.path("dst/take", n)).bytes()).equals(old.get(n)!), n).toBe(true);
    doomed.proc.kill("SIGKILL");
    await doomed.proc.exited;

    await s.startWorker({}, { transfer: faultyTransfer({ dir }) });
    await s.waitForStatus(job.id, "DONE", 30_000);
    // The whole sync ran again without the file the source no longer has: its row went with it.
    expect(await countFiles(s.sql, job.id)).toEqual({ total: 5, skipped: 3, verified: 2, failed: 0 });
    for (const n of names.filter((x) => x !== "clip_5.mov")) expect(await sameBytes(s.path("src/take", n), s.path("dst/take", n)), n).toBe(true);
  }, T);

  test("right after the commit of a sync with a failed file: the failed outcome was recorded before the commit, so the resumed job ends DONE_WITH_ERRORS; the retry sends that file", async () => {
    const s = await setup("kill-sync-commit");
    const { names, old } = await targetToSync(s, 3, 3, 64 * 1024);
    const dir = s.path("faults");
    const vanish = s.path("src/take/clip_5.mov");
    const plan = { dir, pauseAt: "after_commit", removeAtTransfer: vanish };
    const doomed = await s.spawnWorker({ KETTER_TEST_FAULT: JSON.stringify(plan), WORKER_LEASE_MS: "2000" }, ENTRY);
    const job = await s.job("take", "take", { options: { sync: "mtime", skipFileErrors: true, strategy: "direct" } });
    await waitFor(() => existsSync(pointFile(dir, job.id, "after_commit")), { what: "the commit", timeoutMs: 20_000, intervalMs: 10 }).catch((err: unknown) => {
      throw new Error(`${(err as Error).message}\n${doomed.output().slice(-4000)}`);
    });
    expect(await failedPaths(s.sql, job.id)).toEqual(["clip_5.mov"]);
    doomed.proc.kill("SIGKILL");
    await doomed.proc.exited;
    expect((await s.row(job.id)).committed_at).toBeNull();

    await s.startWorker({}, { transfer: faultyTransfer({ dir }) });
    const partial = await s.waitForStatus(job.id, "DONE_WITH_ERRORS", 30_000);
    expect((await eventsOf(s, job.id, "done"))[0]!.data).toMatchObject({ strategy: "resumed" });
    // The merged files are new, the vanished one's target is its old version.
    for (const n of names.filter((x) => x !== "clip_5.mov")) expect(await sameBytes(s.path("src/take", n), s.path("dst/take", n)), n).toBe(true);
    expect(Buffer.from(await Bun.file(s.path("dst/take/clip_5.mov")).bytes()).equals(old.get("clip_5.mov")!)).toBe(true);

    await s.writeSource("take/clip_5.mov", 70_000);
    await retry(s, partial);
    await s.waitForStatus(job.id, "DONE", 30_000);
    await expectTargetComplete(s, names);
    expect((await countFiles(s.sql, job.id)).failed).toBe(0);
  }, T);
});
