// Resume after a fault, push and pull, against a real sshd: an attempt stopped half way keeps its
// staging and journal, the next attempt with the same id re-checks what is there and sends only the
// rest; damage in the staging file is found and sent again; a source changed between attempts is
// sent again in full; a cancel leaves nothing to resume. Assertions are on bytes and states only.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import fs from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { connectSsh } from "./endpoints/sftp/index.ts";
import { chownTree, targetOf } from "./endpoints/sftp/test_support.ts";
import { localEndpoint } from "./endpoints/testing.ts";
import type { Endpoint } from "./endpoints/endpoint.ts";
import { type EngineEvent, type TransferResult, isTransferError, transfer } from "./index.ts";
import { startSshd, type TestSshd } from "../testing/sshd.ts";
import { netnsUnavailable, withTestbed } from "../testing/testbed/testbed.ts";

const TIMEOUT_MS = 120_000;
/** Ranges from 8 MiB, 4 MiB each, a journal written at every change: small files, fine-grained resume. */
const OPTIONS = { rangeMinFileBytes: 8 << 20, rangeMaxBytes: 4 << 20, journalIntervalMs: 0, progressIntervalMs: 0, resumeProbeBytes: 8 << 20 };
const BIG = 40 * 1024 * 1024 + 777;

function random(n: number): Uint8Array {
  const b = new Uint8Array(n);
  for (let off = 0; off < n; off += 65536) crypto.getRandomValues(b.subarray(off, Math.min(n, off + 65536)));
  return b;
}

/** A card: one big clip (ranges) and ten small files (whole). */
function card(root: string): void {
  fs.mkdirSync(path.join(root, "card/meta"), { recursive: true });
  fs.writeFileSync(path.join(root, "card/A001.mov"), random(BIG));
  for (let i = 0; i < 10; i++) fs.writeFileSync(path.join(root, `card/meta/m${i}.xml`), random(100_000 + i));
}

function sameTree(a: string, b: string): void {
  const files = (d: string): string[] => (fs.readdirSync(d, { recursive: true }) as string[]).filter((f) => fs.statSync(path.join(d, f)).isFile()).sort();
  expect(files(b)).toEqual(files(a));
  for (const f of files(a)) expect(Buffer.compare(fs.readFileSync(path.join(a, f)), fs.readFileSync(path.join(b, f))), f).toBe(0);
}

/** Writes zeros to `file` until the disk is full (ENOSPC ends it). */
function fillDisk(file: string): void {
  const fd = fs.openSync(file, "w");
  const zeros = Buffer.alloc(1 << 20);
  try {
    for (;;) fs.writeSync(fd, zeros);
  } catch (err) {
    if ((err as { code?: string }).code !== "ENOSPC") throw err;
  } finally {
    fs.closeSync(fd);
  }
}

function leftovers(dir: string): string[] {
  return fs.readdirSync(dir).filter((n) => n.startsWith(".ketter-")).sort();
}

interface Side { source: Endpoint; target: Endpoint; sourceDir: string; targetDir: string }

/**
 * Runs the transfer, stopped once `stopAt` of its bytes went (null: to the end) with `stop.reason`
 * as the abort reason (the worker's "shutdown" by default; absent: an abort without one, the CLI's),
 * or, with `stop.fault`, by that fault instead (an sshd killed, a disk filled, a link cut).
 */
async function attempt(side: Side, id: string, stopAt: number | null, stop: { reason?: string; fault?: () => Promise<void> } = { reason: "shutdown" }): Promise<{ result: TransferResult | null; error: unknown; events: EngineEvent[] }> {
  const events: EngineEvent[] = [];
  const controller = new AbortController();
  let fault: Promise<void> | null = null;
  try {
    const result = await transfer({ id, sourcePath: "card", targetPath: "card", mode: "copy" }, {
      source: side.source, target: side.target, signal: controller.signal, options: OPTIONS, onEvent: (e) => events.push(e),
      onProgress: (p) => {
        if (stopAt === null || p.phase !== "transfer" || p.bytesDone < stopAt * p.bytesTotal) return;
        if (stop.fault) fault ??= stop.fault();
        else controller.abort(stop.reason);
      },
    });
    await fault;
    return { result, error: null, events };
  } catch (error) {
    await fault;
    return { result: null, error, events };
  }
}

/** The second attempt's truth after any fault: done, identical, nothing left, more than `minKept` (a third) kept, at most `maxSent` (60 %) sent again. */
function expectResumed(side: Side, second: Awaited<ReturnType<typeof attempt>>, { minKept = 1 / 3, maxSent = 0.6 } = {}): void {
  expect(second.error).toBeNull();
  const r = second.result!;
  sameTree(path.join(side.sourceDir, "card"), path.join(side.targetDir, "card"));
  expect(leftovers(side.targetDir)).toEqual([]);
  expect(second.events.find((e) => e.kind === "resumed")?.data?.bytes).toBe(r.resumedBytes);
  expect(r.resumedBytes + r.sentBytes).toBe(r.bytes);
  expect(r.resumedBytes).toBeGreaterThan(minKept * r.bytes);
  expect(r.sentBytes).toBeLessThanOrEqual(maxSent * r.bytes);
}

