/**
 * Per-file truth in the engine: sync levels update an existing target in place (only what differs
 * travels, each file renamed into place once verified), mirror removes what the source lacks, and
 * skipFileErrors lets one bad file fail alone while the rest completes — then a retry sends only it.
 */
import { afterEach, beforeEach, describe, expect, test } from "bun:test";
import fs from "node:fs";
import path from "node:path";
import type { Endpoint, FileWriter, OpOptions } from "./endpoints/endpoint.ts";
import { localEndpoint, withOverrides } from "./endpoints/testing.ts";
import { isTransferError, transfer, type TransferResult, type TransferSpecInput } from "./index.ts";
import type { FileOutcome } from "./spec.ts";
import type { TransferContext } from "./transfer.ts";
import { leftovers, snapshot, tempDir, treeDiff, writeTree } from "./test_tree.ts";

let dir: string;
let cleanup: () => Promise<void>;
let ep: Endpoint;
beforeEach(async () => {
  ({ dir, cleanup } = await tempDir("ketter-sync-"));
  ep = localEndpoint(dir);
});
afterEach(() => cleanup());

const abs = (rel: string): string => path.join(dir, rel);

async function run(spec: Partial<TransferSpecInput>, ctx: Partial<TransferContext> = {}): Promise<TransferResult & { outcomes: FileOutcome[] }> {
  const outcomes: FileOutcome[] = [];
  const r = await transfer({ sourcePath: "src", targetPath: "dst", mode: "copy", ...spec }, { source: ep, target: ep, onFiles: (b) => outcomes.push(...b), ...ctx });
  return { ...r, outcomes };
}

/** 50 files in 5 folders, copied once to dst (so dst exists and matches). */
async function synced(): Promise<void> {
  const files: Record<string, string> = {};
  for (let i = 0; i < 50; i++) files[`src/d${i % 5}/f${i}`] = `file ${i} `.repeat(20 + i);
  writeTree(dir, files);
  await run({});
}

function touchBack(rel: string, content: string): void {
  const st = fs.statSync(abs(rel));
  fs.writeFileSync(abs(rel), content);
  fs.utimesSync(abs(rel), st.atime, st.mtime);
}

