/**
 * Chain of custody, after the destination is verified and before the commit (docs/mhl.md): the new
 * ASC MHL generation (process `transfer`) of the verified files, appended to the history that now
 * sits in the staging tree (the source's, carried with the data) — or, for a sync, to the target's
 * — and written into the staging tree, so it lands with the commit: atomically with the folder, or
 * renamed into place after the data files by a sync. Each file written is hashed where it landed
 * (next to the data, like the copy's verification) and compared with the bytes meant.
 * Only verified files are listed: failed ones left the staging tree before this step.
 */
import os from "node:os";
import type { GenerationResult, MhlHashFormat } from "../../mhl/index.ts";
import pkg from "../../../package.json" with { type: "json" };
import type { Endpoint, Entry, HashAlgorithm } from "../endpoints/endpoint.ts";
import { EndpointMhlFs } from "../endpoints/mhl_fs.ts";
import { TransferError } from "../errors.ts";
import { createHasher } from "../hash.ts";
import { baseRel, joinRel, parentRel, showPath } from "../paths.ts";
import type { Run } from "../run.ts";
import { buildAside } from "./mhl_build.ts";
import type { Custody } from "./mhl_source.ts";
import type { Manifest } from "./scan.ts";
import { writeBytes } from "./write_bytes.ts";

/** The folder of a history (mhl/naming.ts; the library itself is loaded only with an MHL). */
const ASCMHL_DIR = "ascmhl";

/** What a transfer recorded in the ASC MHL (also the `mhl` of its result). */
export interface MhlRecord {
  /** The hash format of the new generation (the verification hash). */
  format: HashAlgorithm;
  /** Files listed in the new generation. */
  files: number;
  /** Source files checked against the source's history before they were committed. */
  sourceChecked: number;
  /** The history appended to: carried from the source, the existing target's (sync), or a new one. */
  appendedTo: Custody["baseFrom"];
  /** The new manifests, relative to the target folder, with their generation numbers. */
  manifests: { path: string; sequence: number }[];
  /** Building the generation (directory hashes, XML, C4, chain; beside the verification) and writing and checking its files. */
  durationMs: number;
}

/** The generation's files written into the staging tree, and the folders made for them. */
export interface WrittenGeneration {
  record: MhlRecord;
  /** As entries relative to the folder, for a sync's renames (after every data file). */
  files: Entry[];
  dirs: Entry[];
}

const MANIFEST_MODE = 0o644;
const FOLDER_MODE = 0o755;

/** A generation built and not yet written. */
export interface PreparedGeneration {
  gen: GenerationResult;
  /** Files it lists (the input's, less those an ignore pattern left out). */
  files: number;
  buildMs: number;
}

/**
 * Builds the generation of `sent` — their hashes in `hashes` are the source's, which the
 * destination's verification proves — so it can run beside that verification (on a helper thread
 * for big jobs). `whole`: `sent` is the whole folder (directory hashes are then computed); false
 * for a sync or when files failed (a generation of a subset, guidelines 2.5.3). Null: a sync that
 * sent no footage (only history files, or nothing) has nothing to record.
 */
export async function prepareGeneration(run: Run, custody: Custody, full: Manifest, sent: Manifest, targetPath: string, alg: HashAlgorithm, hashes: ReadonlyMap<string, string>, whole: boolean): Promise<PreparedGeneration | null> {
  const t0 = performance.now();
  if (!whole && sent.files.every((f) => f.path.split("/").includes(ASCMHL_DIR))) return null;
  const files = sent.files.map((f) => {
    const digest = hashes.get(f.path);
    if (digest === undefined) throw new TransferError("VERIFY_FAILED", `${JSON.stringify(f.path)} has no verified ${alg} hash to record; retry the transfer`);
    return { path: f.path, size: f.size, lastModified: new Date(f.mtimeMs), hashes: { ...custody.extra.get(f.path), [alg]: digest } };
  });
  const gen = await buildAside({
    rootName: baseRel(targetPath),
    createdAt: new Date(),
    creator: {
      tool: { name: "Ketter", version: pkg.version },
      hostName: os.hostname(),
      comment: `Ketter ${run.spec.mode} ${run.spec.id}: ${shown(run.source, run.spec.sourcePath)} to ${shown(run.target, run.spec.targetPath)}`,
    },
    process: "transfer",
    // An MHL format: assertMhlOptions refused any other, and the plan picks only those with an MHL.
    hashFormat: alg as MhlHashFormat,
    files,
    directories: whole ? full.dirs.map((d) => ({ path: d.path, lastModified: new Date(d.mtimeMs) })) : [],
    directoryHashes: whole,
  }, custody.base);
  if (gen.failed.length > 0) {
    const list = gen.failed.slice(0, 5).map((f) => `${JSON.stringify(f.path)} (${f.format} ${f.actual}, ${f.expected} recorded)`).join("; ");
    throw new TransferError("MHL_MISMATCH", `${gen.failed.length} file(s) differ from what the target's ASC MHL history records for them: ${list}; a history records footage that does not change — copy to a new target, or replace this one (overwrite)`, {
      details: { files: gen.failed.slice(0, 50) },
    });
  }
  return { gen, files: files.length - gen.ignored.length, buildMs: performance.now() - t0 };
}

