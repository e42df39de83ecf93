/**
 * A folder written by this library, then changed, is reported correctly; generations append; a
 * damaged history is detected; nested histories get their own generations and are referenced.
 * Every manifest and chain written is validated against the ASC's XSDs with xmllint.
 */
import { afterAll, describe, expect, test } from "bun:test";
import { chmod, cp, mkdir, readFile, readdir, rm, unlink, utimes, writeFile } from "node:fs/promises";
import path from "node:path";
import { buildGeneration, type GenerationResult } from "./generation.ts";
import type { MhlHashFormat } from "./hash_format.ts";
import { type MhlHistory, allProblems, readHistory } from "./history.ts";
import { localMhlFs } from "./io.ts";
import { knownFiles } from "./known_files.ts";
import { parseManifest } from "./manifest_reader.ts";
import type { FileHashRecord, GenerationInput } from "./model.ts";
import { scanTree } from "./scan.ts";
import { referenceDir, tempDir, validateXsd } from "./test_support.ts";
import { verifyFolder } from "./verify_folder.ts";

const fs = localMhlFs();
const dirs: string[] = [];
afterAll(async () => {
  for (const d of dirs) await rm(d, { recursive: true, force: true });
});

const CREATOR = { tool: { name: "Ketter", version: "3.0.0" }, hostName: "srvtrf.test", authors: [{ name: "Ana Lima", email: "ana@example.com", role: "DIT" }] };

async function tree(files: Record<string, string>, emptyDirs: string[] = []): Promise<string> {
  const root = path.join(await tempDir("gen"), "Shoot42");
  dirs.push(path.dirname(root));
  for (const [p, content] of Object.entries(files)) {
    await mkdir(path.dirname(path.join(root, p)), { recursive: true });
    await writeFile(path.join(root, p), content);
  }
  for (const d of emptyDirs) await mkdir(path.join(root, d), { recursive: true });
  return root;
}

/** What the engine would hand the writer after a verified copy: every file with its hashes. */
async function input(root: string, formats: MhlHashFormat[], createdAt: Date, extra: Partial<GenerationInput> = {}): Promise<GenerationInput> {
  const scan = await scanTree(fs, root);
  const files = await Promise.all(
    scan.files.filter((f) => !f.path.split("/").includes("ascmhl")).map(async (f) => ({ path: f.path, size: f.size, lastModified: new Date(f.mtimeMs), hashes: await fs.hashFile(path.join(root, f.path), formats) })),
  );
  return { rootName: path.basename(root), createdAt, creator: CREATOR, hashFormat: formats[0] as MhlHashFormat, files, directories: scan.dirs.map((d) => ({ path: d.path, lastModified: new Date(d.mtimeMs) })), ...extra };
}

/** Writes the result into the folder, validating each file against the XSD first. */
async function apply(root: string, r: GenerationResult): Promise<void> {
  for (const w of r.writes) {
    const file = path.join(root, w.path);
    await mkdir(path.dirname(file), { recursive: true });
    await writeFile(file, w.bytes);
    const v = await validateXsd(file, w.path.endsWith(".mhl") ? "manifest" : "chain");
    expect({ file: w.path, ...v }).toEqual({ file: w.path, code: 0, output: `${file} validates\n` });
  }
}

const DAY1 = new Date("2026-12-02T10:20:30.456Z");
const DAY2 = new Date("2026-12-03T08:00:00Z");

