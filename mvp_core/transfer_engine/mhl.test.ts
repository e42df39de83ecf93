/**
 * ASC MHL on local transfers and verification (docs/mhl.md): generations written with the commit,
 * validated against the ASC's XSDs (xmllint) and verified by the MHL library; sources carrying a
 * history (the ASC's reference scenarios) checked against it and their history carried and
 * appended; mismatches refused naming the files; syncs appending to the history that continues.
 */
import { afterEach, beforeEach, describe, expect, test } from "bun:test";
import fs from "node:fs";
import path from "node:path";
import pkg from "../../package.json" with { type: "json" };
import type { Endpoint } from "./endpoints/endpoint.ts";
import { localEndpoint } from "./endpoints/testing.ts";
import { isTransferError } from "./errors.ts";
import { type EngineEvent, type TransferResult, type TransferSpecInput, transfer, verifyHistory } from "./index.ts";
import { checkHistory, copyScenario, manifests, newestManifest } from "./mhl_testing.ts";
import { leftovers, snapshot, tempDir, treeDiff, writeTree } from "./test_tree.ts";

let dir: string;
let cleanup: () => Promise<void>;
let ep: Endpoint;
beforeEach(async () => {
  ({ dir, cleanup } = await tempDir("ketter-mhl-engine-"));
  ep = localEndpoint(dir);
});
afterEach(() => cleanup());

const abs = (rel: string): string => path.join(dir, rel);
const CLIP = "Clips/A002C006_141024_R2EC.mov";

function run(spec: Partial<TransferSpecInput>, events: EngineEvent[] = []): Promise<TransferResult> {
  return transfer({ sourcePath: "src", targetPath: "dst", mode: "copy", mhl: true, ...spec }, { source: ep, target: ep, onEvent: (e) => events.push(e) });
}

async function failure(spec: Partial<TransferSpecInput>): Promise<{ code: string; message: string; details: Record<string, unknown> }> {
  try {
    await run(spec);
  } catch (err) {
    if (isTransferError(err)) return { code: err.code, message: err.message, details: err.details };
    throw err;
  }
  throw new Error("transfer unexpectedly succeeded");
}

const count = (text: string, what: string): number => text.split(what).length - 1;