describe("resume after a fault (real sshd)", () => {
  let s: TestSshd;
  let local: string;
  beforeAll(async () => {
    s = await startSshd();
    local = await mkdtemp(path.join(os.tmpdir(), "ketter-resume-"));
  });
  afterAll(async () => {
    await s.stop();
    await rm(local, { recursive: true, force: true });
  });

  /** Push (local → SSH) or pull (SSH → local) of a fresh card; `fn` gets both sides. */
  async function withSides(direction: "push" | "pull", fn: (side: Side) => Promise<void>): Promise<void> {
    const remote = await connectSsh(targetOf(s));
    const here = localEndpoint(local);
    const [sourceDir, targetDir] = direction === "push" ? [local, s.root] : [s.root, local];
    card(sourceDir);
    chownTree(s.root, s);
    try {
      await fn(direction === "push" ? { source: here, target: remote, sourceDir, targetDir } : { source: remote, target: here, sourceDir, targetDir });
    } finally {
      await remote.close();
      await here.close();
      for (const d of [local, s.root]) for (const n of fs.readdirSync(d)) fs.rmSync(path.join(d, n), { recursive: true, force: true });
    }
  }

  for (const direction of ["push", "pull"] as const) {
    test(`${direction}: stopped at ~50 % (worker shutdown), the next attempt keeps what arrived and sends the rest`, async () => {
      await withSides(direction, async (side) => {
        const first = await attempt(side, `r-${direction}`, 0.5);
        expect(isTransferError(first.error) && first.error.code).toBe("CANCELLED");
        // Kept for the next attempt, nothing under the final name.
        expect(leftovers(side.targetDir)).toEqual([`.ketter-r-${direction}.journal`, `.ketter-r-${direction}.partial`]);
        expect(fs.existsSync(path.join(side.targetDir, "card"))).toBe(false);

        expectResumed(side, await attempt(side, `r-${direction}`, null));
      });
    }, TIMEOUT_MS);
  }

  test("sshd killed mid-push (connection lost): the retry after its restart resumes", async () => {
    await withSides("push", async (side) => {
      const first = await attempt(side, "r-sshd", 0.5, { fault: () => s.kill() });
      expect(isTransferError(first.error) && { code: first.error.code, retryable: first.error.retryable }).toEqual({ code: "CONNECTION_LOST", retryable: true });
      await s.restart();
      const again = await connectSsh(targetOf(s));
      try {
        expectResumed(side, await attempt({ ...side, target: again }, "r-sshd", null));
      } finally {
        await again.close();
      }
    });
  }, TIMEOUT_MS);

  test("a corrupted range in the staging file is found by the re-check and sent again", async () => {
    await withSides("push", async (side) => {
      const first = await attempt(side, "r-bad", 0.6);
      expect(isTransferError(first.error)).toBe(true);
      const staged = path.join(side.targetDir, ".ketter-r-bad.partial/A001.mov");
      // Damage one byte in the first MiB (a range the journal confirmed), as a bad disk would.
      const fd = fs.openSync(staged, "r+");
      const b = Buffer.alloc(1);
      fs.readSync(fd, b, 0, 1, 123_456);
      b[0] = b[0]! ^ 0xff;
      fs.writeSync(fd, b, 0, 1, 123_456);
      fs.closeSync(fd);
      const journal = JSON.parse(fs.readFileSync(path.join(side.targetDir, ".ketter-r-bad.journal"), "utf8")) as { files: Record<string, { extents: [number, number, string][] }> };
      const claimed = journal.files["A001.mov"]!.extents.reduce((n, [, len]) => n + len, 0);
      expect(journal.files["A001.mov"]!.extents.some(([o, len]) => o <= 123_456 && 123_456 < o + len)).toBe(true);

      const second = await attempt(side, "r-bad", null);
      expect(second.error).toBeNull();
      sameTree(path.join(side.sourceDir, "card"), path.join(side.targetDir, "card"));
      // The damaged extent was not kept: fewer bytes of the clip resumed than the journal claimed.
      const r = second.result!;
      expect(r.resumedBytes + r.sentBytes).toBe(r.bytes);
      const smallFilesKept = (second.events.find((e) => e.kind === "resumed")?.data?.files as number) ?? 0;
      expect(r.resumedBytes - smallFilesKept * 100_000).toBeLessThan(claimed);
    });
  }, TIMEOUT_MS);

  test("a source changed between attempts (same size, new content and mtime) is sent again in full", async () => {
    await withSides("push", async (side) => {
      const first = await attempt(side, "r-changed", 0.5);
      expect(isTransferError(first.error)).toBe(true);
      const clip = path.join(side.sourceDir, "card/A001.mov");
      fs.writeFileSync(clip, random(BIG));
      const later = new Date(Date.now() + 5000);
      fs.utimesSync(clip, later, later);

      const second = await attempt(side, "r-changed", null);
      expect(second.error).toBeNull();
      sameTree(path.join(side.sourceDir, "card"), path.join(side.targetDir, "card"));
      const r = second.result!;
      // Only small files may be kept; every byte of the changed clip travelled again.
      expect(r.sentBytes).toBeGreaterThanOrEqual(BIG);
      expect(r.resumedBytes + r.sentBytes).toBe(r.bytes);
    });
  }, TIMEOUT_MS);

  for (const reason of ["cancel", undefined] as const) {
    test(`a cancel (${reason ?? "the CLI's Ctrl-C: no reason"}) removes the staging and its journal; a retry starts fresh`, async () => {
      await withSides("push", async (side) => {
        const first = await attempt(side, "r-cancel", 0.5, reason === undefined ? {} : { reason });
        expect(isTransferError(first.error) && first.error.code).toBe("CANCELLED");
        expect(leftovers(side.targetDir)).toEqual([]);
        const second = await attempt(side, "r-cancel", null);
        expect(second.error).toBeNull();
        expect(second.result?.resumedBytes).toBe(0);
        expect(second.events.some((e) => e.kind === "resumed")).toBe(false);
        sameTree(path.join(side.sourceDir, "card"), path.join(side.targetDir, "card"));
      });
    }, TIMEOUT_MS);
  }
});

