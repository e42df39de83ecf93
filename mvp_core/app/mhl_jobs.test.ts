// ASC MHL through the API (issue 16), run by a real worker process: a portal's `mhl` default makes
// a copy write a generation at the target (a job's own option wins); a verify job checks a folder
// against its history in place — DONE when it matches, FAILED (MHL_MISMATCH) listing what does not,
// and with `mhl` it records the verification; the request shapes of verify jobs are checked.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { existsSync } from "node:fs";
import { mkdir, readdir, readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { checkHistory } from "../transfer_engine/mhl_testing.ts";
import { waitFor } from "../testing/ports.ts";
import { uniqueId } from "../testing/services.ts";
import type { JobView } from "./jobs/schemas.ts";
import type { PortalView } from "./portals/schemas.ts";
import { apiFixture, type ApiFixture, startWorkerProcess, type WorkerProcess } from "./test_support.ts";

let f: ApiFixture;
let worker: WorkerProcess;

beforeAll(async () => {
  f = await apiFixture();
  worker = await startWorkerProcess(f);
}, 60_000);

afterAll(async () => {
  await worker?.stop();
  await f?.close();
});

async function finished(id: string): Promise<JobView> {
  let job: JobView | undefined;
  await waitFor(async () => ["DONE", "DONE_WITH_ERRORS", "FAILED", "CANCELLED"].includes((job = (await f.call<JobView>("GET", `/jobs/${id}`)).json).status), {
    what: `job ${id} to finish (worker output: ${worker.output().slice(-2000)})`, timeoutMs: 45_000, intervalMs: 20,
  });
  return job!;
}

async function events(id: string): Promise<{ kind: string; message: string; data: Record<string, unknown> }[]> {
  return (await f.call<{ events: { kind: string; message: string; data: Record<string, unknown> }[] }>("GET", `/jobs/${id}/events`)).json.events;
}

async function portal(mhl?: boolean): Promise<{ view: PortalView; root: string }> {
  const root = await f.tempDir();
  const { status, json } = await f.call<PortalView>("POST", "/portals", { body: { kind: "local", name: `mhl_${uniqueId()}`, rootPath: root, ...(mhl === undefined ? {} : { mhl }) } });
  expect(status).toBe(201);
  return { view: json, root };
}

async function card(root: string): Promise<void> {
  await mkdir(join(root, "A002", "Clips"), { recursive: true });
  await writeFile(join(root, "A002", "Clips", "C001.mov"), crypto.getRandomValues(new Uint8Array(60_000)));
  await writeFile(join(root, "A002", "Sidecar.txt"), "scene 4, take 2\n");
}

describe("ASC MHL jobs through the API", () => {
  test("a portal's mhl default makes a copy write a generation at the target; a job's own mhl: false wins", async () => {
    const lab = await portal();
    const srv = await portal(true);
    expect(srv.view.mhl).toBe(true);
    expect(lab.view.mhl).toBe(false);
    await card(lab.root);
    const job = (await f.call<JobView>("POST", "/jobs", { body: { type: "copy", source: { portal: lab.view.id, path: "A002" }, target: { portal: srv.view.id, path: "A002" } } })).json;
    expect(job.options.mhl).toBeUndefined(); // the portal's default applies when the job runs
    expect((await finished(job.id)).status).toBe("DONE");
    const { invalid, verification } = await checkHistory(join(srv.root, "A002"));
    expect(invalid).toEqual([]);
    expect(verification).toMatchObject({ ok: true });
    expect(verification.verified).toHaveLength(2);
    const evs = await events(job.id);
    expect(evs.find((e) => e.kind === "committed")?.message).toContain("ASC MHL generation 1 (xxh3, 2 files) recorded");
    expect(evs.find((e) => e.kind === "done")?.data).toMatchObject({ mhl: { format: "xxh3", files: 2 } });

    const off = (await f.call<JobView>("POST", "/jobs", { body: { type: "copy", source: { portal: lab.view.id, path: "A002" }, target: { portal: srv.view.id, path: "A002-plain" }, options: { mhl: false } } })).json;
    expect((await finished(off.id)).status).toBe("DONE");
    expect(existsSync(join(srv.root, "A002-plain", "ascmhl"))).toBe(false);

    const patched = await f.call<PortalView>("PATCH", `/portals/${srv.view.id}`, { body: { mhl: false } });
    expect(patched.json.mhl).toBe(false);
  });

  test("a verify job: DONE when the folder matches; FAILED with MHL_MISMATCH listing a tampered file; mhl records it", async () => {
    const lab = await portal();
    await card(lab.root);
    const copy = (await f.call<JobView>("POST", "/jobs", { body: { type: "copy", source: { portal: lab.view.id, path: "A002" }, target: { portal: lab.view.id, path: "A002-copy" }, options: { mhl: true } } })).json;
    expect((await finished(copy.id)).status).toBe("DONE");

    const created = await f.call<JobView>("POST", "/jobs", { body: { type: "verify", source: { portal: lab.view.id, path: "A002-copy" } } });
    expect(created.status).toBe(201);
    expect(created.json).toMatchObject({ type: "verify", source: { path: "A002-copy" }, target: { portal: lab.view.id, path: "A002-copy" } });
    const ok = await finished(created.json.id);
    // A verify job records no per-file outcomes (its problems are in its event and error).
    expect(ok).toMatchObject({ status: "DONE", strategy: null, scope: "all", files: { total: 0, failed: 0 }, progress: { filesDone: 2 } });
    expect((await events(ok.id)).find((e) => e.kind === "verified")?.data).toMatchObject({ ok: true, verified: 2 });

    await writeFile(join(lab.root, "A002-copy", "Sidecar.txt"), "scene 4, take 3\n");
    const bad = await finished((await f.call<JobView>("POST", "/jobs", { body: { type: "verify", source: { portal: lab.view.id, path: "A002-copy" } } })).json.id);
    expect(bad).toMatchObject({ status: "FAILED", attempts: 1, error: { code: "MHL_MISMATCH", message: expect.stringContaining("Sidecar.txt") } });
    expect((await events(bad.id)).find((e) => e.kind === "verified")?.data).toMatchObject({ ok: false, mismatched: [{ path: "Sidecar.txt", format: "xxh3" }] });
    expect(bad.files).toMatchObject({ total: 0 });
    expect((await f.call<{ files: unknown[] }>("GET", `/jobs/${bad.id}/files`)).json.files).toEqual([]);
    expect((await f.call("POST", `/jobs/${bad.id}/retry`)).json).toMatchObject({ status: "QUEUED", scope: "all" });
    expect(await finished(bad.id)).toMatchObject({ status: "FAILED", error: { code: "MHL_MISMATCH" } });

    const recorded = await finished((await f.call<JobView>("POST", "/jobs", { body: { type: "verify", source: { portal: lab.view.id, path: "A002-copy" }, options: { mhl: true } } })).json.id);
    expect(recorded.status).toBe("FAILED"); // still a mismatch, now also on record
    const names = (await readdir(join(lab.root, "A002-copy", "ascmhl"))).filter((n) => n.endsWith(".mhl")).sort();
    expect(names).toHaveLength(2);
    const text = await readFile(join(lab.root, "A002-copy", "ascmhl", names[1]!), "utf8");
    expect(text).toContain("<process>in-place</process>");
    expect(text).toMatch(/Sidecar\.txt<\/path>\s*<xxh3 action="failed"/);
    expect((await checkHistory(join(lab.root, "A002-copy"))).invalid).toEqual([]);
  });

  test("with skipFileErrors a source file that contradicts its history fails alone (DONE_WITH_ERRORS, a job_files row); its retry sends it once it matches", async () => {
    const lab = await portal();
    const srv = await portal();
    await card(lab.root);
    const first = (await f.call<JobView>("POST", "/jobs", { body: { type: "copy", source: { portal: lab.view.id, path: "A002" }, target: { portal: lab.view.id, path: "A002-set" }, options: { mhl: true } } })).json;
    expect((await finished(first.id)).status).toBe("DONE");
    await writeFile(join(lab.root, "A002-set", "Sidecar.txt"), "scene 4, take 3\n");

    const body = { type: "copy", source: { portal: lab.view.id, path: "A002-set" }, target: { portal: srv.view.id, path: "A002" }, options: { mhl: true, skipFileErrors: true } };
    const job = await finished((await f.call<JobView>("POST", "/jobs", { body })).json.id);
    expect(job).toMatchObject({ status: "DONE_WITH_ERRORS", error: { code: "FILES_FAILED" }, files: { failed: 1 } });
    const failed = (await f.call<{ files: { path: string; error: { code: string; message: string } }[] }>("GET", `/jobs/${job.id}/files?state=failed`)).json.files;
    expect(failed).toMatchObject([{ path: "Sidecar.txt", error: { code: "MHL_MISMATCH", message: expect.stringContaining("ASC MHL history") } }]);
    expect(existsSync(join(srv.root, "A002", "Sidecar.txt"))).toBe(false);
    const partial = await checkHistory(join(srv.root, "A002"));
    expect(partial.invalid).toEqual([]);
    expect(partial.verification.verified.map((v) => v.path)).toContain("Clips/C001.mov");

    await writeFile(join(lab.root, "A002-set", "Sidecar.txt"), "scene 4, take 2\n");
    expect((await f.call<JobView>("POST", `/jobs/${job.id}/retry`)).json).toMatchObject({ status: "QUEUED", scope: "failed" });
    expect(await finished(job.id)).toMatchObject({ status: "DONE", files: { failed: 0 } });
    expect(await readFile(join(srv.root, "A002", "Sidecar.txt"), "utf8")).toBe("scene 4, take 2\n");
    const whole = await checkHistory(join(srv.root, "A002"));
    expect(whole.invalid).toEqual([]);
    expect(whole.verification).toMatchObject({ ok: true });
  });

  test("request shapes: a verify job takes no target, a copy needs one, a hash must be known", async () => {
    const lab = await portal();
    const withTarget = await f.call("POST", "/jobs", { body: { type: "verify", source: { portal: lab.view.id, path: "x" }, target: { portal: lab.view.id, path: "y" } } });
    expect(withTarget.status).toBe(422);
    expect(withTarget.json.error?.message).toContain("leave target out");
    const without = await f.call("POST", "/jobs", { body: { type: "copy", source: { portal: lab.view.id, path: "x" } } });
    expect(without.status).toBe(422);
    expect(without.json.error?.message).toContain("needs a target");
    const hash = await f.call("POST", "/jobs", { body: { type: "copy", source: { portal: lab.view.id, path: "x" }, target: { portal: lab.view.id, path: "y" }, options: { hash: "xxh4" } } });
    expect(hash.status).toBe(422);
    expect(hash.json.error?.message).toContain("options.hash");
    const perFile = await f.call("POST", "/jobs", { body: { type: "verify", source: { portal: lab.view.id, path: "x" }, options: { skipFileErrors: true, sync: "size" } } });
    expect(perFile.status).toBe(422);
    expect(perFile.json.error?.message).toContain("does not take skipFileErrors");
    expect(perFile.json.error?.message).toContain("does not take sync");
  });
});