describe("ASC MHL on transfer", () => {
  test("a folder without a history gets generation 1 in xxh3, with directory hashes; it validates and verifies", async () => {
    writeTree(abs("src"), { "Clips/A.mov": 300_000, "Clips/B.mov": 5_000, "Sidecar.txt": "notes", "empty/": "" });
    const before = snapshot(abs("src"));
    const r = await run({});
    expect(r.verified).toEqual({ mode: "checksum", algorithm: "xxh3", files: 3 });
    expect(r.mhl).toMatchObject({ format: "xxh3", files: 3, sourceChecked: 0, appendedTo: "new", manifests: [{ sequence: 1 }] });
    expect(manifests(abs("dst"))).toEqual([r.mhl!.manifests[0]!.path]);
    const { invalid, verification } = await checkHistory(abs("dst"));
    expect(invalid).toEqual([]);
    expect(verification).toMatchObject({ ok: true, mismatched: [], missing: [], new: [], historyProblems: [] });
    expect(verification.verified.map((v) => `${v.path} ${v.format}`)).toEqual(["Clips/A.mov xxh3", "Clips/B.mov xxh3", "Sidecar.txt xxh3"]);
    const text = newestManifest(abs("dst"));
    expect(text).toContain("<process>transfer</process>");
    expect(text).toContain(`<tool version="${pkg.version}">Ketter</tool>`);
    expect(count(text, 'action="original"')).toBe(3);
    expect(text).toContain("<roothash>");
    expect(count(text, "<directoryhash>")).toBe(2); // Clips and empty
    expect(treeDiff(snapshot(abs("src")), before)).toEqual([]); // the source is not written to
    expect(leftovers(dir)).toEqual([]);
  });

  test("a big job's generation (built on the helper thread) lists every file and verifies", async () => {
    const files: Record<string, number> = {};
    for (let i = 0; i < 1_200; i++) files[`d${i % 12}/f${i}.bin`] = 64;
    writeTree(abs("src"), files);
    const r = await run({});
    expect(r.mhl).toMatchObject({ files: 1_200, manifests: [{ sequence: 1 }] });
    const { invalid, verification } = await checkHistory(abs("dst"));
    expect(invalid).toEqual([]);
    expect(verification.ok).toBe(true);
    expect(verification.verified).toHaveLength(1_200);
  });

  test("a source carrying a history (reference scenario 02) is checked in its recorded xxh64 in the same read, carried, and appended as generation 3", async () => {
    copyScenario("scenario_02/file_server/A002R2EC", abs("src"));
    const r = await run({});
    expect(r.verified.algorithm).toBe("xxh64");
    expect(r.mhl).toMatchObject({ format: "xxh64", files: 3, sourceChecked: 3, appendedTo: "source", manifests: [{ sequence: 3 }] });
    const carried = manifests(abs("src"));
    expect(manifests(abs("dst"))).toEqual([...carried, r.mhl!.manifests[0]!.path].sort());
    for (const m of carried) expect(fs.readFileSync(abs(`dst/${m}`))).toEqual(fs.readFileSync(abs(`src/${m}`)));
    const { invalid, verification } = await checkHistory(abs("dst"));
    expect(invalid).toEqual([]);
    expect(verification.ok).toBe(true);
    const text = newestManifest(abs("dst"));
    expect(count(text, '<xxh64 action="verified"')).toBe(3);
    expect(text).not.toContain('action="original"');
  });

  test("nested histories (scenario 05): each gets a generation, and the outer one references them", async () => {
    copyScenario("scenario_05/file_server/Reels", abs("src"));
    const r = await run({});
    expect(r.mhl!.manifests.map((m) => `${m.path.split("/")[0]} ${m.sequence}`).sort()).toEqual(["A002R2EC 3", "A003R2EC 3", "ascmhl 2"]);
    const { invalid, verification } = await checkHistory(abs("dst"));
    expect(invalid).toEqual([]);
    expect(verification.ok).toBe(true);
    expect(newestManifest(abs("dst"))).toContain("<references>");
  });

  test("a source file that does not match its history fails the job naming it; nothing lands", async () => {
    copyScenario("scenario_02/file_server/A002R2EC", abs("src"));
    fs.writeFileSync(abs(`src/${CLIP}`), "XXXXX"); // same size, other bytes
    const f = await failure({});
    expect(f.code).toBe("MHL_MISMATCH");
    expect(f.message).toContain(CLIP);
    expect(f.details.files).toEqual([{ path: CLIP, why: expect.stringContaining("0ea03b369a463d9d recorded in generation 1") }]);
    expect(fs.existsSync(abs("dst"))).toBe(false);
    expect(leftovers(dir)).toEqual([]);
  });

  test("with skipFileErrors the mismatching file fails alone; the generation lists the others, without directory hashes", async () => {
    copyScenario("scenario_02/file_server/A002R2EC", abs("src"));
    fs.writeFileSync(abs(`src/${CLIP}`), "XXXXX");
    const r = await run({ skipFileErrors: true });
    expect(r.fileCounts).toEqual({ skipped: 0, verified: 5, failed: 1 });
    expect(r.failures).toEqual([{ path: CLIP, code: "MHL_MISMATCH", message: expect.stringContaining("does not match the source's ASC MHL history") }]);
    expect(fs.existsSync(abs(`dst/${CLIP}`))).toBe(false);
    expect(r.mhl!.files).toBe(2);
    const text = newestManifest(abs("dst"));
    expect(text).not.toContain(CLIP);
    expect(text).not.toContain("<roothash>");
    const { invalid, verification } = await checkHistory(abs("dst"));
    expect(invalid).toEqual([]);
    // What an MHL tool reports of that copy: the recorded clip is not there.
    expect(verification).toMatchObject({ ok: false, mismatched: [], missing: [CLIP], new: [] });
  });

  test("a recorded file missing from the source, or a damaged history, is refused before anything is written", async () => {
    copyScenario("scenario_02/file_server/A002R2EC", abs("src"));
    fs.renameSync(abs("src/Sidecar.txt"), abs("Sidecar.txt"));
    const missing = await failure({});
    expect(missing).toMatchObject({ code: "MHL_MISMATCH", details: { missing: ["Sidecar.txt"] } });
    fs.renameSync(abs("Sidecar.txt"), abs("src/Sidecar.txt"));
    const first = path.join(abs("src/ascmhl"), fs.readdirSync(abs("src/ascmhl")).filter((n) => n.endsWith(".mhl")).sort()[0]!);
    fs.writeFileSync(first, fs.readFileSync(first, "utf8").replace("<hostname>", "<hostname>x"));
    const damaged = await failure({});
    expect(damaged.code).toBe("MHL_MISMATCH");
    expect(damaged.message).toContain("was altered after it was written");
    expect(fs.existsSync(abs("dst"))).toBe(false);
    expect(leftovers(dir)).toEqual([]);
  });

  test("another hash than the recorded one: the recorded format is checked before sending, and both are recorded", async () => {
    copyScenario("scenario_02/file_server/A002R2EC", abs("src"));
    const r = await run({ hash: "xxh128" });
    expect(r.verified.algorithm).toBe("xxh128");
    expect(r.mhl!.sourceChecked).toBe(3);
    const text = newestManifest(abs("dst"));
    expect(count(text, '<xxh64 action="verified"')).toBe(3);
    expect(count(text, '<xxh128 action="verified"')).toBe(3);
    expect((await checkHistory(abs("dst"))).invalid).toEqual([]);
    fs.rmSync(abs("dst"), { recursive: true });
    fs.writeFileSync(abs(`src/${CLIP}`), "YYYYY");
    const f = await failure({ hash: "xxh128" });
    expect(f).toMatchObject({ code: "MHL_MISMATCH", message: expect.stringContaining(CLIP) });
    expect(fs.existsSync(abs("dst"))).toBe(false);
  });

  test("a sync appends to the target's history; the generation is renamed into place after the new files", async () => {
    writeTree(abs("src"), { "a.bin": 10_000, "b.bin": 20_000 });
    await run({});
    writeTree(abs("src"), { "c.bin": 30_000 });
    const r = await run({ sync: "mtime" });
    expect(r.fileCounts).toMatchObject({ skipped: 2, verified: 1 });
    expect(r.mhl).toMatchObject({ files: 1, appendedTo: "target", manifests: [{ sequence: 2 }] });
    expect(manifests(abs("dst"))).toHaveLength(2);
    const text = newestManifest(abs("dst"));
    expect(text).toContain("c.bin");
    expect(text).not.toContain("a.bin");
    expect(text).not.toContain("<roothash>");
    const { invalid, verification } = await checkHistory(abs("dst"));
    expect(invalid).toEqual([]);
    expect(verification).toMatchObject({ ok: true });
    expect(verification.verified).toHaveLength(3);
    expect(fs.statSync(abs("dst/ascmhl")).mode & 0o777).toBe(0o755);
    expect(leftovers(dir)).toEqual([]);
  });

  test("a sync from a source whose history the target's continues leaves the target's chain alone", async () => {
    copyScenario("scenario_02/file_server/A002R2EC", abs("src"));
    await run({});
    const chain = fs.readFileSync(abs("dst/ascmhl/ascmhl_chain.xml"));
    writeTree(abs("src"), { "Clips/new.mov": 4_000 });
    const r = await run({ sync: "size" });
    expect(r.mhl).toMatchObject({ files: 1, appendedTo: "target", manifests: [{ sequence: 4 }] });
    expect(fs.readFileSync(abs("dst/ascmhl/ascmhl_chain.xml")).length).toBeGreaterThan(chain.length);
    const { invalid, verification } = await checkHistory(abs("dst"));
    expect(invalid).toEqual([]);
    expect(verification.ok).toBe(true);
    // Nothing new at the source: nothing to record, and the target's history stays as it is.
    const again = await run({ sync: "size" });
    expect(again.mhl).toBeUndefined();
    expect((await checkHistory(abs("dst"))).verification.ok).toBe(true);
  });

  test("histories that diverged are refused: Ketter does not merge two histories", async () => {
    copyScenario("scenario_02/file_server/A002R2EC", abs("src"));
    await run({});
    copyScenario("scenario_02/file_server/A002R2EC", abs("other"));
    await verifyHistory({ path: "other", record: true }, { endpoint: ep });
    const f = await failure({ sourcePath: "other", sync: "size" });
    expect(f).toMatchObject({ code: "MHL_MISMATCH", message: expect.stringContaining("diverged") });
    expect((await checkHistory(abs("dst"))).verification.ok).toBe(true);
  });

  test("a single file is copied without a history (a history belongs to a folder)", async () => {
    writeTree(dir, { "clip.mov": 1_000 });
    const events: EngineEvent[] = [];
    const r = await run({ sourcePath: "clip.mov", targetPath: "copy.mov" }, events);
    expect(r.mhl).toBeUndefined();
    expect(events.find((e) => e.kind === "fallback")?.message).toContain("single file");
    expect(fs.readdirSync(dir).sort()).toEqual(["clip.mov", "copy.mov"]);
  });

  test("mhl refuses size-only verification and a hash it cannot record", async () => {
    writeTree(abs("src"), { "a.bin": 100 });
    expect(await failure({ verify: "size" })).toMatchObject({ code: "INVALID_SPEC", message: expect.stringContaining("verify checksum") });
    expect(await failure({ hash: "crc32" })).toMatchObject({ code: "INVALID_SPEC", message: expect.stringContaining("choose xxh3") });
    expect(fs.existsSync(abs("dst"))).toBe(false);
  });

  test("without mhl: auto verifies with xxh3, and any hash can be asked for", async () => {
    writeTree(abs("src"), { "a.bin": 70_000, "b/c.bin": 5 });
    for (const [hash, algorithm] of [["auto", "xxh3"], ["crc32", "crc32"], ["xxh64", "xxh64"], ["xxh128", "xxh128"], ["sha1", "sha1"]] as const) {
      const r = await run({ mhl: false, hash, targetPath: `dst-${hash}` });
      expect(r.verified).toEqual({ mode: "checksum", algorithm, files: 2 });
      expect(fs.existsSync(abs(`dst-${hash}/ascmhl`))).toBe(false);
    }
  });
});

