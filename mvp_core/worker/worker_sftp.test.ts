import { afterAll, afterEach, beforeAll, describe, expect, test } from "bun:test";
import { startSshd, type TestSshd } from "../testing/sshd.ts";
import { Scenario, sameBytes } from "./test_support.ts";

const T = 60_000;
let sshd: TestSshd;
let scenario: Scenario | undefined;

beforeAll(async () => {
  sshd = await startSshd();
}, T);
afterAll(async () => {
  await sshd?.stop();
});
afterEach(async () => {
  await scenario?.clean();
  scenario = undefined;
});

describe("worker: local → remote (sftp)", () => {
  test("a copy to an SSH portal reaches DONE with identical bytes", async () => {
    const s = (scenario = await new Scenario("sftp-copy").setup());
    await s.writeSource("day1/cam_a.mov", 2 * 1024 * 1024 + 5);
    await s.writeSource("day1/notes.txt", 321);
    const remote = await s.sftpPortal(sshd);
    await s.startWorker();
    const job = await s.job("day1", `day1-${Date.now()}`, { target: remote });
    const done = await s.waitForStatus(job.id, "DONE", 30_000);
    expect(done.files_done).toBe(2);
    expect(await sameBytes(s.path("src/day1/cam_a.mov"), `${sshd.root}/${job.target_path}/cam_a.mov`)).toBe(true);
    expect(await sameBytes(s.path("src/day1/notes.txt"), `${sshd.root}/${job.target_path}/notes.txt`)).toBe(true);
    expect((await s.kinds(job.id)).filter((k) => k === "done")).toHaveLength(1);
  }, T);

  test("the SSH server going away is a retryable fault: the job waits, retries and completes", async () => {
    const s = (scenario = await new Scenario("sftp-outage").setup());
    await s.writeSource("clip.mov", 300_000);
    const remote = await s.sftpPortal(sshd);
    await sshd.kill();
    try {
      await s.startWorker({ retryBaseMs: 1_000, retryMaxMs: 2_000 });
      const job = await s.job("clip.mov", `clip-${Date.now()}.mov`, { target: remote });
      const waiting = await s.waitForStatus(job.id, "RETRY_WAIT", 30_000);
      expect(waiting.error_code).toBe("CONNECTION_FAILED");
    } finally {
      await sshd.restart();
    }
    const [job] = await s.sql<{ id: string; target_path: string }[]>`select id, target_path from jobs where target_portal_id = ${remote.id}`;
    const done = await s.waitForStatus(job!.id, "DONE", 30_000);
    expect(done.attempts).toBeGreaterThanOrEqual(2);
    expect(await sameBytes(s.path("src/clip.mov"), `${sshd.root}/${job!.target_path}`)).toBe(true);
  }, T);
});
