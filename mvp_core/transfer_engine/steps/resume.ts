/**
 * Resuming what an earlier attempt with the same id left: its staging entry and its journal
 * (steps/journal.ts). Only bytes proven equal at both ends are kept: every extent the journal
 * claims, and block by block what lies just past it (written, not yet reported when the fault
 * came), is re-hashed next to the data at the destination and at the source (Endpoint.crcRanges:
 * one remote command per side) and kept where both agree with each other (and with the journal).
 * A file whose source changed since (size, mtime or change stamp) starts over; whatever else the
 * staging holds that this transfer would not produce is removed. The whole-file verification
 * still runs over everything afterwards.
 */
import type { Endpoint, Entry, FileRange, HashAlgorithm } from "../endpoints/endpoint.ts";
import { crc32Hex } from "../hash.ts";
import { joinRel } from "../paths.ts";
import type { Run } from "../run.ts";
import { differsFromScan } from "../source_check.ts";
import { type Extent, coalesce, coveredBytes, wholeCrc } from "./extents.ts";
import { type Journal, type JournalFile, readJournal } from "./journal.ts";
import type { Manifest } from "./scan.ts";

/** Bytes per probe block past a confirmed extent. */
const PROBE_BLOCK = 1 << 20;

/** What a resume keeps. */
export interface Resumed {
  /** Files already complete in the staging tree: their CRC-32 (as the source's), by entry path. */
  whole: Map<string, number>;
  /** Extents kept of files still missing some, by entry path. */
  partial: Map<string, Extent[]>;
  /** Folders already in the staging tree (relative to it). */
  dirs: Set<string>;
  bytes: number;
  /**
   * What the partly kept files already take in the staging: their size there, written in part
   * (ranges kept, and bytes past them that could not be proven) — the rest of each is written in
   * place, so only the difference needs free space.
   */
  stagedBytes: number;
}

/** One range asked of both ends, and what keeping it means. */
interface Check {
  e: Entry;
  offset: number;
  length: number;
  /** The journal's CRC-32 for a confirmed extent; null for a probe block (kept while its run of blocks agrees). */
  claimed: number | null;
  /** Probe blocks of one frontier share a run: the first that differs ends it. */
  run: number;
}

/**
 * Resumes from the staging entry `staging` when a journal of this transfer is there; null when
 * there is nothing to keep (the staging entry and journal are then gone and the transfer starts
 * over). `journal` is seeded with what was kept.
 */
export async function resumeStaging(run: Run, send: Manifest, sourcePath: string, staging: string, journal: Journal): Promise<Resumed | null> {
  const { source, target, signal } = run;
  const data = await readJournal(run);
  const tree = data === null ? null : await stagingTree(target, staging, send.kind, signal);
  if (data === null || tree === null || source.crcRanges === undefined || target.crcRanges === undefined) return startOver(run, staging);
  const checks: Check[] = [];
  let runs = 0;
  const nextRun = (): number => runs++;
  for (const e of send.files) {
    const j = data.files[e.path];
    const t = tree.get(e.path);
    if (j === undefined || t?.type !== "file" || t.size > e.size || differsFromScan(e, j) !== null) continue;
    checks.push(...planChecks(e, j, t.size, run.opts.resumeProbeBytes, nextRun));
  }
  const at = (base: string) => checks.map((c): FileRange => ({ path: joinRel(base, c.e.path), offset: c.offset, length: c.length }));
  const [there, here] = await Promise.all([target.crcRanges(at(staging), { signal }), source.crcRanges(at(sourcePath), { signal })]);
  const kept = new Map<string, { e: Entry; extents: Extent[] }>();
  const brokenRuns = new Set<number>();
  checks.forEach((c, i) => {
    const [t, s] = [there[i], here[i]];
    const agree = t !== null && t !== undefined && t === s && (c.claimed === null || c.claimed === s);
    if (c.claimed === null && (!agree || brokenRuns.has(c.run))) {
      brokenRuns.add(c.run);
      return;
    }
    if (!agree) return;
    const k = kept.get(c.e.path) ?? { e: c.e, extents: [] };
    k.extents.push({ offset: c.offset, length: c.length, crc: s as number });
    kept.set(c.e.path, k);
  });
  const r: Resumed = { whole: new Map(), partial: new Map(), dirs: new Set(), bytes: 0, stagedBytes: 0 };
  for (const { e, extents } of kept.values()) {
    const merged = coalesce(extents);
    const whole = wholeCrc(merged, e.size);
    if (whole !== null) r.whole.set(e.path, whole);
    else {
      r.partial.set(e.path, merged);
      r.stagedBytes += tree.get(e.path)?.size ?? 0;
    }
    r.bytes += coveredBytes(merged);
    journal.keep(e, merged);
  }
  if (r.whole.size === 0 && r.partial.size === 0) return startOver(run, staging);
  await prune(run, send, staging, tree, r);
  run.emit({
    kind: "resumed",
    message: `resumed from an earlier attempt: ${r.whole.size} files complete and ${r.partial.size} in part were kept (${r.bytes} bytes, re-checked at both ends); only the rest travels`,
    data: { files: r.whole.size, partialFiles: r.partial.size, bytes: r.bytes, checked: checks.length },
  });
  return r;
}

/**
 * What to re-hash of one file: every extent the journal claims, and the blocks just past each
 * one and at each range in flight, as far as the staging file reaches.
 */