/** Writes a prepared generation into `staging` and checks what landed; `staged`: what the staging tree holds (which folders exist there). */
export async function writeGeneration(run: Run, custody: Custody, prepared: PreparedGeneration, staged: Manifest, staging: string, alg: HashAlgorithm): Promise<WrittenGeneration> {
  const t0 = performance.now();
  const { gen } = prepared;
  // A merge stages only the folders it needs: a history's folder (and its parents) may be missing.
  const present = new Set([...staged.dirs.map((d) => d.path), ""]);
  const written: WrittenGeneration = {
    record: { format: alg, files: prepared.files, sourceChecked: custody.checked, appendedTo: custody.baseFrom, manifests: gen.manifests.map((m) => ({ path: joinRel(joinRel(m.historyPath, ASCMHL_DIR), m.fileName), sequence: m.sequence })), durationMs: 0 },
    files: [],
    dirs: [],
  };
  for (const w of gen.writes) {
    const missing: string[] = [];
    for (let dir = parentRel(w.path); !present.has(dir); dir = parentRel(dir)) missing.unshift(dir);
    for (const dir of missing) {
      await run.target.mkdir(joinRel(staging, dir), { mode: FOLDER_MODE, signal: run.signal });
      present.add(dir);
      written.dirs.push({ path: dir, type: "dir", size: 0, mtimeMs: Date.now(), mode: FOLDER_MODE });
    }
    await write(run, joinRel(staging, w.path), w.bytes);
    written.files.push({ path: w.path, type: "file", size: w.bytes.length, mtimeMs: Date.now(), mode: MANIFEST_MODE });
  }
  await checkWritten(run, gen.writes.map((w) => ({ path: joinRel(staging, w.path), bytes: w.bytes })), alg);
  written.record.durationMs = Math.round((prepared.buildMs + performance.now() - t0) * 10) / 10;
  return written;
}

/** A path as the manifest's comment shows it (no JSON quotes inside the XML). */
function shown(endpoint: Endpoint, rel: string): string {
  return JSON.parse(showPath(endpoint, rel)) as string;
}

/** Writes `bytes` to `path` (a staging name). */
function write(run: Run, path: string, bytes: Uint8Array): Promise<void> {
  return writeBytes(run.target, path, bytes, { mode: MANIFEST_MODE, signal: run.signal });
}

/**
 * A manifest is never taken on trust: the files written are hashed where they landed, in one
 * call (a remote's one command; a remote without the hash reads them back), against the bytes meant.
 */
async function checkWritten(run: Run, files: readonly { path: string; bytes: Uint8Array }[], alg: HashAlgorithm): Promise<void> {
  const nearby = (await run.target.capabilities({ signal: run.signal })).hashes.includes(alg);
  const got = nearby ? await run.target.hashFiles(files.map((f) => f.path), alg, { signal: run.signal }) : null;
  const fs = new EndpointMhlFs(run.target, "", { signal: run.signal, entries: [] });
  for (const f of files) {
    const h = createHasher(alg);
    h.update(f.bytes);
    const want = h.digest();
    let have = got?.get(f.path);
    if (got === null) {
      const back = await fs.readFile(`/${f.path}`);
      if (back !== null) {
        const b = createHasher(alg);
        b.update(back);
        have = b.digest();
      }
    }
    if (have !== want) throw new TransferError("VERIFY_FAILED", `the ASC MHL file ${showPath(run.target, f.path)} did not land as written (${alg} ${have ?? "missing"}, expected ${want}); retry the transfer`);
  }
}
