// First contact, as a new user meets it: a fresh stack (API and worker processes on a fresh
// database and Redis), the examples of the OpenAPI document as they are — only the portal ids and
// folders filled in — and the job reaches DONE with identical bytes. The failures a newcomer meets
// next (no parent folder, an existing target, a root that is not there) speak the API's language.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { existsSync } from "node:fs";
import { mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { startStack, type TestStack } from "../dku/test_stack.ts";
import { waitFor } from "../testing/ports.ts";
import type { JobView } from "./jobs/schemas.ts";

let stack: TestStack;
let base: string;
let dir: string;
let headers: Record<string, string>;

beforeAll(async () => {
  stack = await startStack();
  base = stack.env.KETTER_API_URL!;
  headers = { authorization: `Bearer ${stack.env.KETTER_API_TOKEN}`, "content-type": "application/json" };
  dir = await mkdtemp(join(tmpdir(), "ketter-first-job-"));
}, 90_000);
afterAll(async () => {
  await stack?.stop();
  if (dir) await rm(dir, { recursive: true, force: true });
});

type Example = Record<string, unknown>;
interface Doc {
  paths: Record<string, Record<string, { requestBody: { content: { "application/json": { schema: { examples: Example[] } } } } }>>;
}

async function call<T>(method: string, path: string, body?: unknown): Promise<{ status: number; json: T }> {
  const res = await fetch(`${base}${path}`, { method, headers, ...(body === undefined ? {} : { body: JSON.stringify(body) }) });
  return { status: res.status, json: (await res.json()) as T };
}

/** Waits until the job leaves QUEUED/RUNNING/RETRY_WAIT and returns it. */
async function finished(id: string): Promise<JobView> {
  let job: JobView | undefined;
  await waitFor(async () => ["DONE", "FAILED", "CANCELLED"].includes((job = (await call<JobView>("GET", `/jobs/${id}`)).json).status), { what: `job ${id} to finish\n${stack.logs().slice(-3000)}`, timeoutMs: 60_000 });
  return job!;
}

describe("first contact", () => {
  test("the documented examples run to DONE on a fresh stack; the next mistakes are explained in API terms", async () => {
    const doc = (await (await fetch(`${base}/swagger/json`)).json()) as Doc;
    const portalExample = doc.paths["/portals"]!.post!.requestBody.content["application/json"].schema.examples[0]!;
    const jobExample = doc.paths["/jobs"]!.post!.requestBody.content["application/json"].schema.examples[0] as {
      source: { portal: string; path: string };
      target: { portal: string; path: string };
      options: Record<string, unknown>;
    };
    expect(portalExample.kind).toBe("local");

    // Two portals from the example, on folders of this test: LAB with the footage, SRVTRF empty.
    const [lab, srvtrf] = [join(dir, "lab"), join(dir, "srvtrf")];
    await mkdir(lab);
    await mkdir(srvtrf);
    const a = await call<{ id: string; warnings: unknown[] }>("POST", "/portals", { ...portalExample, name: "lab-footage", rootPath: lab });
    const b = await call<{ id: string; warnings: unknown[] }>("POST", "/portals", { ...portalExample, name: "srvtrf-in", rootPath: srvtrf });
    expect([a.status, a.json.warnings, b.status, b.json.warnings]).toEqual([201, [], 201, []]);
    const shoot = join(lab, jobExample.source.path);
    await mkdir(join(shoot, "day1"), { recursive: true });
    await writeFile(join(shoot, "day1", "A001.mov"), Buffer.alloc(300_000, 7));
    await writeFile(join(shoot, "notes.txt"), "first contact\n");

    // The job example as it stands (its target's parent "incoming" does not exist yet).
    expect(jobExample.target.path.includes("/")).toBe(true);
    const body = { ...jobExample, source: { ...jobExample.source, portal: a.json.id }, target: { ...jobExample.target, portal: b.json.id } };
    const created = await call<JobView>("POST", "/jobs", body);
    expect(created.status).toBe(201);
    const done = await finished(created.json.id);
    expect([done.status, done.error]).toEqual(["DONE", null]);
    const landed = join(srvtrf, jobExample.target.path);
    expect(await readFile(join(landed, "day1", "A001.mov"))).toEqual(Buffer.alloc(300_000, 7));
    expect(await readFile(join(landed, "notes.txt"), "utf8")).toBe("first contact\n");

    // Again: the target exists now. The message names the job option, not the engine CLI's flag.
    const again = await finished((await call<JobView>("POST", "/jobs", body)).json.id);
    expect(again.status).toBe("FAILED");
    expect(again.error?.code).toBe("TARGET_EXISTS");
    expect(again.error?.message).toContain("options.overwrite");
    expect(again.error?.message).not.toContain("--");
    const events = (await call<{ events: { kind: string; message: string; data: { message?: string } }[] }>("GET", `/jobs/${again.id}/events`)).json.events;
    const failed = events.find((e) => e.kind === "failed")!;
    expect(failed.message).not.toContain("--overwrite");
    expect(failed.data.message).not.toContain("--overwrite");

    // Without createParents the parent must exist (the safe default), and the answer says what to do.
    const strict = { ...body, target: { ...body.target, path: "elsewhere/shoot" }, options: { ...jobExample.options, createParents: false } };
    const refused = await finished((await call<JobView>("POST", "/jobs", strict)).json.id);
    expect([refused.status, refused.error?.code]).toEqual(["FAILED", "NOT_A_DIRECTORY"]);
    expect(refused.error?.message).toContain("options.createParents");

    // A portal whose root is not there is saved, and the answer says so; createParents never makes a root.
    const ghostRoot = join(dir, "not-mounted");
    const ghost = await call<{ id: string; warnings: { code: string; message: string }[] }>("POST", "/portals", { ...portalExample, name: "ghost", rootPath: ghostRoot });
    expect(ghost.status).toBe(201);
    expect(ghost.json.warnings.map((w) => w.code)).toEqual(["ROOT_NOT_FOUND"]);
    expect(ghost.json.warnings[0]!.message).toContain(ghostRoot);
    const toGhost = await finished((await call<JobView>("POST", "/jobs", { ...body, target: { portal: ghost.json.id, path: "incoming/shoot" } })).json.id);
    expect([toGhost.status, toGhost.error?.code]).toEqual(["FAILED", "NOT_A_DIRECTORY"]);
    expect(toGhost.error?.message).toContain("never creates a portal's root");
    expect(existsSync(ghostRoot)).toBe(false);
  }, 120_000);
});
