import { afterEach, beforeEach, describe, expect, test } from "bun:test";
import fs from "node:fs";
import path from "node:path";
import type { Capabilities, Endpoint, Entry, FileWriter, HashAlgorithm, Location, OpOptions, SpaceInfo } from "./endpoints/endpoint.ts";
import { TransferError, isTransferError } from "./errors.ts";
import { type EngineEvent, type Progress, type TransferResult, type TransferSpecInput, transfer } from "./index.ts";
import { localEndpoint, withOverrides } from "./endpoints/testing.ts";
import type { TransferContext } from "./transfer.ts";
import { leftovers, randomBytes, snapshot, tempDir, treeDiff, writeTree } from "./test_tree.ts";

let dir: string;
let cleanup: () => Promise<void>;
let ep: Endpoint;
beforeEach(async () => {
  ({ dir, cleanup } = await tempDir());
  ep = localEndpoint(dir);
});
afterEach(() => cleanup());

const abs = (rel: string): string => path.join(dir, rel);

async function run(spec: TransferSpecInput, ctx: Partial<TransferContext> = {}): Promise<TransferResult> {
  return transfer(spec, { source: ep, target: ep, ...ctx });
}

async function failure(spec: TransferSpecInput, ctx: Partial<TransferContext> = {}): Promise<{ code: string; retryable: boolean; message: string }> {
  try {
    await run(spec, ctx);
  } catch (err) {
    if (isTransferError(err)) return { code: err.code, retryable: err.retryable, message: err.message };
    throw err;
  }
  throw new Error("transfer unexpectedly succeeded");
}

/** A tree with nested and empty folders, odd names, modes, an old mtime and an inside link. */
function sampleTree(root: string): void {
  writeTree(root, {
    "a/b/c/deep.bin": 70_000,
    "a/plain.txt": "hello",
    "with space/ünïcødé 名前.txt": "unicode",
    "new\nline": "newline in the name",
    "empty/": "",
    "a/empty-too/": "",
    "zero": "",
  });
  fs.chmodSync(path.join(root, "a/plain.txt"), 0o600);
  fs.chmodSync(path.join(root, "zero"), 0o755);
  fs.utimesSync(path.join(root, "zero"), new Date("1975-06-01T00:00:00Z"), new Date("1975-06-01T00:00:00Z"));
  fs.symlinkSync("../a/plain.txt", path.join(root, "with space/link"));
  fs.utimesSync(path.join(root, "a/b"), new Date("2001-01-01T00:00:00Z"), new Date("2001-01-01T00:00:00Z"));
}

