// End to end: jobs created through the API are run by a real worker process (bun run worker) and
// reach DONE with identical bytes — local→local, local→sftp (real sshd), and a job whose enqueue
// failed (Redis unreachable for the API) that the worker's reconciler still finds in Postgres.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { createHash, randomBytes } from "node:crypto";
import { mkdir, readdir, readFile, writeFile } from "node:fs/promises";
import { join, relative } from "node:path";
import { JobQueue } from "../queue/queue.ts";
import { connectRedis } from "../queue/redis.ts";
import { freePort, waitFor } from "../testing/ports.ts";
import { uniqueId } from "../testing/services.ts";
import { startSshd, type TestSshd } from "../testing/sshd.ts";
import type { JobView } from "./jobs/schemas.ts";
import type { PortalView } from "./portals/schemas.ts";
import { apiFixture, type ApiFixture, startWorkerProcess, type WorkerProcess } from "./test_support.ts";

let f: ApiFixture;
let sshd: TestSshd;
let worker: WorkerProcess;

beforeAll(async () => {
  [f, sshd] = await Promise.all([apiFixture(), startSshd()]);
  // ~2 s per job, so a person (and this test's polling) sees RUNNING with live progress.
  worker = await startWorkerProcess(f, { WORKER_MAX_BYTES_PER_SEC: "200000" });
}, 60_000);

afterAll(async () => {
  await worker.stop();
  await f.close();
  await sshd.stop();
});

async function tree(root: string): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  for (const e of await readdir(root, { recursive: true, withFileTypes: true })) {
    if (!e.isFile()) continue;
    const abs = join(e.parentPath, e.name);
    out.set(relative(root, abs), createHash("sha256").update(await readFile(abs)).digest("hex"));
  }
  return out;
}

async function footage(dir: string): Promise<void> {
  await mkdir(join(dir, "shoot", "A001"), { recursive: true });
  await writeFile(join(dir, "shoot", "A001", "clip1.mov"), randomBytes(300_000));
  await writeFile(join(dir, "shoot", "A001", "clip2.mov"), randomBytes(70_000));
  await writeFile(join(dir, "shoot", "notes.txt"), "take 3 was good\n");
}

async function watch(id: string, fx = f): Promise<{ final: JobView; seen: string[] }> {
  const seen: string[] = [];
  let final: JobView | undefined;
  await waitFor(async () => {
    final = (await fx.call<JobView>("GET", `/jobs/${id}`)).json;
    if (seen[seen.length - 1] !== final.status) seen.push(final.status);
    return ["DONE", "FAILED", "CANCELLED"].includes(final.status);
  }, { what: `job ${id} to finish (worker output: ${worker.output().slice(-2000)})`, timeoutMs: 45_000, intervalMs: 20 });
  return { final: final!, seen };
}

const local = async (fx = f) => (await fx.call<PortalView>("POST", "/portals", { body: { kind: "local", name: `e2e_${uniqueId()}`, rootPath: await fx.tempDir() } })).json;

describe("jobs end to end with a real worker", () => {
  test("local → local copy: QUEUED → RUNNING → DONE with progress, events and identical bytes", async () => {
    const [a, b] = [await local(), await local()];
    await footage(a.rootPath);
    const created = await f.call<JobView>("POST", "/jobs", { body: { type: "copy", source: { portal: a.id, path: "shoot" }, target: { portal: b.id, path: "shoot_copy" } } });
    expect([created.status, created.json.status]).toEqual([201, "QUEUED"]);
    const { final, seen } = await watch(created.json.id);
    expect(final.status).toBe("DONE");
    expect(seen).toEqual(["QUEUED", "RUNNING", "DONE"].filter((st) => st !== "QUEUED" || seen[0] === "QUEUED"));
    expect(seen).toContain("RUNNING");
    expect(final.progress).toMatchObject({ filesDone: 3, filesTotal: 3, bytesDone: 370_016, bytesTotal: 370_016, percent: 100 });
    const kinds = (await f.call<{ events: { kind: string }[] }>("GET", `/jobs/${final.id}/events`)).json.events.map((e) => e.kind);
    expect(kinds.slice(0, 3)).toEqual(["created", "queued", "started"]);
    expect(kinds[kinds.length - 1]).toBe("done");
    expect(await tree(join(b.rootPath, "shoot_copy"))).toEqual(await tree(join(a.rootPath, "shoot")));
  }, 60_000);

  test("local → sftp move through the real sshd (pinned host key): DONE, bytes identical, source removed", async () => {
    const a = await local();
    await footage(a.rootPath);
    const before = await tree(join(a.rootPath, "shoot"));
    const s = (await f.call<PortalView>("POST", "/portals", {
      body: { kind: "sftp", name: `e2e_ssh_${uniqueId()}`, rootPath: sshd.root, host: sshd.host, port: sshd.port, username: sshd.username, auth: { method: "key", privateKey: sshd.privateKey }, hostKeyFingerprint: sshd.hostKeyFingerprint },
    })).json;
    const created = await f.call<JobView>("POST", "/jobs", { body: { type: "move", source: { portal: a.id, path: "shoot" }, target: { portal: s.id, path: "shoot_in" }, options: { verify: "checksum" } } });
    expect(created.status).toBe(201);
    const { final } = await watch(created.json.id);
    expect([final.status, final.error]).toEqual(["DONE", null]);
    expect(await tree(join(sshd.root, "shoot_in"))).toEqual(before);
    expect(await readdir(a.rootPath)).toEqual([]);
  }, 60_000);

  test("a job whose enqueue failed (Redis unreachable for the API) is still run: the reconciler finds it in Postgres", async () => {
    const deadRedis = connectRedis(`redis://127.0.0.1:${await freePort()}/0`, { name: "dead" });
    deadRedis.on("error", () => undefined); // nothing listens there on purpose
    const cut = await apiFixture({ queue: new JobQueue({ redis: deadRedis, prefix: f.prefix }), pingRedis: () => deadRedis.ping(), redisTimeoutMs: 200, secretKey: f.deps.secretKey });
    try {
      const [a, b] = [await local(cut), await local(cut)];
      await footage(a.rootPath);
      const created = await cut.call<JobView>("POST", "/jobs", { body: { type: "copy", source: { portal: a.id, path: "shoot" }, target: { portal: b.id, path: "shoot" } } });
      expect([created.status, created.json.status]).toEqual([201, "QUEUED"]);
      const { final } = await watch(created.json.id, cut);
      expect(final.status).toBe("DONE");
      expect(await tree(join(b.rootPath, "shoot"))).toEqual(await tree(join(a.rootPath, "shoot")));
    } finally {
      deadRedis.disconnect();
      await cut.close();
    }
  }, 60_000);
});