function planChecks(e: Entry, j: JournalFile, stagedSize: number, probeBytes: number, nextRun: () => number): Check[] {
  const end = Math.min(e.size, stagedSize);
  const claims = coalesce(j.extents.map(([offset, length, crc]) => ({ offset, length, crc: parseInt(crc, 16) }))).filter((x) => x.offset + x.length <= end);
  const out: Check[] = claims.map((x) => ({ e, offset: x.offset, length: x.length, claimed: x.crc, run: -1 }));
  const starts = claims.map((x) => x.offset).sort((a, b) => a - b);
  const inside = (x: number): boolean => claims.some((c) => x >= c.offset && x < c.offset + c.length);
  const frontiers = [...new Set([...claims.map((x) => x.offset + x.length), ...j.inflight.map(([o]) => o)].filter((x) => !inside(x)))].sort((a, b) => a - b);
  for (const [i, from] of frontiers.entries()) {
    // Up to the next claim or the next frontier: no byte is asked twice.
    const stop = Math.min(end, from + probeBytes, starts.find((s) => s > from) ?? Infinity, frontiers[i + 1] ?? Infinity);
    const runNo = nextRun();
    for (let o = from; o < stop; o += PROBE_BLOCK) out.push({ e, offset: o, length: Math.min(PROBE_BLOCK, stop - o), claimed: null, run: runNo });
  }
  return out;
}

/** The staging entries by path relative to the staging entry ("" for a single file); null when it is not what this transfer would build. */
async function stagingTree(target: Endpoint, staging: string, kind: Manifest["kind"], signal?: AbortSignal): Promise<Map<string, Entry> | null> {
  const st = await target.stat(staging, { signal });
  if (st === null || (kind === "file") !== (st.type === "file") || st.type === "symlink") return null;
  const tree = new Map<string, Entry>();
  if (kind === "file") tree.set("", { ...st, path: "" });
  else for await (const e of target.walk(staging, { signal })) tree.set(e.path, e);
  return tree;
}

/**
 * Removes from the staging tree what this transfer would not leave there: entries the source no
 * longer has, entries of another type, links (made again), files longer than the source's (ranges
 * never truncate) and files of which nothing was kept. Folders that stay are reported in `r.dirs`.
 */
async function prune(run: Run, send: Manifest, staging: string, tree: Map<string, Entry>, r: Resumed): Promise<void> {
  if (send.kind === "file") return; // the file itself: kept extents fit it, checked above
  const want = new Map<string, Entry>([...send.files, ...send.dirs].map((e) => [e.path, e]));
  const gone: string[] = [];
  for (const [p, e] of [...tree].sort(([a], [b]) => (a < b ? -1 : 1))) {
    if (gone.some((g) => p.startsWith(`${g}/`))) continue;
    const w = want.get(p);
    // A file of which nothing was kept goes too: it is sent again, and a zip stream unpacks only into new files.
    const keep = w !== undefined && w.type === e.type && e.type !== "symlink" && (e.type !== "file" || (e.size <= w.size && (r.whole.has(p) || r.partial.has(p))));
    if (keep) {
      if (e.type === "dir") r.dirs.add(p);
      continue;
    }
    gone.push(p);
    await run.target.remove(joinRel(staging, p), { recursive: e.type === "dir", signal: run.signal });
  }
}

/** Nothing worth keeping: the staging entry and the journal go, the transfer starts over. */
async function startOver(run: Run, staging: string): Promise<null> {
  for (const p of [run.names.journal, run.names.journalNew, staging]) await run.target.remove(p, { recursive: true, signal: run.signal });
  run.emit({ kind: "staging_recovered", message: "removed what an earlier attempt with this id left behind (nothing of it could be kept)", data: { staging } });
  return null;
}

/**
 * What travels of `send` (the source `m`, or what of it differs from the target): all but the
 * files a resume found complete, and how the plan must treat it.
 */
export function travelling(m: Manifest, send: Manifest, resumed: Resumed | null, alreadyThere: number): { list: Manifest; opts: { alreadyThere: number; partial?: ReadonlyMap<string, unknown>; wholeFolder: boolean } } {
  const list = withoutFiles(send, resumed?.whole);
  return { list, opts: { alreadyThere, partial: resumed?.partial, wholeFolder: list === m && (resumed?.partial.size ?? 0) === 0 } };
}

/** `m` without the files in `done` (complete in the staging entry already). */
function withoutFiles(m: Manifest, done: ReadonlyMap<string, unknown> | undefined): Manifest {
  if (done === undefined || done.size === 0) return m;
  const files = m.files.filter((f) => !done.has(f.path));
  return { ...m, files, bytes: files.reduce((n, f) => n + f.size, 0) };
}

/** The source hashes of files a resume found complete: their CRC-32 as re-checked, or (another algorithm) asked of the source. */
export async function resumedHashes(run: Run, resumed: Resumed, sourcePath: string, alg: HashAlgorithm | null, hashes: Map<string, string>): Promise<void> {
  if (alg === null) return;
  if (alg === "crc32") {
    for (const [path, crc] of resumed.whole) hashes.set(path, crc32Hex(crc));
    return;
  }
  const paths = [...resumed.whole.keys()];
  for (let i = 0; i < paths.length; i += 1000) {
    const batch = paths.slice(i, i + 1000);
    const got = await run.source.hashFiles(batch.map((p) => joinRel(sourcePath, p)), alg, { signal: run.signal });
    for (const p of batch) {
      const h = got.get(joinRel(sourcePath, p));
      if (h !== undefined) hashes.set(p, h);
    }
  }
}
