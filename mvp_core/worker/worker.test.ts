import { afterEach, describe, expect, test } from "bun:test";
import { existsSync, readdirSync } from "node:fs";
import { mkdir } from "node:fs/promises";
import { Scenario, sameBytes } from "./test_support.ts";

let scenario: Scenario | undefined;
afterEach(async () => {
  await scenario?.clean();
  scenario = undefined;
});

async function setup(name: string): Promise<Scenario> {
  scenario = await new Scenario(name).setup();
  return scenario;
}

describe("worker: job lifecycle local → local", () => {
  test("a copy job reaches DONE with identical bytes, its events in order, and Redis forgets it", async () => {
    const s = await setup("copy");
    await s.writeSource("shoot_01/a.mov", 3 * 1024 * 1024 + 17);
    await s.writeSource("shoot_01/sub/b.wav", 70_000);
    const worker = await s.startWorker();
    await mkdir(s.path("dst/incoming"));
    const job = await s.job("shoot_01", "incoming/shoot_01");

    const done = await s.waitForStatus(job.id, "DONE");
    expect(await sameBytes(s.path("src/shoot_01/a.mov"), s.path("dst/incoming/shoot_01/a.mov"))).toBe(true);
    expect(await sameBytes(s.path("src/shoot_01/sub/b.wav"), s.path("dst/incoming/shoot_01/sub/b.wav"))).toBe(true);
    expect(done).toMatchObject({ attempts: 1, files_done: 2, files_total: 2, bytes_done: 3 * 1024 * 1024 + 17 + 70_000, worker_id: worker.id, error_code: null });
    expect(done.finished_at).not.toBeNull();
    const kinds = await s.kinds(job.id);
    expect(kinds.slice(0, 4)).toEqual(["created", "queued", "started", "strategy_chosen"]);
    expect(kinds.filter((k) => k !== "progress").slice(-3)).toEqual(["verified", "committed", "done"]);
    expect(kinds.filter((k) => k === "done")).toHaveLength(1);
    expect(existsSync(s.path("src/shoot_01/a.mov"))).toBe(true);
    expect(await s.queue.depth()).toEqual({ pending: 0, processing: 0, delayed: 0 });
    expect(await s.queue.held([job.id])).toEqual([false]);
    expect((await s.queue.liveWorkers()).map((w) => w.id)).toContain(worker.id);
  });
});
