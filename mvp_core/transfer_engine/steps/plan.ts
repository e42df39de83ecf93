/**
 * Step 2, plan: picks the strategy and the hash, splits the zip archives and checks free space.
 * `auto` sends a folder as zip when it holds many small files (per-file cost dominates: one open,
 * create and close per file on each side, plus a round trip per file on a remote endpoint), and
 * file by file otherwise. A move within one file system, where the target can rename from the
 * source, is a rename (see docs/engine.md).
 */
import type { Capabilities, Entry, HashAlgorithm } from "../endpoints/endpoint.ts";
import { TransferError } from "../errors.ts";
import { LOCAL_HASHES, MHL_HASH_PREFERENCE, isMhlHash, pickHash } from "../hash.ts";
import { parentRel } from "../paths.ts";
import type { Run } from "../run.ts";
import type { StatPrefetch } from "./prefetch.ts";
import type { Manifest } from "./scan.ts";
import { sameFileSystem } from "./check.ts";

/** What the transfer step will do. */
export interface Plan {
  strategy: "direct" | "zip" | "rename";
  reason: string;
  /** Null with size-only verification. */
  hash: HashAlgorithm | null;
  /** True when the destination cannot hash next to the data and the engine reads files back itself. */
  hashByReadBack: boolean;
  /** Zip: the archives' contents, in order. */
  archives: Entry[][];
  /** Files sent one by one (all of them with direct; the too-large ones with zip). */
  directFiles: Entry[];
  /** Zip: the source endpoint packs the (single) archive itself. */
  packedBySource: boolean;
  /** Bytes the destination needs free before anything is written. */
  requiredBytes: number;
  /** Streams at once for files sent as ranges (copy_ranged.ts); 1 when none is that big or the endpoints gain nothing. */
  streams: number;
  /** Zip toward a streaming unpacker: archive parts sent at once (one unpacker each). */
  zipStreams: number;
  /** Why that many (for the event log). */
  streamsWhy: string;
}

const BLOCK = 4096;
const roundUp = (n: number): number => Math.ceil(n / BLOCK) * BLOCK;
/** Local header + data descriptor + central directory record, without the name. */
const ZIP_ENTRY_OVERHEAD = 30 + 16 + 46;
/** Archive bytes per extra unpacker stream: at 100 ms a stream moves ~20 MB/s and takes ~0.5 s to open. */
const ZIP_BYTES_PER_STREAM = 32 << 20;

/**
 * Tells the endpoints, as soon as the scan knows the bytes, how many streams (one per
 * ZIP_BYTES_PER_STREAM) may follow, so an SSH endpoint's extra connections open during the checks
 * instead of when a stream waits for one (a handshake is 70-170 ms here even at 0 ms).
 */
export function warmStreams(run: Run, m: Manifest): void {
  const streams = Math.ceil(m.bytes / ZIP_BYTES_PER_STREAM);
  if (streams < 2) return;
  run.source.warmStreams?.(streams);
  run.target.warmStreams?.(streams);
}

/**
 * Decides how to move `m`; `allowRename` is false after a rename attempt found two devices.
 * `early` may hold the free space, asked at the start beside the target's stats; `alreadyThere`
 * bytes of `m`'s files are in the staging entry already (a resume's partial files, by path in
 * `partial`: they travel direct, into the file that holds their kept ranges, never in an archive).
 * `wholeFolder`: `m` lists every file of the source folder (not a sync's, a retry's or a resume's
 * share of it), so the source may pack the folder itself.
 */