describe("sync levels", () => {
  test("an unchanged re-run sends nothing at any level, and the target is untouched", async () => {
    await synced();
    const before = snapshot(abs("dst"));
    for (const sync of ["exists", "size", "mtime", "checksum"] as const) {
      const r = await run({ sync });
      expect(r.fileCounts).toEqual({ skipped: 50, verified: 0, failed: 0 });
      expect(r.outcomes.filter((o) => o.state === "skipped")).toHaveLength(50);
      expect(treeDiff(snapshot(abs("dst")), before)).toEqual([]);
    }
    expect(leftovers(dir)).toEqual([]);
  });

  test("each level catches what it should: size, mtime, and content with size and mtime kept (checksum only)", async () => {
    await synced();
    fs.writeFileSync(abs("src/d0/f0"), "a new size");                 // size differs
    fs.utimesSync(abs("src/d1/f1"), new Date(), new Date(2020, 1, 1)); // only the mtime differs
    const same = fs.readFileSync(abs("src/d2/f2"), "utf8");
    touchBack("src/d2/f2", same.replace("file", "FILE"));               // content differs, size and mtime kept
    const sent = async (sync: "exists" | "size" | "mtime" | "checksum"): Promise<string[]> => (await run({ sync })).outcomes.filter((o) => o.state === "verified").map((o) => o.path).sort();
    expect(await sent("exists")).toEqual([]);
    expect(await sent("size")).toEqual(["d0/f0"]);
    expect(await sent("mtime")).toEqual(["d1/f1"]); // d0/f0 already sent by the size run
    expect(await sent("checksum")).toEqual(["d2/f2"]);
    expect(treeDiff(snapshot(abs("dst")), snapshot(abs("src")))).toEqual([]);
  });

  test("new files and folders arrive, target-only files stay (no mirror), every sent file is renamed into place", async () => {
    await synced();
    writeTree(dir, { "src/new/deep/n1": "n1", "src/d0/added": "added", "dst/only-here": "keep me" });
    const r = await run({ sync: "mtime", strategy: "zip" });
    expect(r.fileCounts.verified).toBe(2);
    expect(r.archives).toBe(1); // the archive carries the two files that travel, nothing else
    expect(fs.readFileSync(abs("dst/new/deep/n1"), "utf8")).toBe("n1");
    expect(fs.readFileSync(abs("dst/only-here"), "utf8")).toBe("keep me");
    expect(leftovers(dir)).toEqual([]);
  });

  test("mirror removes what the source lacks, after the rest is verified", async () => {
    await synced();
    writeTree(dir, { "dst/only-here": "x", "dst/extra/deep/file": "y", "dst/d1/stray": "z" });
    const r = await run({ sync: "size", mirror: true });
    expect(r.mirrored).toBe(3);
    expect(treeDiff(snapshot(abs("dst")), snapshot(abs("src")))).toEqual([]);
  });

  test("a sync onto an existing target of another kind, or with a folder where a file is, is refused before anything is written", async () => {
    await synced();
    fs.rmSync(abs("dst/d3/f3"));
    fs.mkdirSync(abs("dst/d3/f3"));
    const before = snapshot(abs("dst"));
    await expect(run({ sync: "mtime" })).rejects.toMatchObject({ code: "TARGET_EXISTS" });
    expect(treeDiff(snapshot(abs("dst")), before)).toEqual([]);
    writeTree(dir, { "file-target": "I am a file" });
    await expect(run({ sync: "mtime", targetPath: "file-target" })).rejects.toMatchObject({ code: "TARGET_EXISTS" });
    expect(leftovers(dir)).toEqual([]);
  });

  test("a merge that dies half way leaves every target file old or new; the retry finishes the rest", async () => {
    await synced();
    const old = snapshot(abs("dst"));
    for (let i = 0; i < 50; i += 2) fs.writeFileSync(abs(`src/d${i % 5}/f${i}`), `changed ${i}`);
    const fresh = snapshot(abs("src"));
    let renames = 0;
    const dying = withOverrides(ep, {
      rename: async (from: string, to: string, o?: OpOptions & { replace?: boolean }): Promise<void> => {
        if (to.startsWith("dst/") && ++renames > 10) throw Object.assign(new Error("the process died"), { code: "EIO" });
        return ep.rename(from, to, o);
      },
    });
    const f = await run({ sync: "mtime", id: "merge1" }, { target: dying }).catch((e: unknown) => e);
    expect(isTransferError(f)).toBe(true);
    const mid = snapshot(abs("dst"));
    for (const [p, s] of Object.entries(mid)) {
      if (s.desc.startsWith("dir")) continue;
      expect([old[p]?.desc, fresh[p]?.desc]).toContain(s.desc); // never torn, never a third version
    }
    const again = await run({ sync: "mtime", id: "merge1" });
    expect(again.fileCounts.verified).toBe(15); // 25 changed, 10 landed before the fault
    expect(treeDiff(snapshot(abs("dst")), fresh)).toEqual([]);
    expect(leftovers(dir)).toEqual([]);
  });

  test("a move with sync removes only sources proven at the target: sent, or equal by content", async () => {
    await synced();
    fs.writeFileSync(abs("src/d0/f0"), "changed");
    const mtimeOnly = await run({ sync: "mtime", mode: "move" });
    // f0 was sent; the others were skipped on size and mtime alone, which proves nothing: kept.
    expect(fs.existsSync(abs("src/d0/f0"))).toBe(false);
    expect(fs.existsSync(abs("src/d1/f1"))).toBe(true);
    expect(mtimeOnly.sourceKept?.filter((p) => /\/f\d+$/.test(p))).toHaveLength(49);
    const byContent = await run({ sync: "checksum", mode: "move" });
    expect(byContent.fileCounts).toMatchObject({ skipped: 49, verified: 0 });
    expect(fs.existsSync(abs("src"))).toBe(false); // all 49 proven equal by content, then the folders
  });
});

