// A worker process killed with SIGKILL half way through a 1 GiB push and a 1 GiB pull over SSH:
// the next worker finds the staging file and journal the dead one left, keeps what arrived
// (re-checked at both ends) and sends only the rest. The job ends DONE with exactly one `done`,
// the bytes identical, and the engine's own count (the done event's sentBytes) shows the second
// attempt sent at most 60 % of the file. Assertions are on bytes and states, never on time.
import { afterAll, afterEach, beforeAll, describe, expect, test } from "bun:test";
import fs from "node:fs";
import path from "node:path";
import { startSshd, type TestSshd } from "../testing/sshd.ts";
import { Scenario } from "./test_support.ts";

const T = 180_000;
const GIB = 1024 ** 3;
/** The read-rate limit of both workers: slow enough to kill the first one mid-file, fast enough for a test. */
const RATE = 128 * 1024 * 1024;

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

/** A file of `bytes` pseudo-random bytes, each 8 MiB block different (a range landing at the wrong offset shows). */
function writeBig(file: string, bytes: number): void {
  fs.mkdirSync(path.dirname(file), { recursive: true });
  const block = Buffer.alloc(8 << 20);
  for (let off = 0; off < block.length; off += 65536) crypto.getRandomValues(block.subarray(off, off + 65536));
  const fd = fs.openSync(file, "w");
  try {
    for (let at = 0; at < bytes; at += block.length) {
      block.writeDoubleLE(at, 0);
      fs.writeSync(fd, block, 0, Math.min(block.length, bytes - at));
    }
  } finally {
    fs.closeSync(fd);
  }
}

async function sha256(file: string): Promise<string> {
  const h = new Bun.CryptoHasher("sha256");
  for await (const chunk of Bun.file(file).stream()) h.update(chunk);
  return h.digest("hex");
}

describe("kill -9 of a worker half way through 1 GiB over SSH: the next attempt resumes", () => {
  for (const direction of ["push", "pull"] as const) {
    test(`${direction}: DONE once, bytes identical, the second attempt sent ≤ 60 %`, async () => {
      const s = (scenario = await new Scenario(`resume-${direction}`).setup());
      const remote = await s.sftpPortal(sshd);
      const name = `big-${direction}-${Date.now()}.mov`;
      const sourceFile = direction === "push" ? s.path("src", name) : path.join(sshd.root, name);
      writeBig(sourceFile, GIB);
      if (direction === "pull" && process.getuid?.() === 0) fs.chownSync(sourceFile, fs.statSync(sshd.root).uid, fs.statSync(sshd.root).gid);
      const targetFile = direction === "push" ? path.join(sshd.root, name) : s.path("dst", name);
      try {
        // A lease of 4 s: on a loaded machine a shorter one may lapse mid-transfer, which would test
        // another fault (1 s did; with 2 s the pull once ended FAILED while CI ran beside two busy
        // loops — its code was not recorded then, so the assertion below now carries it).
        const doomed = await s.spawnWorker({ WORKER_MAX_BYTES_PER_SEC: String(RATE), WORKER_LEASE_MS: "4000" });
        const job = await s.job(name, name, direction === "push" ? { target: remote } : { source: remote });
        await s.waitForJob(job.id, "half the bytes to travel", (r) => r.status === "RUNNING" && r.bytes_done >= GIB / 2, 60_000, doomed.output);
        doomed.proc.kill("SIGKILL");
        await doomed.proc.exited;

        const survivor = await s.spawnWorker({ WORKER_MAX_BYTES_PER_SEC: String(RATE), WORKER_LEASE_MS: "4000" });
        const row = await s.waitForJob(job.id, "the job to finish", (r) => r.status === "DONE" || r.status === "FAILED", 120_000, survivor.output);
        const events = await s.events(job.id);
        const kinds = events.map((e) => e.kind);
        // The failure's code and message come along: a FAILED job then says why, not only that.
        expect({ status: row.status, error: row.error_code && `${row.error_code}: ${row.error_message}`, done: kinds.filter((k) => k === "done").length, failed: kinds.filter((k) => k === "failed").length })
          .toEqual({ status: "DONE", error: null, done: 1, failed: 0 });
        expect(await sha256(targetFile)).toBe(await sha256(sourceFile));
        const resumed = events.find((e) => e.kind === "resumed");
        const done = events.find((e) => e.kind === "done")!;
        expect(resumed).toBeDefined();
        expect(done.data).toMatchObject({ bytes: GIB });
        const { sentBytes, resumedBytes } = done.data as { sentBytes: number; resumedBytes: number };
        expect(sentBytes + resumedBytes).toBe(GIB);
        expect(sentBytes).toBeLessThanOrEqual(0.6 * GIB);
        // The job's progress says so too (GET /jobs/{id}: progress.bytesResumed).
        expect(Number(row.bytes_resumed)).toBe(resumedBytes);
        // Nothing left next to the target.
        expect(fs.readdirSync(path.dirname(targetFile)).filter((n) => n.startsWith(".ketter-"))).toEqual([]);
      } finally {
        fs.rmSync(direction === "push" ? targetFile : sourceFile, { force: true });
      }
    }, T);
  }
});