describe("copy", () => {
  test("a single file keeps content, mode and mtime", async () => {
    writeTree(dir, { "f.bin": 1_500_000 });
    fs.chmodSync(abs("f.bin"), 0o640);
    const before = snapshot(abs("f.bin"));
    const r = await run({ sourcePath: "f.bin", targetPath: "g.bin", mode: "copy" });
    expect(treeDiff(snapshot(abs("g.bin")), before)).toEqual([]);
    expect(treeDiff(snapshot(abs("f.bin")), before)).toEqual([]);
    expect(r).toMatchObject({ strategy: "direct", files: 1, bytes: 1_500_000, verified: { mode: "checksum", algorithm: "xxh3", files: 1 } });
    expect(leftovers(dir)).toEqual([]);
  });

  for (const strategy of ["direct", "zip"] as const) {
    for (const verify of ["checksum", "size"] as const) {
      test(`a small folder with nested/empty folders, odd names and a link (${strategy}, ${verify})`, async () => {
        sampleTree(abs("src"));
        const before = snapshot(abs("src"));
        const r = await run({ sourcePath: "src", targetPath: "dst", mode: "copy", strategy, verify });
        expect(treeDiff(snapshot(abs("dst")), before)).toEqual([]);
        expect(treeDiff(snapshot(abs("src")), before)).toEqual([]);
        expect(r).toMatchObject({ strategy, files: 5, dirs: 6, links: 1 });
        expect(leftovers(dir)).toEqual([]);
      });
    }
  }

  for (const verify of ["size", "checksum"] as const) {
    test(`files of odd sizes (0 bytes, 1, 4097, 1 MiB + 1) through the preallocated copy_file_range path keep content, mode and mtime (${verify})`, async () => {
      writeTree(abs("src"), { "zero": "", "one": 1, "page": 4097, "mib": 1024 * 1024 + 1 });
      fs.chmodSync(abs("src/page"), 0o751);
      fs.utimesSync(abs("src/mib"), new Date("1999-12-31T23:59:59Z"), new Date("1999-12-31T23:59:59Z"));
      const before = snapshot(abs("src"));
      // wholeFileBytes 0: every file, even the empty one, takes the large-file path.
      const r = await run({ sourcePath: "src", targetPath: "dst", mode: "copy", strategy: "direct", verify }, { options: { wholeFileBytes: 0 } });
      expect(r.verified).toMatchObject({ mode: verify, files: 4 });
      expect(treeDiff(snapshot(abs("dst")), before)).toEqual([]);
      expect(fs.statSync(abs("dst/mib")).size).toBe(1024 * 1024 + 1);
      expect(leftovers(dir)).toEqual([]);
    });
  }

  test("10,000 small files: auto picks zip, the copy is exact, and timers keep running meanwhile", async () => {
    const files: Record<string, number> = {};
    for (let i = 0; i < 10_000; i++) files[`d${i % 100}/f${i}`] = (i * 37) % 4096;
    writeTree(abs("src"), files);
    const before = snapshot(abs("src"));
    let ticks = 0;
    const timer = setInterval(() => ticks++, 1);
    const events: EngineEvent[] = [];
    const r = await run({ sourcePath: "src", targetPath: "dst", mode: "copy" }, { onEvent: (e) => events.push(e) });
    clearInterval(timer);
    expect(r.strategy).toBe("zip");
    expect(r.files).toBe(10_000);
    expect(events.find((e) => e.kind === "strategy_chosen")?.data?.strategy).toBe("zip");
    expect(treeDiff(snapshot(abs("dst")), before)).toEqual([]);
    expect(ticks).toBeGreaterThan(0); // the event loop was not held for the whole transfer
  });

  test("2,000 small files direct (two threads share them): exact copy, every hash checked, a move removes all", async () => {
    const files: Record<string, number> = {};
    for (let i = 0; i < 2000; i++) files[`d${i % 20}/f${i}`] = 1 + ((i * 37) % 4096);
    writeTree(abs("src"), files);
    const before = snapshot(abs("src"));
    let progressed = 0;
    const r = await run({ sourcePath: "src", targetPath: "dst", mode: "move", strategy: "direct", verify: "checksum" }, { onProgress: (p) => (progressed = Math.max(progressed, p.phase === "transfer" ? p.filesDone : 0)) });
    // A hash missing from either thread would fail the verification ("missing at the source").
    expect(r.verified).toMatchObject({ mode: "checksum", files: 2000 });
    expect(treeDiff(snapshot(abs("dst")), before)).toEqual([]);
    expect(fs.existsSync(abs("src"))).toBe(false);
    expect(progressed).toBe(2000); // both threads' files counted
  });

  test("small files vanishing mid-copy fail the transfer whichever thread meets them; nothing is left behind", async () => {
    const files: Record<string, number> = {};
    for (let i = 0; i < 2000; i++) files[`d${i % 20}/f${i}`] = 100;
    writeTree(abs("src"), files);
    const f = await failure(
      { sourcePath: "src", targetPath: "dst", mode: "move", strategy: "direct" },
      // Once the plan is made, most files disappear: the copy meets them on both threads.
      { onEvent: (e) => { if (e.kind === "strategy_chosen") for (let i = 300; i < 2000; i++) fs.rmSync(abs(`src/d${i % 20}/f${i}`)); } },
    );
    expect(["SOURCE_CHANGED", "SOURCE_NOT_FOUND", "IO_ERROR"]).toContain(f.code);
    expect(fs.existsSync(abs("dst"))).toBe(false);
    expect(leftovers(dir)).toEqual([]);
    expect(fs.readdirSync(abs("src/d0")).length).toBe(15); // the survivors are still there (a move deletes only after commit)
  });

  test("zip round-trips random binary data that contains zip signatures, and old mtimes", async () => {
    const sigs = [0x04034b50, 0x08074b50, 0x02014b50, 0x06054b50];
    const files: Record<string, Uint8Array> = {};
    for (let i = 0; i < 20; i++) {
      const data = randomBytes(1000 + i * 5000);
      const view = new DataView(data.buffer);
      for (let off = 7; off + 4 <= data.length; off += 997) view.setUint32(off, sigs[off % 4] as number, true);
      files[`bin/${i}.dat`] = data;
    }
    writeTree(abs("src"), files);
    fs.utimesSync(abs("src/bin/3.dat"), new Date(0), new Date(0));
    const before = snapshot(abs("src"));
    const r = await run({ sourcePath: "src", targetPath: "dst", mode: "copy", strategy: "zip" });
    expect(r.strategy).toBe("zip");
    expect(treeDiff(snapshot(abs("dst")), before)).toEqual([]);
  });

  test("zip splits into several archives over the entry limit and sends oversized files directly", async () => {
    const files: Record<string, number> = { "big.bin": 300_000 };
    for (let i = 0; i < 30; i++) files[`s/${i}`] = 100 + i;
    writeTree(abs("src"), files);
    const before = snapshot(abs("src"));
    const events: EngineEvent[] = [];
    const r = await run({ sourcePath: "src", targetPath: "dst", mode: "copy", strategy: "zip" }, { options: { zipMaxEntries: 7, zipMaxEntryBytes: 200_000 }, onEvent: (e) => events.push(e) });
    expect(r).toMatchObject({ strategy: "zip", archives: 5, directFiles: 1, files: 31 });
    expect(events.filter((e) => e.kind === "archive_done").length).toBe(5);
    expect(treeDiff(snapshot(abs("dst")), before)).toEqual([]);
    expect(leftovers(dir)).toEqual([]);
  });
});