describe("a folder Ketter seals, then changes", () => {
  test("is written as the spec says, verifies, then reports the change and records it in generation 2", async () => {
    const root = await tree({ "Clips/A001C001.mov": "frame data one", "Clips/A001C002.mov": "frame data two", "Sidecar.txt": "notes\n", ".DS_Store": "finder", "Clips/.DS_Store": "x" }, ["Audio"]);
    const r1 = await buildGeneration(await input(root, ["xxh64"], DAY1), null);
    expect(r1.ignored.sort()).toEqual([".DS_Store", "Clips/.DS_Store"]);
    expect(r1.manifests.map((m) => m.fileName)).toEqual(["0001_Shoot42_2026-12-02_102030Z.mhl"]);
    expect(r1.writes.map((w) => w.path)).toEqual(["ascmhl/0001_Shoot42_2026-12-02_102030Z.mhl", "ascmhl/ascmhl_chain.xml"]);
    await apply(root, r1);

    const m1 = parseManifest(await readFile(path.join(root, "ascmhl/0001_Shoot42_2026-12-02_102030Z.mhl"), "utf8"), "m1");
    expect(m1.process).toBe("transfer");
    expect(m1.creator).toEqual({ creationDate: "2026-12-02T10:20:30+00:00", hostName: "srvtrf.test", tool: { name: "Ketter", version: "3.0.0" }, authors: [{ name: "Ana Lima", email: "ana@example.com", role: "DIT" }] });
    expect(m1.hashes.map((h) => `${h.kind}:${h.path}`)).toEqual(["directory:Audio", "file:Clips/A001C001.mov", "file:Clips/A001C002.mov", "directory:Clips", "file:Sidecar.txt"]);
    expect((m1.hashes[1] as FileHashRecord).hashes).toEqual([{ format: "xxh64", value: (await fs.hashFile(path.join(root, "Clips/A001C001.mov"), ["xxh64"])).xxh64 as string, action: "original", hashDate: "2026-12-02T10:20:30+00:00" }]);
    expect(m1.rootHash?.content[0]?.value).toBe(r1.rootHash?.content as string);
    // The empty folder's content hash is XXH64 of nothing.
    const audio = m1.hashes[0];
    expect(audio?.kind === "directory" && audio.content[0]?.value).toBe("ef46db3751d8e999");

    const v1 = await verifyFolder(fs, root);
    expect({ ok: v1.ok, verified: v1.verified.length, mismatched: v1.mismatched, missing: v1.missing, new: v1.new, problems: v1.historyProblems }).toEqual({ ok: true, verified: 3, mismatched: [], missing: [], new: [], problems: [] });

    await writeFile(path.join(root, "Sidecar.txt"), "notes, edited\n");
    await unlink(path.join(root, "Clips/A001C002.mov"));
    await writeFile(path.join(root, "Clips/A001C003.mov"), "frame data three");
    const v2 = await verifyFolder(fs, root, { hashFormat: "xxh64" });
    expect(v2.ok).toBe(false);
    expect(v2.verified).toEqual([{ path: "Clips/A001C001.mov", format: "xxh64" }]);
    expect(v2.mismatched.map((m) => [m.path, m.format, m.expected === (m1.hashes[4] as FileHashRecord).hashes[0]?.value])).toEqual([["Sidecar.txt", "xxh64", true]]);
    expect(v2.missing).toEqual(["Clips/A001C002.mov"]);
    expect(v2.new).toEqual(["Clips/A001C003.mov"]);
    expect(v2.files.map((f) => f.path)).toEqual(["Clips/A001C001.mov", "Clips/A001C003.mov", "Sidecar.txt"]);

    // A verification generation from what verifyFolder hashed.
    const files = v2.files.map((f) => ({ path: f.path, size: f.size, lastModified: new Date(f.mtimeMs), hashes: f.hashes }));
    const r2 = await buildGeneration({ rootName: "Shoot42", createdAt: DAY2, creator: CREATOR, process: "in-place", hashFormat: "xxh64", files }, v2.history);
    expect(r2.failed.map((f) => f.path)).toEqual(["Sidecar.txt"]);
    expect(r2.manifests.map((m) => [m.sequence, m.fileName])).toEqual([[2, "0002_Shoot42_2026-12-03_080000Z.mhl"]]);
    await apply(root, r2);
    const h = (await readHistory(fs, root)) as MhlHistory;
    expect(allProblems(h)).toEqual([]);
    expect(h.chain.map((e) => [e.sequence, e.path])).toEqual([[1, "0001_Shoot42_2026-12-02_102030Z.mhl"], [2, "0002_Shoot42_2026-12-03_080000Z.mhl"]]);
    const actions = h.generations[1]?.manifest.hashes.flatMap((x) => (x.kind === "file" ? [[x.path, x.hashes[0]?.action]] : []));
    expect(actions).toEqual([["Clips/A001C001.mov", "verified"], ["Clips/A001C003.mov", "original"], ["Sidecar.txt", "failed"]]);
    const known = knownFiles(h);
    expect(known.get("Sidecar.txt")?.first.xxh64?.sequence).toBe(1);
    expect(known.get("Clips/A001C003.mov")?.latest?.action).toBe("original");
    // Still failing against its original hash; the new file is now known.
    const v3 = await verifyFolder(fs, root);
    expect([v3.mismatched.map((m) => m.path), v3.missing, v3.new]).toEqual([["Sidecar.txt"], ["Clips/A001C002.mov"], []]);
  });

  test("a new format is verified through one the history recorded, and refused without one", async () => {
    const root = await tree({ "a.mov": "aaa", "b/c.mov": "ccc" });
    await apply(root, await buildGeneration(await input(root, ["xxh64"], DAY1), null));
    const h = (await readHistory(fs, root)) as MhlHistory;
    const r = await buildGeneration(await input(root, ["md5", "xxh64"], DAY2), h);
    await apply(root, r);
    const m = parseManifest(new TextDecoder().decode(r.writes[0]?.bytes), "m2");
    const a = m.hashes.find((x) => x.path === "a.mov") as FileHashRecord;
    expect(a.hashes.map((x) => [x.format, x.action])).toEqual([["md5", "verified"], ["xxh64", "verified"]]);
    expect(m.rootHash?.content.map((x) => x.format)).toEqual(["md5"]);
    const h2 = (await readHistory(fs, root)) as MhlHistory;
    await expect(buildGeneration(await input(root, ["sha1"], DAY2), h2)).rejects.toThrow('"b/c.mov" is recorded in its history only as md5, xxh64: compute one of those too');
  });

  test("xxh3, xxh128, sha1 and c4 manifests validate and verify", async () => {
    for (const f of ["xxh3", "xxh128", "sha1", "c4"] as const) {
      const root = await tree({ "x/y.mov": `data ${f}`, "z.txt": "z" });
      await apply(root, await buildGeneration(await input(root, [f], DAY1), null));
      const v = await verifyFolder(fs, root);
      expect([f, v.ok, v.verified.map((x) => x.format)]).toEqual([f, true, [f, f]]);
    }
  });
});