export async function plan(
  run: Run, m: Manifest, sourcePath: string, targetPath: string,
  { allowRename = true, early, alreadyThere = 0, partial, wholeFolder = true }: { allowRename?: boolean; early?: StatPrefetch; alreadyThere?: number; partial?: ReadonlyMap<string, unknown>; wholeFolder?: boolean } = {},
): Promise<Plan> {
  const { spec, source, target, opts } = run;
  if (allowRename && canRename(run)) {
    return { strategy: "rename", reason: "a move within one file system: an atomic rename", hash: null, hashByReadBack: false, archives: [], directFiles: [], packedBySource: false, requiredBytes: 0, streams: 1, streamsWhy: "a rename moves no bytes", zipStreams: 1 };
  }
  const [srcCaps, dstCaps] = await Promise.all([source.capabilities({ signal: run.signal }), target.capabilities({ signal: run.signal })]);

  let hash: HashAlgorithm | null = null;
  let hashByReadBack = false;
  if (spec.verify === "checksum") ({ hash, hashByReadBack } = chooseHash(run, srcCaps, dstCaps));

  // Toward a target that unpacks a stream as it arrives, a file up to zipMaxEntryBytes costs no
  // extra write and read there, only its round trips if sent alone: an image sequence of 1 MiB
  // frames at 100 ms went 2.8× faster zipped (bench:wan, docs/ssh.md). Elsewhere only small files count.
  const packLimit = target.unzipStream ? opts.zipMaxEntryBytes : opts.zipSmallFileBytes;
  const smallFiles = m.files.filter((f) => f.size < packLimit).length;
  let strategy: "direct" | "zip";
  let reason: string;
  if (spec.strategy === "direct") [strategy, reason] = ["direct", "requested"];
  else if (spec.strategy === "zip") [strategy, reason] = ["zip", "requested"];
  else if (m.kind === "dir" && smallFiles >= zipFrom(run)) {
    [strategy, reason] = ["zip", `${smallFiles} files under ${packLimit} bytes (threshold ${zipFrom(run)})`];
  } else [strategy, reason] = ["direct", `${smallFiles} small files (zip from ${zipFrom(run)})`];

  if (strategy === "zip" && m.kind === "file") {
    [strategy, reason] = ["direct", "a single file gains nothing from an archive"];
    run.emit({ kind: "fallback", message: "zip requested for a single file; sending it directly" });
  }
  if (strategy === "zip" && (!dstCaps.unzip || target.unzip === undefined)) {
    [strategy, reason] = ["direct", `${target.label} cannot unpack archives`];
    run.emit({ kind: "fallback", message: `zip planned but ${target.label} cannot unpack archives; sending files directly` });
  }

  let archives: Entry[][] = [];
  let directFiles = m.files;
  let packedBySource = false;
  if (strategy === "zip") {
    const packable = partial === undefined ? m.files : m.files.filter((f) => !partial.has(f.path));
    ({ archives, directFiles } = splitArchives(packable, run));
    if (packable !== m.files) directFiles = [...directFiles, ...m.files.filter((f) => partial!.has(f.path))];
    // A source packs its whole folder: only when that is exactly what travels.
    if (wholeFolder && srcCaps.packZip && source.packZip !== undefined) {
      // The source's own hashes stand in for hashing while reading, so it must offer the chosen one.
      packedBySource = archives.length === 1 && directFiles.length === 0 && (hash === null || srcCaps.hashes.includes(hash));
      if (!packedBySource) run.emit({ kind: "fallback", message: "the source could pack the folder itself, but this one needs several archives, direct files or a hash the source lacks; packing through reads instead" });
    }
  }

  const dataBytes = m.files.reduce((n, f) => n + roundUp(f.size), 0) + m.dirs.length * BLOCK;
  const archiveBytes = archives.reduce((max, a) => Math.max(max, a.reduce((n, f) => n + f.size + ZIP_ENTRY_OVERHEAD + 2 * Buffer.byteLength(f.path), 22)), 0);
  // A resumed transfer's staging already holds `alreadyThere` bytes of these files.
  const requiredBytes = Math.max(0, dataBytes - alreadyThere) + roundUp(archiveBytes) + opts.spaceMarginBytes;
  let space = await (early ? early.space(parentRel(targetPath)) : target.space(parentRel(targetPath), { signal: run.signal }));
  // The early answer predates the scan: ask again before refusing on it.
  if (early && space.freeBytes < requiredBytes) space = await target.space(parentRel(targetPath), { signal: run.signal });
  if (space.freeBytes < requiredBytes) {
    throw new TransferError("NO_SPACE", `not enough free space at ${target.label}: need ${fmtBytes(requiredBytes)}, ${fmtBytes(space.freeBytes)} free; free some space or choose another target`, {
      details: { requiredBytes, freeBytes: space.freeBytes },
    });
  }
  const ranged = directFiles.some((f) => f.size >= opts.rangeMinFileBytes);
  const streaming = strategy === "zip" && target.unzipStream !== undefined && !packedBySource;
  const link = ranged || streaming ? await streamsFor(run) : null;
  const { streams, why: streamsWhy } = link !== null && ranged ? link : { streams: 1, why: "no file big enough for ranges" };
  // Archive parts as many as the link carries streams well (a window per round trip each), at least
  // zipStreams — but each part must carry enough to pay for its own unpacker (and maybe connection):
  // 2,000 × 4 KiB at 100 ms took 6.0 s in 8 parts against 4.3 s in 2.
  const zipBytes = archives.reduce((n, a) => n + a.reduce((k, f) => k + f.size, 0), 0);
  const zipStreams = streaming ? Math.max(opts.zipStreams, Math.min(link!.streams, Math.ceil(zipBytes / ZIP_BYTES_PER_STREAM))) : opts.zipStreams;
  const why = [reason, ...(streams > 1 ? [`big files as ranges over ${streams} streams`] : []), ...(streaming && zipStreams > opts.zipStreams ? [`archives in ${zipStreams} streams`] : [])];
  return { strategy, reason: why.join("; "), hash, hashByReadBack, archives, directFiles, packedBySource, requiredBytes, streams, streamsWhy, zipStreams };
}

/**
 * Streams at once for ranges: what both endpoints carry (streamCapacity; an endpoint without it,
 * a local disk, gains nothing from several and limits nothing), at most maxStreams.
 */