describe("progress of a big local file", () => {
  // The kernel copies it in 8 MiB chunks, each reported as it lands: the bar moves during the copy
  // (it once showed 0 B until the end, then 100 %), and a cancel stops it within a chunk.
  test("bytes are reported chunk by chunk while one big file copies, in order, never past the total", async () => {
    writeTree(abs("src"), { "clip.mov": 64 << 20 });
    const seen: number[] = [];
    const r = await run({ sourcePath: "src", targetPath: "dst", mode: "copy", strategy: "direct" }, {
      options: { progressIntervalMs: 0 },
      onProgress: (p) => {
        if (p.phase === "transfer") seen.push(p.bytesDone);
      },
    });
    expect(r.bytes).toBe(64 << 20);
    const between = seen.filter((b) => b > 0 && b < 64 << 20);
    expect(new Set(between).size).toBeGreaterThanOrEqual(4); // 8 chunks: most of them seen before the end
    expect(seen).toEqual([...seen].sort((a, b) => a - b));
    expect(Math.max(...seen)).toBe(64 << 20);
  });

  test("a cancel during a big file's copy stops it within a chunk and leaves nothing", async () => {
    writeTree(abs("src"), { "clip.mov": 96 << 20 });
    const before = snapshot(abs("src"));
    const abort = new AbortController();
    let last = 0;
    const f = await failure({ sourcePath: "src", targetPath: "dst", mode: "move", strategy: "direct" }, {
      signal: abort.signal,
      options: { progressIntervalMs: 0 },
      onProgress: (p) => {
        if (p.phase !== "transfer") return;
        last = p.bytesDone;
        if (p.bytesDone > 0) abort.abort();
      },
    });
    expect(f.code).toBe("CANCELLED");
    expect(last).toBeLessThan(96 << 20);
    expect(leftovers(dir)).toEqual([]);
    expect(fs.existsSync(abs("dst"))).toBe(false);
    expect(treeDiff(snapshot(abs("src")), before)).toEqual([]);
  });
});

describe("move", () => {
  test("direct move deletes the source only after the copy is committed", async () => {
    sampleTree(abs("src"));
    const before = snapshot(abs("src"));
    const seen: string[] = [];
    const r = await run(
      { sourcePath: "src", targetPath: "dst", mode: "move", strategy: "direct" },
      { onEvent: (e) => seen.push(`${e.kind}:${fs.existsSync(abs("src")) ? "src" : "-"}:${fs.existsSync(abs("dst")) ? "dst" : "-"}`) },
    );
    expect(r.strategy).toBe("direct");
    expect(fs.existsSync(abs("src"))).toBe(false);
    expect(treeDiff(snapshot(abs("dst")), before)).toEqual([]);
    expect(seen).toContain("committed:src:dst");
    expect(seen.at(-1)).toBe("source_removed:-:dst");
  });

  test("auto move on one file system is an atomic rename", async () => {
    sampleTree(abs("src"));
    const before = snapshot(abs("src"));
    const r = await run({ sourcePath: "src", targetPath: "dst", mode: "move" });
    expect(r.strategy).toBe("rename");
    expect(fs.existsSync(abs("src"))).toBe(false);
    expect(treeDiff(snapshot(abs("dst")), before)).toEqual([]);
  });

  test("a retried move whose copy was committed only finishes removing the source (never re-copies over the target)", async () => {
    writeTree(abs("src"), { "a": 100, "b": 200, "c/d": 300, "c/e": 400 });
    const complete = snapshot(abs("src"));
    await run({ sourcePath: "src", targetPath: "dst", mode: "copy" });
    // The state a crash halfway through the source removal leaves: marker present, source half gone.
    fs.rmSync(abs("src/a"));
    fs.rmSync(abs("src/c/d"));
    fs.writeFileSync(abs(".ketter-job9.moved"), "{}");
    fs.writeFileSync(abs("src/b"), "edited since"); // differs from the committed copy: must be kept
    const r = await run({ id: "job9", sourcePath: "src", targetPath: "dst", mode: "move", strategy: "direct", overwrite: true });
    expect(r.strategy).toBe("resumed");
    expect(r.sourceKept).toEqual(["src/b", "src"]);
    expect(fs.readdirSync(abs("src"))).toEqual(["b"]);
    expect(treeDiff(snapshot(abs("dst")), complete)).toEqual([]);
    expect(leftovers(dir)).toEqual([]);
  });

  // A link that drops during the commit (the rename done, its answer lost), right before it, or
  // during the source removal: the attempt fails retryably (every later call on that connection
  // fails too), and the retry with the same id, on a new connection, must finish the move.
  for (const when of ["the commit's answer is lost", "the marker cannot be written", "the source removal fails"] as const) {
    test(`a connection lost when ${when}: the retry finishes the move, nothing copied twice or lost`, async () => {
      writeTree(abs("src"), { "a": 100, "c/d": 300, "c/e": 400 });
      fs.writeFileSync(abs("dst"), "the old target");
      const complete = snapshot(abs("src"));
      const lost = (): TransferError => new TransferError("CONNECTION_LOST", "connection lost; it will be retried");
      /** A local endpoint whose connection drops at `trigger` (after or instead of that call) and stays down. */
      const dropping = (trigger: (op: string, p: string) => "after" | "instead" | null): Endpoint & { down: boolean } => {
        const inner = localEndpoint(dir);
        const state = { down: false };
        const guard = async <T>(op: string, p: string, call: () => Promise<T>): Promise<T> => {
          if (state.down) throw lost();
          const t = trigger(op, p);
          if (t === "instead") state.down = true;
          if (state.down) throw lost();
          const v = await call();
          if (t === "after") {
            state.down = true;
            throw lost();
          }
          return v;
        };
        const ep = withOverrides(inner, {
          stat: (p: string, opts?: OpOptions): Promise<Entry | null> => guard("stat", p, () => inner.stat(p, opts)),
          rename: (from: string, to: string, opts?: OpOptions & { replace?: boolean }): Promise<void> => guard("rename", to, () => inner.rename(from, to, opts)),
          openWrite: (p: string, opts?: OpOptions & { mode?: number; size?: number }): Promise<FileWriter> => guard("openWrite", p, () => inner.openWrite(p, opts)),
          remove: (p: string, opts?: OpOptions & { recursive?: boolean }): Promise<void> => guard("remove", p, () => inner.remove(p, opts)),
        });
        return Object.defineProperty(ep, "down", { get: () => state.down }) as Endpoint & { down: boolean };
      };
      const target = dropping((op, p) =>
        when === "the commit's answer is lost" && op === "rename" && p === "dst" ? "after" : when === "the marker cannot be written" && op === "openWrite" && p.endsWith(".moved") ? "instead" : null);
      const source = dropping((op, p) => (when === "the source removal fails" && op === "remove" && p === "src/c/d" ? "instead" : null));
      const spec: TransferSpecInput = { id: "job7", sourcePath: "src", targetPath: "dst", mode: "move", overwrite: true, strategy: "direct" };
      const f = await failure(spec, { source, target });
      expect(f).toMatchObject({ code: "CONNECTION_LOST", retryable: true });
      expect(target.down || source.down).toBe(true);
      const r = await run(spec, { source: localEndpoint(dir), target: localEndpoint(dir) });
      expect(r.strategy).toBe(when === "the marker cannot be written" ? "direct" : "resumed");
      expect(fs.existsSync(abs("src"))).toBe(false);
      expect(treeDiff(snapshot(abs("dst")), complete)).toEqual([]);
      expect(leftovers(dir)).toEqual([]);
    });
  }

  test("a file changed after being copied is kept at the source", async () => {
    writeTree(abs("src"), { "a": "aaa", "b": "bbb" });
    const r = await run(
      { sourcePath: "src", targetPath: "dst", mode: "move", strategy: "direct" },
      { onEvent: (e) => e.kind === "committed" && fs.writeFileSync(abs("src/b"), "changed later") },
    );
    expect(r.sourceKept).toEqual(["src/b", "src"]);
    expect(fs.readFileSync(abs("src/b"), "utf8")).toBe("changed later");
    expect(fs.existsSync(abs("src/a"))).toBe(false);
    expect(fs.readFileSync(abs("dst/b"), "utf8")).toBe("bbb");
  });
});