describe("a damaged history", () => {
  test("an altered, a missing and an unlisted manifest are each reported", async () => {
    const root = await tree({ "a.mov": "aaa" });
    await apply(root, await buildGeneration(await input(root, ["xxh64"], DAY1), null));
    await apply(root, await buildGeneration(await input(root, ["xxh64"], DAY2), await readHistory(fs, root)));
    const m1 = path.join(root, "ascmhl/0001_Shoot42_2026-12-02_102030Z.mhl");
    const text = await readFile(m1, "utf8");
    await writeFile(m1, text.replace("<hostname>srvtrf.test</hostname>", "<hostname>elsewhere</hostname>"));
    await writeFile(path.join(root, "ascmhl/0003_Shoot42_2027-01-01_000000Z.mhl"), text);
    await unlink(path.join(root, "ascmhl/0002_Shoot42_2026-12-03_080000Z.mhl"));
    const v = await verifyFolder(fs, root);
    expect(v.ok).toBe(false);
    expect(v.historyProblems.map((p) => [p.kind, p.file])).toEqual([
      ["manifest_changed", "ascmhl/0001_Shoot42_2026-12-02_102030Z.mhl"],
      ["missing_manifest", "ascmhl/0002_Shoot42_2026-12-03_080000Z.mhl"],
      ["unlisted_manifest", "ascmhl/0003_Shoot42_2027-01-01_000000Z.mhl"],
    ]);
    expect(v.verified.length).toBe(1);
  });

  test("without its chain file the history is reported, and a new generation does not reuse a manifest's number", async () => {
    const root = await tree({ "a.mov": "aaa" });
    await apply(root, await buildGeneration(await input(root, ["xxh64"], DAY1), null));
    await unlink(path.join(root, "ascmhl/ascmhl_chain.xml"));
    const h = (await readHistory(fs, root)) as MhlHistory;
    expect(allProblems(h).map((p) => p.kind)).toEqual(["missing_chain", "unlisted_manifest"]);
    const r = await buildGeneration(await input(root, ["xxh64"], DAY2), h);
    expect(r.manifests.map((m) => m.fileName)).toEqual(["0002_Shoot42_2026-12-03_080000Z.mhl"]);
  });

  test("a manifest that is not ASC MHL fails with MALFORMED naming the file", async () => {
    const root = await tree({ "a.mov": "aaa" });
    await apply(root, await buildGeneration(await input(root, ["xxh64"], DAY1), null));
    const m1 = path.join(root, "ascmhl/0001_Shoot42_2026-12-02_102030Z.mhl");
    await writeFile(m1, (await readFile(m1, "utf8")).replace('version="2.0"', 'version="1.1"'));
    await expect(readHistory(fs, root)).rejects.toMatchObject({ code: "MALFORMED", message: expect.stringContaining("ascmhl/0001_Shoot42_2026-12-02_102030Z.mhl is not a valid ASC MHL manifest: version \"1.1\"") });
  });
});