describe("resume after the destination disk filled up (real sshd, root: a small tmpfs)", () => {
  test.skipIf(process.getuid?.() !== 0)("disk full mid-push (NO_SPACE keeps the staging), then freed: the retry resumes", async () => {
    const s = await startSshd();
    const local = await mkdtemp(path.join(os.tmpdir(), "ketter-resume-"));
    const disk = await s.mountSmallDisk("small", 60 * 1024 * 1024);
    const remote = await connectSsh(targetOf(s, disk));
    const here = localEndpoint(local);
    card(local);
    const side: Side = { source: here, target: remote, sourceDir: local, targetDir: disk };
    try {
      // Another writer fills the disk once half the card went: the transfer meets ENOSPC.
      const filler = path.join(disk, "filler");
      const first = await attempt(side, "r-full", 0.5, { fault: async () => fillDisk(filler) });
      expect(isTransferError(first.error) && first.error.code).toBe("NO_SPACE");
      expect(leftovers(disk)).toEqual([".ketter-r-full.journal", ".ketter-r-full.partial"]);
      fs.rmSync(filler);
      // Free again, but not for the whole card a second time: the retry counts what is already there.
      // The writes in flight when the disk filled are lost (how many depends on the machine's load):
      // the assertion is that the retry keeps what had landed, not how much that is.
      expectResumed(side, await attempt(side, "r-full", null), { minKept: 0.1, maxSent: 0.9 });
    } finally {
      await remote.close();
      await here.close();
      await s.stop();
      await rm(local, { recursive: true, force: true });
    }
  }, TIMEOUT_MS);
});

describe.skipIf(netnsUnavailable() !== null)("resume after the link was cut (WAN testbed, root)", () => {
  test("the link cut mid-push: the attempt fails (connection lost), the retry after the link is back resumes", async () => {
    await withTestbed({}, async (tb) => {
      const far = await tb.path({ rttMs: 20 });
      // Keepalive every second: three unanswered ones end the silent connection within seconds.
      const target = () => connectSsh({ ...targetOf(tb.sshd), host: far.host, port: far.port, keepaliveIntervalMs: 1000 });
      const remote = await target();
      const here = localEndpoint(tb.labRoot);
      card(tb.labRoot);
      const side: Side = { source: here, target: remote, sourceDir: tb.labRoot, targetDir: tb.sshd.root };
      try {
        const first = await attempt(side, "r-cut", 0.5, { fault: () => tb.cut() });
        expect(isTransferError(first.error) && { code: first.error.code, retryable: first.error.retryable }).toEqual({ code: "CONNECTION_LOST", retryable: true });
        await tb.restore();
        const again = await target();
        try {
          // A cut link loses every range in flight (up to 3 streams × 4 MiB here, against a 43 MB card at 50 %):
          // the assertion is that the retry keeps what had arrived, not how much that is.
          expectResumed(side, await attempt({ ...side, target: again }, "r-cut", null), { minKept: 0.1, maxSent: 0.9 });
        } finally {
          await again.close();
        }
      } finally {
        await remote.close();
        await here.close();
      }
    });
  }, TIMEOUT_MS);
});