describe("a rename's commit marker", () => {
  test("a process that dies between the rename and its record: the retry finishes as resumed", async () => {
    writeTree(abs("src"), { "a": 10, "b/c": 20 });
    const before = snapshot(abs("src"));
    const spec: TransferSpecInput = { id: "rn1", sourcePath: "src", targetPath: "dst", mode: "move" };
    const died = await run(spec, { hooks: { committed: async () => { throw new Error("killed"); } } }).catch((e: unknown) => e);
    expect(died).toBeInstanceOf(Error);
    expect(fs.existsSync(abs(".ketter-rn1.moved"))).toBe(true); // the rename happened, its record did not
    const r = await run(spec);
    expect(r.strategy).toBe("resumed");
    expect(treeDiff(snapshot(abs("dst")), before)).toEqual([]);
    expect(leftovers(dir)).toEqual([]);
  });

  test("a marker whose rename never happened does not pass the old target off as the copy", async () => {
    writeTree(abs("src"), { "a": 10 });
    writeTree(abs("dst"), { "old": 5 });
    const before = snapshot(abs("src"));
    const spec: TransferSpecInput = { id: "rn2", sourcePath: "src", targetPath: "dst", mode: "move", overwrite: true };
    // The lease is lost at the commit fence: the marker is written, nothing is renamed.
    await run(spec, { hooks: { beforeStep: async () => { throw new TransferError("CANCELLED", "lease lost"); } } }).catch(() => undefined);
    const r = await run(spec);
    expect(r.strategy).toBe("rename");
    expect(treeDiff(snapshot(abs("dst")), before)).toEqual([]);
    expect(fs.existsSync(abs("src"))).toBe(false);
    expect(leftovers(dir)).toEqual([]);
  });
});