describe("verifying a folder against its history", () => {
  test("a clean folder verifies; a tampered one lists its mismatched, missing and new files", async () => {
    copyScenario("scenario_02/file_server/A002R2EC", abs("card"));
    const ok = await verifyHistory({ path: "card" }, { endpoint: ep });
    expect(ok).toMatchObject({ ok: true, verified: 3, mismatched: [], missing: [], new: [], historyProblems: [] });
    fs.writeFileSync(abs(`card/${CLIP}`), "ZZZZZ");
    fs.rmSync(abs("card/Sidecar.txt"));
    fs.writeFileSync(abs("card/Clips/extra.mov"), "extra");
    const events: EngineEvent[] = [];
    const bad = await verifyHistory({ path: "card" }, { endpoint: ep, onEvent: (e) => events.push(e) });
    expect(bad).toMatchObject({ ok: false, verified: 1, mismatched: [{ path: CLIP, format: "xxh64", expected: "0ea03b369a463d9d" }], missing: ["Sidecar.txt"], new: ["Clips/extra.mov"] });
    expect(events).toMatchObject([{ kind: "verified", message: expect.stringContaining(CLIP), data: { ok: false, counts: { mismatched: 1, missing: 1, new: 1 } } }]);
  });

  test("record appends an in-place generation (mismatches failed, new files original) that validates", async () => {
    copyScenario("scenario_02/file_server/A002R2EC", abs("card"));
    fs.writeFileSync(abs("card/Clips/extra.mov"), "extra");
    const r = await verifyHistory({ id: "rec1", path: "card", record: true }, { endpoint: ep });
    expect(r.recorded).toMatchObject({ format: "xxh64", manifests: [{ sequence: 3 }] });
    const text = newestManifest(abs("card"));
    expect(text).toContain("<process>in-place</process>");
    expect(count(text, 'action="verified"')).toBe(3);
    expect(text).toMatch(/extra\.mov<\/path>\s*<xxh64 action="original"/);
    const { invalid, verification } = await checkHistory(abs("card"));
    expect(invalid).toEqual([]);
    expect(verification.ok).toBe(true);
    expect(fs.readdirSync(abs("card/ascmhl")).filter((n) => n.startsWith(".ketter-"))).toEqual([]);
  });

  test("a folder without a history, or a file, is refused with what to do", async () => {
    writeTree(abs("plain"), { "a.bin": 10 });
    await expect(verifyHistory({ path: "plain" }, { endpoint: ep })).rejects.toMatchObject({ code: "MHL_MISMATCH", message: expect.stringContaining("no ASC MHL history") });
    await expect(verifyHistory({ path: "plain/a.bin" }, { endpoint: ep })).rejects.toMatchObject({ code: "UNSUPPORTED" });
    await expect(verifyHistory({ path: "nowhere" }, { endpoint: ep })).rejects.toMatchObject({ code: "SOURCE_NOT_FOUND" });
  });
});