describe("nested histories", () => {
  test("a card with its own history gets generation 2 and is referenced by the day's new history", async () => {
    const root = await tree({ "CardA/Clips/A.mov": "a-frames", "CardA/meta.xml": "<m/>", "CardB/B.mov": "b-frames", "notes.txt": "day one" });
    const card = path.join(root, "CardA");
    await apply(card, await buildGeneration({ ...(await input(card, ["xxh64"], DAY1)), rootName: "CardA" }, null));
    await utimes(card, DAY1, DAY1);
    const h = (await readHistory(fs, root)) as MhlHistory;
    expect([h.exists, h.children.map((c) => c.path)]).toEqual([false, ["CardA"]]);
    const r = await buildGeneration(await input(root, ["xxh64"], DAY2), h);
    expect(r.writes.map((w) => w.path)).toEqual(["CardA/ascmhl/0002_CardA_2026-12-03_080000Z.mhl", "CardA/ascmhl/ascmhl_chain.xml", "ascmhl/0001_Shoot42_2026-12-03_080000Z.mhl", "ascmhl/ascmhl_chain.xml"]);
    await apply(root, r);
    const top = parseManifest(new TextDecoder().decode(r.writes[2]?.bytes), "top");
    expect(top.hashes.map((x) => `${x.kind}:${x.path}`)).toEqual(["directory:CardA", "file:CardB/B.mov", "directory:CardB", "file:notes.txt"]);
    expect(top.references).toEqual([{ path: "CardA/ascmhl/0002_CardA_2026-12-03_080000Z.mhl", c4: r.manifests[0]?.c4 as string }]);
    const cardGen2 = parseManifest(new TextDecoder().decode(r.writes[0]?.bytes), "card");
    expect(cardGen2.hashes.flatMap((x) => (x.kind === "file" ? [[x.path, x.hashes[0]?.action]] : []))).toEqual([["Clips/A.mov", "verified"], ["meta.xml", "verified"]]);
    // The card's root hash is the day manifest's directory hash of CardA.
    const cardDir = top.hashes[0];
    expect(cardDir?.kind === "directory" && cardDir.content).toEqual(cardGen2.rootHash?.content as never);
    const v = await verifyFolder(fs, root);
    expect([v.ok, v.verified.length, v.historyProblems]).toEqual([true, 4, []]);
    // Tampering with the card's manifest breaks its chain and the day's reference to it.
    const cm = path.join(card, "ascmhl/0002_CardA_2026-12-03_080000Z.mhl");
    await writeFile(cm, `${await readFile(cm, "utf8")} `);
    const kinds = (await verifyFolder(fs, root)).historyProblems.map((p) => p.kind).sort();
    expect(kinds).toEqual(["bad_reference", "manifest_changed"]);
  });
});

