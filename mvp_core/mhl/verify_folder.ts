/**
 * ASC MHL verify (spec 5.6.4) and diff (5.6.3) of a folder against its history: every file the
 * history knows is hashed in a recorded format and compared; files on disk the history does not
 * know are new, recorded files not on disk are missing. With `hashFormat`, every file is also
 * hashed in that format in the same read, ready for buildGeneration (a verification generation).
 */
import { MhlError } from "./errors.ts";
import type { FailedHash } from "./file_actions.ts";
import type { MhlHashFormat } from "./hash_format.ts";
import { type HistoryProblem, type MhlHistory, allProblems, closestHistory, ignorePatterns, readHistory } from "./history.ts";
import { IgnoreSpec } from "./ignore.ts";
import { type MhlFs, joinFs } from "./io.ts";
import { VERIFY_PREFERENCE, expectedHash, knownFiles } from "./known_files.ts";
import { DEFAULT_IGNORE } from "./naming.ts";
import { type ScannedFile, scanTree } from "./scan.ts";

/** Options of verifyFolder. */
export interface VerifyOptions {
  /** An already read history of the same folder (else it is read). */
  history?: MhlHistory;
  /** Formats to verify with, first available wins (default: fastest first). */
  preference?: readonly MhlHashFormat[];
  /** Also hash every file in this format, for a new generation (see `files`). */
  hashFormat?: MhlHashFormat;
  /** Files hashed at once (a remote MhlFs benefits from more). */
  concurrency?: number;
}

/** A file as verifyFolder saw it, with every digest it computed. */
export interface VerifiedFile extends ScannedFile {
  hashes: Partial<Record<MhlHashFormat, string>>;
}

/** The outcome of verifyFolder; `ok` only when nothing mismatched, went missing, appeared or is damaged. */
export interface FolderVerification {
  ok: boolean;
  verified: { path: string; format: MhlHashFormat }[];
  mismatched: FailedHash[];
  missing: string[];
  new: string[];
  historyProblems: HistoryProblem[];
  /** Every file hashed, with its digests (all files when hashFormat was given). */
  files: VerifiedFile[];
  history: MhlHistory;
}

async function pool<T>(items: readonly T[], n: number, fn: (t: T) => Promise<void>): Promise<void> {
  let next = 0;
  const run = async () => {
    while (next < items.length) await fn(items[next++] as T);
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(n, items.length)) }, run));
}

/** Verifies the folder at `root` (absolute) against its ASC MHL history; throws BAD_INPUT when it has none. */
export async function verifyFolder(fs: MhlFs, root: string, opts: VerifyOptions = {}): Promise<FolderVerification> {
  const scan = await scanTree(fs, root);
  const history = opts.history ?? (await readHistory(fs, root, scan));
  if (history === null) throw new MhlError("BAD_INPUT", `${root} has no ascmhl history to verify against`, { root });
  const known = knownFiles(history);
  const specs = new Map<MhlHistory, IgnoreSpec>();
  const ignored = (path: string, isDir: boolean) => {
    const { history: h, rel } = closestHistory(history, path);
    let s = specs.get(h);
    if (s === undefined) specs.set(h, (s = new IgnoreSpec([...ignorePatterns(h), ...DEFAULT_IGNORE])));
    return s.ignores(rel, isDir);
  };
  const out: FolderVerification = { ok: false, verified: [], mismatched: [], missing: [], new: [], historyProblems: allProblems(history), files: [], history };
  const onDisk = new Set<string>();
  const todo = scan.files.filter((f) => !ignored(f.path, false));
  await pool(todo, opts.concurrency ?? 4, async (f) => {
    onDisk.add(f.path);
    const k = known.get(f.path);
    const expected = k === undefined ? null : expectedHash(k, opts.preference ?? VERIFY_PREFERENCE);
    if (k === undefined || expected === null) out.new.push(f.path);
    // The recorded format verifies; hashFormat's digest (same read) feeds a new generation.
    const formats = new Set<MhlHashFormat>(expected === null ? [] : [expected.format]);
    if (opts.hashFormat !== undefined) formats.add(opts.hashFormat);
    if (formats.size === 0) return;
    const hashes = await fs.hashFile(joinFs(root, f.path), [...formats]);
    out.files.push({ ...f, hashes });
    if (expected === null) return;
    const actual = hashes[expected.format];
    if (actual === expected.value) out.verified.push({ path: f.path, format: expected.format });
    else out.mismatched.push({ path: f.path, format: expected.format, expected: expected.value, actual: actual ?? "" });
  });
  for (const p of known.keys()) if (!onDisk.has(p) && !ignored(p, false)) out.missing.push(p);
  for (const list of [out.new, out.missing]) list.sort();
  out.verified.sort((a, b) => (a.path < b.path ? -1 : 1));
  out.mismatched.sort((a, b) => (a.path < b.path ? -1 : 1));
  out.files.sort((a, b) => (a.path < b.path ? -1 : 1));
  out.ok = out.mismatched.length === 0 && out.missing.length === 0 && out.new.length === 0 && out.historyProblems.length === 0;
  return out;
}