describe("existing target", () => {
  test("is refused by default and left untouched", async () => {
    writeTree(dir, { "src/x": "new", "dst/y": "old" });
    const before = snapshot(abs("dst"));
    const f = await failure({ sourcePath: "src", targetPath: "dst", mode: "copy" });
    expect(f).toMatchObject({ code: "TARGET_EXISTS", retryable: false });
    expect(f.message).toContain("overwrite");
    expect(treeDiff(snapshot(abs("dst")), before)).toEqual([]);
    expect(leftovers(dir)).toEqual([]);
  });

  test("is replaced as a whole with overwrite (folder over folder, file over file, folder over file)", async () => {
    writeTree(dir, { "src/x": "new", "dst/y": "old", "f1": "one", "f2": "two", "file-target": "was a file" });
    await run({ sourcePath: "src", targetPath: "dst", mode: "copy", overwrite: true });
    expect(treeDiff(snapshot(abs("dst")), snapshot(abs("src")))).toEqual([]);
    await run({ sourcePath: "f1", targetPath: "f2", mode: "copy", overwrite: true });
    expect(fs.readFileSync(abs("f2"), "utf8")).toBe("one");
    await run({ sourcePath: "src", targetPath: "file-target", mode: "copy", overwrite: true, strategy: "zip" });
    expect(treeDiff(snapshot(abs("file-target")), snapshot(abs("src")))).toEqual([]);
    expect(leftovers(dir)).toEqual([]);
  });

  test("a retry finds a crashed attempt's leftovers by id: stale staging removed, a target mid-swap restored", async () => {
    writeTree(dir, { "src/x": "new", ".ketter-job7.partial/junk": "half", ".ketter-job7.zips/0.zip": "torn", ".ketter-job7.old/y": "previous target" });
    const events: EngineEvent[] = [];
    const f = await failure({ id: "job7", sourcePath: "src", targetPath: "dst", mode: "copy" }, { onEvent: (e) => events.push(e) });
    // The old target was put back, so without overwrite it is now (correctly) in the way.
    expect(f.code).toBe("TARGET_EXISTS");
    expect(fs.readFileSync(abs("dst/y"), "utf8")).toBe("previous target");
    expect(events[0]?.kind).toBe("staging_recovered");
    expect(leftovers(dir)).toEqual([]);
    await run({ id: "job7", sourcePath: "src", targetPath: "dst", mode: "copy", overwrite: true });
    expect(fs.readdirSync(abs("dst"))).toEqual(["x"]);
  });
});

describe("failures leave no trace", () => {
  for (const strategy of ["direct", "zip"] as const) {
    test(`cancel mid-transfer (${strategy})`, async () => {
      const files: Record<string, number> = {};
      for (let i = 0; i < 300; i++) files[`d${i % 5}/f${i}`] = 2000;
      writeTree(abs("src"), files);
      const before = snapshot(abs("src"));
      const ac = new AbortController();
      const phases: Progress[] = [];
      const f = await failure(
        { sourcePath: "src", targetPath: "dst", mode: "move", strategy },
        {
          signal: ac.signal,
          options: { progressIntervalMs: 0 },
          onProgress: (p) => {
            phases.push(p);
            if (p.phase === "transfer" && p.filesDone >= 50) ac.abort();
          },
        },
      );
      expect(f.code).toBe("CANCELLED");
      expect(phases.some((p) => p.phase === "transfer" && p.filesDone >= 50)).toBe(true);
      expect(phases.some((p) => p.phase === "verify")).toBe(false);
      expect(fs.existsSync(abs("dst"))).toBe(false);
      expect(leftovers(dir)).toEqual([]);
      expect(treeDiff(snapshot(abs("src")), before)).toEqual([]);
    });
  }

  for (const [strategy, verify] of [["direct", "checksum"], ["zip", "checksum"], ["direct", "size"]] as const) {
    test(`a destination file corrupted after writing is caught (${strategy}, ${verify})`, async () => {
      writeTree(abs("src"), { "a/one": 5000, "a/two": 5000, "b": 100 });
      const before = snapshot(abs("src"));
      let corrupted = "";
      const f = await failure(
        { sourcePath: "src", targetPath: "dst", mode: "move", strategy, verify },
        {
          onProgress: (p) => {
            if (p.phase !== "verify" || corrupted) return;
            const staging = leftovers(dir).find((n) => n.endsWith(".partial")) as string;
            corrupted = path.join(dir, staging, "a/two");
            const data = fs.readFileSync(corrupted);
            if (verify === "size") fs.writeFileSync(corrupted, data.subarray(1));
            else {
              data[100] = (data[100] as number) ^ 0x01;
              fs.writeFileSync(corrupted, data);
            }
          },
        },
      );
      expect(corrupted).not.toBe("");
      expect(f).toMatchObject({ code: "VERIFY_FAILED", retryable: true });
      expect(f.message).toContain("a/two");
      expect(fs.existsSync(abs("dst"))).toBe(false);
      expect(leftovers(dir)).toEqual([]);
      expect(treeDiff(snapshot(abs("src")), before)).toEqual([]);
    });
  }

  test("one flipped byte deep inside a large file is caught by checksum (copy_file_range path, hashed in 256 KiB reads)", async () => {
    const size = 6 * 1024 * 1024 + 777; // several hash reads, not a multiple of one
    writeTree(abs("src"), { "big": size, "small": 10 });
    let corrupted = "";
    const f = await failure(
      { sourcePath: "src", targetPath: "dst", mode: "copy", strategy: "direct", verify: "checksum" },
      {
        onProgress: (p) => {
          if (p.phase !== "verify" || corrupted) return;
          corrupted = path.join(dir, leftovers(dir).find((n) => n.endsWith(".partial")) as string, "big");
          const fd = fs.openSync(corrupted, "r+");
          const at = size - 300; // in the last, short read
          const b = Buffer.alloc(1);
          fs.readSync(fd, b, 0, 1, at);
          b[0] = (b[0] as number) ^ 0x80;
          fs.writeSync(fd, b, 0, 1, at);
          fs.closeSync(fd);
        },
      },
    );
    expect(corrupted).not.toBe("");
    expect(f).toMatchObject({ code: "VERIFY_FAILED", retryable: true });
    expect(f.message).toContain("big");
    expect(fs.existsSync(abs("dst"))).toBe(false);
    expect(leftovers(dir)).toEqual([]);
  });

  test("cancel while a large file is being copied and hashed leaves no staging", async () => {
    writeTree(abs("src"), { "a": 24 * 1024 * 1024, "b": 24 * 1024 * 1024, "c": 24 * 1024 * 1024 });
    const before = snapshot(abs("src"));
    const ac = new AbortController();
    const f = await failure(
      { sourcePath: "src", targetPath: "dst", mode: "move", strategy: "direct", verify: "checksum" },
      {
        signal: ac.signal,
        options: { progressIntervalMs: 0 },
        // Aborted once the first file is copied: the second is being copied and hashed, the third not started.
        onProgress: (p) => p.phase === "transfer" && p.bytesDone > 0 && ac.abort(),
      },
    );
    expect(f.code).toBe("CANCELLED");
    expect(fs.existsSync(abs("dst"))).toBe(false);
    expect(leftovers(dir)).toEqual([]);
    expect(treeDiff(snapshot(abs("src")), before)).toEqual([]);
  });

  test("a file changed between scan and copy is SOURCE_CHANGED (retryable)", async () => {
    writeTree(abs("src"), { "a": 1000, "b": 1000 });
    const f = await failure({ sourcePath: "src", targetPath: "dst", mode: "move", strategy: "direct" }, { onEvent: (e) => e.kind === "strategy_chosen" && fs.appendFileSync(abs("src/b"), "more") });
    expect(f).toMatchObject({ code: "SOURCE_CHANGED", retryable: true });
    expect(fs.existsSync(abs("dst"))).toBe(false);
    expect(leftovers(dir)).toEqual([]);
    expect(fs.statSync(abs("src/b")).size).toBe(1004);
  });

  for (const [strategy, opts] of [["direct", { wholeFileBytes: 1000 }], ["zip", { wholeFileBytes: 1000, zipMaxEntryBytes: 64 << 20 }]] as const) {
    test(`a file growing while it is read is never reported as copied (${strategy})`, async () => {
      writeTree(abs("src"), { "big": 9 * 1024 * 1024 });
      let grown = false;
      const f = await failure(
        { sourcePath: "src", targetPath: "dst", mode: "copy", strategy },
        {
          options: { ...opts, progressIntervalMs: 0 },
          onProgress: (p) => {
            if (p.phase === "transfer" && p.bytesDone > 0 && !grown) {
              grown = true;
              fs.appendFileSync(abs("src/big"), randomBytes(5 * 1024 * 1024));
            }
          },
        },
      );
      expect(grown).toBe(true);
      expect(f.code).toBe("SOURCE_CHANGED");
      expect(fs.existsSync(abs("dst"))).toBe(false);
      expect(leftovers(dir)).toEqual([]);
    });
  }
});