describe("appending to a history the ASC's tool wrote", () => {
  test("a Ketter transfer generation on scenario 5's nested Reels folder validates, verifies and references both cards", async () => {
    const dir = await tempDir("append");
    dirs.push(dir);
    const root = path.join(dir, "Reels");
    await cp(path.join(referenceDir(), "examples/scenarios/Output/scenario_05/file_server/Reels"), root, { recursive: true });
    await chmodTree(root);
    const h = (await readHistory(fs, root)) as MhlHistory;
    const r = await buildGeneration(await input(root, ["xxh64"], DAY2), h);
    expect(r.failed).toEqual([]);
    expect(r.manifests.map((m) => `${m.historyPath}:${m.fileName}`)).toEqual(["A002R2EC:0003_A002R2EC_2026-12-03_080000Z.mhl", "A003R2EC:0003_A003R2EC_2026-12-03_080000Z.mhl", ":0002_Reels_2026-12-03_080000Z.mhl"]);
    await apply(root, r);
    const v = await verifyFolder(fs, root);
    expect([v.ok, v.verified.length, v.historyProblems]).toEqual([true, 7, []]);
    const top = v.history.generations.at(-1)?.manifest;
    expect(top?.process).toBe("transfer");
    expect(top?.references.map((x) => x.path)).toEqual(["A002R2EC/ascmhl/0003_A002R2EC_2026-12-03_080000Z.mhl", "A003R2EC/ascmhl/0003_A003R2EC_2026-12-03_080000Z.mhl"]);
    // ascmhl's root hash of Reels (same files) is reproduced by Ketter's generation.
    expect(top?.rootHash?.content[0]?.value).toBe("92950bc8fda076ec");
    const actions = v.history.children[0]?.generations.at(-1)?.manifest.hashes.flatMap((x) => (x.kind === "file" ? x.hashes.map((y) => y.action) : []));
    expect(actions).toEqual(["verified", "verified", "verified"]);
  });
});

/** The reference copy is read-only (the shared folder): make the copy writable. */
async function chmodTree(dir: string): Promise<void> {
  await chmod(dir, 0o755);
  for (const e of await readdir(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) await chmodTree(p);
    else await chmod(p, 0o644);
  }
}

describe("bad input is refused with what to fix", () => {
  const base = (files: GenerationInput["files"]): GenerationInput => ({ rootName: "R", createdAt: DAY1, creator: CREATOR, hashFormat: "xxh64", files });
  const ok = { size: 1, hashes: { xxh64: "0123456789abcdef" } };
  const cases: [string, GenerationInput, string][] = [
    ["absolute path", base([{ path: "/etc/passwd", ...ok }]), 'starts with "/"'],
    ["dot-dot", base([{ path: "a/../b", ...ok }]), 'has a ".." segment'],
    ["backslash", base([{ path: "a\\b", ...ok }]), 'contains "\\"'],
    ["duplicate", base([{ path: "a", ...ok }, { path: "a", ...ok }]), '"a" is listed twice'],
    ["file and folder", base([{ path: "a", ...ok }, { path: "a/b", ...ok }]), "both as a file and as a folder"],
    ["missing format", base([{ path: "a", size: 1, hashes: { md5: "0123456789abcdef0123456789abcdef" } }]), '"a" has no xxh64 hash'],
    ["bad digest", base([{ path: "a", size: 1, hashes: { xxh64: "0123456789ABCDEF" } }]), "is not a xxh64 digest"],
    ["bad email", { ...base([{ path: "a", ...ok }]), creator: { ...CREATOR, authors: [{ name: "x", email: "nobody" }] } }, "e-mail address"],
    ["root name", { ...base([{ path: "a", ...ok }]), rootName: "a/b" }, "a folder name, not a path"],
    ["bad date", { ...base([{ path: "a", ...ok }]), createdAt: new Date("nope") }, "a valid Date"],
    ["nothing", { ...base([{ path: ".DS_Store", ...ok }]), directoryHashes: false }, "nothing to record"],
  ];
  for (const [name, inp, msg] of cases) {
    test(name, async () => {
      await expect(buildGeneration(inp, null)).rejects.toMatchObject({ code: "BAD_INPUT", message: expect.stringContaining(msg) });
    });
  }
});