export async function streamsFor(run: Run): Promise<{ streams: number; why: string }> {
  const caps = await Promise.all([run.source.streamCapacity?.({ signal: run.signal }), run.target.streamCapacity?.({ signal: run.signal })]);
  let best = { streams: run.opts.maxStreams, why: `at most ${run.opts.maxStreams} (maxStreams)` };
  for (const c of caps) if (c !== undefined && c.streams < best.streams) best = { streams: Math.max(1, c.streams), why: c.why };
  if (caps.every((c) => c === undefined)) best = { streams: 1, why: "two local endpoints: one stream" };
  return best;
}

/**
 * The verification hash. An explicit `hash` is used as asked (read back from a target that cannot
 * compute it). `auto`: the format the source's ASC MHL history records, when the target computes
 * it next to the data (one read of the source then verifies it against its history and the copy);
 * else the first in the target's own list (cheapest there first; with an ASC MHL, only its
 * formats) that the source computes next to the data too — the source's list counts because a
 * source that packs its own folder also hashes it; else one the target computes, the source being
 * hashed here as it streams; else read back and hashed here (xxh3, or CRC-32 without an MHL).
 */
function chooseHash(run: Run, srcCaps: Capabilities, dstCaps: Capabilities): { hash: HashAlgorithm; hashByReadBack: boolean } {
  const { spec } = run;
  const mhl = run.custody !== null;
  if (spec.hash !== "auto") {
    const readBack = !dstCaps.hashes.includes(spec.hash);
    if (readBack) run.emit({ kind: "fallback", message: `${run.target.label} cannot compute ${spec.hash} next to the data; reading the destination back to hash it here`, data: { target: dstCaps.hashes } });
    return { hash: spec.hash, hashByReadBack: readBack };
  }
  const recorded = run.custody?.recorded ?? null;
  if (recorded !== null && dstCaps.hashes.includes(recorded)) return { hash: recorded, hashByReadBack: false };
  const preference = mhl ? dstCaps.hashes.filter(isMhlHash) : dstCaps.hashes;
  const computable = srcCaps.hashes.filter((h) => LOCAL_HASHES.includes(h));
  const hash = pickHash(computable.length > 0 ? computable : LOCAL_HASHES, dstCaps.hashes, preference) ?? pickHash(LOCAL_HASHES, dstCaps.hashes, preference);
  if (hash !== null) return { hash, hashByReadBack: false };
  const fallback = pickHash(LOCAL_HASHES, LOCAL_HASHES, mhl ? MHL_HASH_PREFERENCE : LOCAL_HASHES) as HashAlgorithm;
  run.emit({ kind: "fallback", message: `no hash both ends compute; reading the destination back to hash it with ${fallback}`, data: { source: srcCaps.hashes, target: dstCaps.hashes } });
  return { hash: fallback, hashByReadBack: true };
}

function canRename(run: Run): boolean {
  const { spec, target, locations } = run;
  // With an ASC MHL every file is hashed and recorded: a rename would move bytes nobody read.
  if (spec.mode !== "move" || spec.strategy !== "auto" || target.renameFrom === undefined || run.custody !== null) return false;
  return locations !== null && sameFileSystem(locations);
}

/**
 * How many small files make `auto` choose zip: where the target unpacks a stream as it arrives
 * (no archive lands, the unpacker reports each file's CRC-32 and sets its attributes), one archive
 * costs one remote command where each file sent alone costs a few round trips, so a handful is enough.
 */
function zipFrom(run: Run): number {
  return run.target.unzipStream ? Math.min(run.opts.zipMinSmallFiles, run.opts.zipMinSmallFilesStreaming) : run.opts.zipMinSmallFiles;
}

/** Groups files into archives within the entry/byte limits; files too large for plain zip go direct. */
export function splitArchives(files: Entry[], run: Run): { archives: Entry[][]; directFiles: Entry[] } {
  const { zipMaxEntries, zipMaxArchiveBytes, zipMaxEntryBytes } = run.opts;
  const archives: Entry[][] = [];
  const directFiles: Entry[] = [];
  let cur: Entry[] = [];
  let curBytes = 22;
  for (const f of files) {
    const cost = f.size + ZIP_ENTRY_OVERHEAD + 2 * Buffer.byteLength(f.path);
    if (f.size >= zipMaxEntryBytes || cost + 22 > zipMaxArchiveBytes) {
      directFiles.push(f);
      continue;
    }
    if (cur.length >= zipMaxEntries || curBytes + cost > zipMaxArchiveBytes) {
      archives.push(cur);
      cur = [];
      curBytes = 22;
    }
    cur.push(f);
    curBytes += cost;
  }
  if (cur.length > 0) archives.push(cur);
  return { archives, directFiles };
}

/** "1.5 GiB"-style sizes for messages. */
export function fmtBytes(n: number): string {
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) {
    n /= 1024;
    i++;
  }
  return `${i === 0 ? n : n.toFixed(1)} ${units[i]}`;
}