describe("bad input", () => {
  beforeEach(() => writeTree(dir, { "src/x": "x", "file": "f", "other/": "" }));
  const cases: [string, TransferSpecInput, string][] = [
    ["missing source", { sourcePath: "nope", targetPath: "dst", mode: "copy" }, "SOURCE_NOT_FOUND"],
    ["source = target", { sourcePath: "src", targetPath: "src/", mode: "copy" }, "SAME_PATH"],
    ["target inside source", { sourcePath: "src", targetPath: "src/inner", mode: "copy" }, "TARGET_INSIDE_SOURCE"],
    ["source inside the target it would replace", { sourcePath: "src/x", targetPath: "src", mode: "copy", overwrite: true }, "SOURCE_INSIDE_TARGET"],
    ["target parent missing", { sourcePath: "src", targetPath: "no/such/dst", mode: "copy" }, "NOT_A_DIRECTORY"],
    ["path escaping the root", { sourcePath: "../etc", targetPath: "dst", mode: "copy" }, "PATH_ESCAPE"],
    ["unknown mode", { sourcePath: "src", targetPath: "dst", mode: "dup" as "copy" }, "INVALID_SPEC"],
    ["unknown field", { sourcePath: "src", targetPath: "dst", mode: "copy", speed: 3 } as TransferSpecInput, "INVALID_SPEC"],
    ["bad id", { id: "../x", sourcePath: "src", targetPath: "dst", mode: "copy" }, "INVALID_SPEC"],
  ];
  for (const [name, spec, code] of cases) {
    test(`${name} → ${code}`, async () => {
      const before = snapshot(dir);
      const f = await failure(spec);
      expect(f.code).toBe(code);
      expect(f.retryable).toBe(false);
      expect(treeDiff(snapshot(dir), before)).toEqual([]);
    });
  }

  test("a link pointing outside the source is refused before anything is written", async () => {
    fs.symlinkSync("/etc/hostname", abs("src/out"));
    const f = await failure({ sourcePath: "src", targetPath: "dst", mode: "move" });
    expect(f.code).toBe("PATH_ESCAPE");
    expect(f.message).toContain("out");
    expect(fs.existsSync(abs("dst"))).toBe(false);
    expect(fs.existsSync(abs("src/x"))).toBe(true);
  });

  test("the source is listed beside the target checks, but a failed check still decides", async () => {
    // Missing source and an existing target: the target's answer wins, as when the steps ran in turn.
    const f = await failure({ sourcePath: "nope", targetPath: "other", mode: "copy" });
    expect(f.code).toBe("TARGET_EXISTS");
    // A source too large to list before the check fails: the listing is stopped, not left running.
    // The walk holds after 20 entries until the check has failed, then may not go on.
    writeTree(dir, Object.fromEntries(Array.from({ length: 1000 }, (_, i) => [`big/d${i % 10}/f${i}`, "x"])));
    let walked = 0;
    let release = (): void => undefined;
    const gate = new Promise<void>((r) => (release = r));
    const counting = withOverrides(ep, {
      async *walk(p: string, opts?: OpOptions): AsyncIterable<Entry> {
        for await (const e of ep.walk(p, opts)) {
          if (++walked === 20) await gate;
          yield e;
        }
      },
    });
    const g = await failure({ sourcePath: "big", targetPath: "no/such/dst", mode: "copy" }, { source: counting });
    expect(g.code).toBe("NOT_A_DIRECTORY");
    release();
    for (let i = 0; i < 20; i++) await Bun.sleep(0); // turns for a walk that would go on
    expect(walked).toBeLessThanOrEqual(21); // one more entry at most, then the cancelled scan stops it
  });

  test("free space asked early is asked again before refusing (leftovers may have been removed meanwhile)", async () => {
    let asked = 0;
    const freed = withOverrides(ep, {
      async space(): Promise<SpaceInfo> {
        asked++;
        return asked === 1 ? { freeBytes: 1000, totalBytes: 1 << 30 } : { freeBytes: 2 ** 40, totalBytes: 2 ** 40 };
      },
    });
    const r = await run({ sourcePath: "src", targetPath: "dst", mode: "copy" }, { target: freed });
    expect(r.files).toBe(1);
    expect(asked).toBe(2);
    expect(fs.readFileSync(abs("dst/x"), "utf8")).toBe("x");
  });

  test("not enough free space → NO_SPACE before anything is written", async () => {
    const tiny = withOverrides(ep, { space: async (): Promise<SpaceInfo> => ({ freeBytes: 1000, totalBytes: 1 << 30 }) });
    const f = await failure({ sourcePath: "src", targetPath: "dst", mode: "copy" }, { target: tiny });
    expect(f.code).toBe("NO_SPACE");
    expect(f.message).toContain("free");
    expect(fs.existsSync(abs("dst"))).toBe(false);
    expect(leftovers(dir)).toEqual([]);
  });

  // Needs root to mount a 1 MiB tmpfs: a real ENOSPC, with the free-space check both honest and fooled.
  test.skipIf(process.getuid?.() !== 0)("a real full disk: NO_SPACE up front, and ENOSPC mid-write leaves no staging", async () => {
    const disk = abs("disk");
    fs.mkdirSync(disk);
    const mounted = Bun.spawnSync(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", disk]);
    expect(mounted.exitCode).toBe(0);
    try {
      writeTree(abs("src"), { "a": 600_000, "b": 600_000 });
      const before = snapshot(abs("src"));
      const diskEp = localEndpoint(disk);
      const honest = await failure({ sourcePath: "src", targetPath: "dst", mode: "move" }, { target: diskEp });
      expect(honest.code).toBe("NO_SPACE");
      const optimistic = optimisticDisk(disk);
      for (const strategy of ["direct", "zip"] as const) {
        const f = await failure({ sourcePath: "src", targetPath: "dst", mode: "move", strategy }, { target: optimistic });
        expect(f.code).toBe("NO_SPACE");
        expect(fs.readdirSync(disk)).toEqual([]);
      }
      expect(treeDiff(snapshot(abs("src")), before)).toEqual([]);
      await Promise.all([diskEp.close(), optimistic.close()]); // they hold the mount's root open
    } finally {
      Bun.spawnSync(["umount", disk]);
    }
  });

  test.skipIf(process.getuid?.() !== 0)("a large file that cannot fit fails with NO_SPACE at its reservation (before copying), no staging left", async () => {
    const disk = abs("disk");
    fs.mkdirSync(disk);
    expect(Bun.spawnSync(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", disk]).exitCode).toBe(0);
    try {
      writeTree(abs("src"), { "big": 3 * 1024 * 1024 });
      const target = optimisticDisk(disk);
      const f = await failure({ sourcePath: "src", targetPath: "dst", mode: "copy", strategy: "direct" }, { target });
      await target.close(); // it holds the mount's root open
      expect(f.code).toBe("NO_SPACE");
      expect(f.message).toContain("reserve space for");
      expect(fs.readdirSync(disk)).toEqual([]);
    } finally {
      Bun.spawnSync(["umount", disk]);
    }
  });

  test.skipIf(process.getuid?.() === 0)("an unreadable file → PERMISSION_DENIED, nothing committed", async () => {
    fs.chmodSync(abs("src/x"), 0);
    const f = await failure({ sourcePath: "src", targetPath: "dst", mode: "move" });
    expect(f.code).toBe("PERMISSION_DENIED");
    fs.chmodSync(abs("src/x"), 0o644);
    expect(fs.existsSync(abs("dst"))).toBe(false);
    expect(leftovers(dir)).toEqual([]);
  });
});

/** A local disk that claims endless free space (the engine's early check passes; the kernel's ENOSPC decides). */
function optimisticDisk(root: string): Endpoint {
  return withOverrides(localEndpoint(root), { space: async (): Promise<SpaceInfo> => ({ freeBytes: 2 ** 40, totalBytes: 2 ** 40 }) }); // not 1 << 40: that is 256 in 32-bit JS shifts
}

/** An Endpoint with none of the local fast paths, with chosen capabilities: the SFTP-shaped path. */
class GenericEndpoint implements Endpoint {
  readonly kind = "sftp" as const;
  readonly label: string;
  unzip?: (archive: string, into: string, opts?: OpOptions) => Promise<void>;
  constructor(
    private readonly inner: Endpoint,
    private readonly caps: Capabilities,
  ) {
    this.label = `generic:${inner.label}`;
    if (caps.unzip && inner.unzip) this.unzip = inner.unzip.bind(inner);
  }
  stat(p: string, o?: OpOptions): Promise<Entry | null> { return this.inner.stat(p, o); }
  walk(p: string, o?: OpOptions): AsyncIterable<Entry> { return this.inner.walk(p, o); }
  openRead(p: string, o?: OpOptions & { start?: number }): AsyncIterable<Uint8Array> { return this.inner.openRead(p, o); }
  openWrite(p: string, o?: OpOptions & { mode?: number; size?: number }): Promise<FileWriter> { return this.inner.openWrite(p, o); }
  mkdir(p: string, o?: OpOptions & { mode?: number; recursive?: boolean }): Promise<void> { return this.inner.mkdir(p, o); }
  symlink(t: string, p: string, o?: OpOptions): Promise<void> { return this.inner.symlink(t, p, o); }
  setAttributes(p: string, a: { mtimeMs?: number; mode?: number }, o?: OpOptions): Promise<void> { return this.inner.setAttributes(p, a, o); }
  rename(f: string, t: string, o?: OpOptions & { replace?: boolean }): Promise<void> { return this.inner.rename(f, t, o); }
  remove(p: string, o?: OpOptions & { recursive?: boolean }): Promise<void> { return this.inner.remove(p, o); }
  space(p: string, o?: OpOptions): Promise<SpaceInfo> { return this.inner.space(p, o); }
  async capabilities(): Promise<Capabilities> { return this.caps; }
  hashFiles(p: readonly string[], a: HashAlgorithm, o?: OpOptions): Promise<Map<string, string>> { return this.inner.hashFiles(p, a, o); }
  locate(p: string, o?: OpOptions): Promise<Location> { return this.inner.locate(p, o); }
  close(): Promise<void> { return this.inner.close(); }
}

describe("generic endpoints (no local fast path)", () => {
  test("a file the source cannot read → PERMISSION_DENIED, nothing committed, source intact", async () => {
    writeTree(abs("src"), { "ok": 10, "secret": 10 });
    const before = snapshot(abs("src"));
    const source = new GenericEndpoint(ep, { hashes: ["crc32"], unzip: false, packZip: false });
    // Root (these tests' usual user) reads anything, so the EACCES comes from the endpoint here.
    source.openRead = (p, o) => {
      if (p.endsWith("secret")) throw Object.assign(new Error("EACCES: permission denied"), { code: "EACCES" });
      return ep.openRead(p, o);
    };
    const f = await failure({ sourcePath: "src", targetPath: "dst", mode: "move" }, { source });
    expect(f).toMatchObject({ code: "PERMISSION_DENIED", retryable: false });
    expect(fs.existsSync(abs("dst"))).toBe(false);
    expect(leftovers(dir)).toEqual([]);
    expect(treeDiff(snapshot(abs("src")), before)).toEqual([]);
  });


  test("hash = fastest common one; zip used when the target can unpack", async () => {
    sampleTree(abs("src"));
    const before = snapshot(abs("src"));
    const source = new GenericEndpoint(ep, { hashes: ["md5", "sha256", "sha1"], unzip: false, packZip: false });
    const target = new GenericEndpoint(ep, { hashes: ["sha256", "md5"], unzip: true, packZip: false });
    const r = await run({ sourcePath: "src", targetPath: "dst", mode: "copy", strategy: "zip" }, { source, target, options: { wholeFileBytes: 0 } });
    expect(r).toMatchObject({ strategy: "zip", verified: { algorithm: "sha256", files: 5 } });
    expect(treeDiff(snapshot(abs("dst")), before)).toEqual([]);
  });

  test("falls back to direct (with an event) when the target cannot unpack, and moves", async () => {
    sampleTree(abs("src"));
    const before = snapshot(abs("src"));
    const target = new GenericEndpoint(ep, { hashes: [], unzip: false, packZip: false });
    const events: EngineEvent[] = [];
    const r = await run({ sourcePath: "src", targetPath: "dst", mode: "move", strategy: "zip" }, { target, onEvent: (e) => events.push(e) });
    expect(r.strategy).toBe("direct");
    expect(r.verified.algorithm).toBe("xxh3"); // no common hash: read back and hashed here
    expect(events.filter((e) => e.kind === "fallback").length).toBe(2);
    expect(treeDiff(snapshot(abs("dst")), before)).toEqual([]);
    expect(fs.existsSync(abs("src"))).toBe(false);
  });
});