describe("skipFileErrors: partial success, then a retry of only the failed files", () => {
  test("a file changed while copied fails alone; the rest is verified and committed; the retry sends only it", async () => {
    writeTree(dir, Object.fromEntries(Array.from({ length: 40 }, (_, i) => [`src/f${String(i).padStart(2, "0")}`, `content ${i}`])));
    let touched = false;
    const r = await run({ skipFileErrors: true, strategy: "direct" }, {
      options: { progressIntervalMs: 0 },
      onProgress: (p) => {
        if (touched || p.phase !== "plan") return;
        touched = true;
        touchBack("src/f07", "CONTENT 7"); // rewritten after the scan: caught when read
      },
    });
    expect(r.fileCounts).toEqual({ skipped: 0, verified: 39, failed: 1 });
    expect(r.failures).toEqual([expect.objectContaining({ path: "f07", code: "SOURCE_CHANGED" })]);
    expect(fs.existsSync(abs("dst/f07"))).toBe(false);
    expect(fs.readFileSync(abs("dst/f08"), "utf8")).toBe("content 8");
    const retry = await run({ skipFileErrors: true }, { only: ["f07"] });
    expect(retry.fileCounts).toEqual({ skipped: 0, verified: 1, failed: 0 });
    expect(retry.outcomes.map((o) => o.path)).toEqual(["f07"]);
    expect(fs.readFileSync(abs("dst/f07"), "utf8")).toBe("CONTENT 7");
    expect(treeDiff(snapshot(abs("dst")), snapshot(abs("src")))).toEqual([]);
  });

  test("a move with a failed file keeps that source and removes the rest; mirror removes nothing when a file failed", async () => {
    await synced();
    writeTree(dir, { "dst/extra": "stays while anything failed" });
    for (let i = 0; i < 50; i += 10) fs.writeFileSync(abs(`src/d${i % 5}/f${i}`), `v2 ${i}`);
    // The source cannot read d0/f0 (as a link that drops would): that file fails alone.
    const source = withOverrides(ep, {
      openRead: (p: string, o?: OpOptions) => {
        if (p.endsWith("d0/f0")) throw Object.assign(new Error("EACCES: permission denied"), { code: "EACCES" });
        return ep.openRead(p, o);
      },
    });
    const r = await run({ mode: "move", sync: "checksum", mirror: true, skipFileErrors: true, strategy: "direct" }, { source });
    expect(r.fileCounts).toEqual({ skipped: 45, verified: 4, failed: 1 });
    expect(r.mirrored).toBeUndefined();
    expect(fs.existsSync(abs("dst/extra"))).toBe(true);
    expect(fs.readFileSync(abs("src/d0/f0"), "utf8")).toBe("v2 0"); // kept, the only source left
    expect(fs.readdirSync(abs("src")).flatMap((d) => fs.readdirSync(abs(`src/${d}`)).map((f) => `${d}/${f}`))).toEqual(["d0/f0"]);
  });

  test("a single file that fails on its own ends with nothing committed and nothing left; a retry of only it with mirror removes nothing else", async () => {
    writeTree(dir, { "src/clip.mov": "clip", "dst-folder/keep": "keep", "dst-folder/other": "other" });
    const unreadable = withOverrides(ep, {
      openRead: (p: string, o?: OpOptions) => {
        if (p.endsWith("clip.mov")) throw Object.assign(new Error("EACCES: permission denied"), { code: "EACCES" });
        return ep.openRead(p, o);
      },
    });
    const r = await run({ sourcePath: "src/clip.mov", targetPath: "clip.mov", skipFileErrors: true, strategy: "direct" }, { source: unreadable });
    expect(r.fileCounts).toEqual({ skipped: 0, verified: 0, failed: 1 });
    expect(fs.existsSync(abs("clip.mov"))).toBe(false);
    expect(leftovers(dir)).toEqual([]);
    // Only + mirror: the retry sees one file of the source; the rest of the target must stay.
    writeTree(dir, { "src2/keep": "keep", "src2/other": "other2" });
    const retry = await run({ sourcePath: "src2", targetPath: "dst-folder", sync: "mtime", mirror: true }, { only: ["other"] });
    expect(retry.fileCounts.verified).toBe(1);
    expect(fs.readdirSync(abs("dst-folder")).sort()).toEqual(["keep", "other"]);
  });

  test("without skipFileErrors one bad file fails the whole job and nothing is committed", async () => {
    writeTree(dir, { "src/a": "a", "src/b": "b" });
    const source = withOverrides(ep, {
      openWrite: ep.openWrite.bind(ep) as (p: string, o?: OpOptions) => Promise<FileWriter>,
      openRead: (p: string, o?: OpOptions) => {
        if (p.endsWith("/b")) throw Object.assign(new Error("EACCES: permission denied"), { code: "EACCES" });
        return ep.openRead(p, o);
      },
    });
    await expect(run({ strategy: "direct" }, { source })).rejects.toMatchObject({ code: "PERMISSION_DENIED" });
    expect(fs.existsSync(abs("dst"))).toBe(false);
    expect(leftovers(dir)).toEqual([]);
  });
});
