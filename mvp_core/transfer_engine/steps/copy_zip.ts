/**
 * Step 3 (zip strategy): many small files travel as stored (uncompressed) zip archives. Each archive
 * is packed with fflate's streaming Zip (stored entries) while the source files are read (and
 * hashed). A destination that can unpack a stream (`unzipStream`, an SSH host with perl) unpacks
 * it as it arrives, so no archive ever lands there; otherwise the archive is streamed into
 * `.ketter-<id>.zips/<n>.zip`, unpacked into the staging tree (central directory + CRC-32 per
 * entry) and deleted before the next archive starts, so memory stays bounded and the destination
 * never holds two archives. Nothing is written at the source: packing streams straight from its files.
 */
import type { AsyncFlateStreamHandler, ZipInputFile } from "fflate";
import type { Entry, FileWriter, HashAlgorithm } from "../endpoints/endpoint.ts";
import { TransferError } from "../errors.ts";
import { crc32Hex, createHasher } from "../hash.ts";
import { throwIfCancelled } from "../cancel.ts";
import { joinRel } from "../paths.ts";
import type { Run } from "../run.ts";
import type { Journal } from "./journal.ts";
import { assertUnchanged, sourceChanged } from "../source_check.ts";
import { maybeYield } from "../yield.ts";
import { collectGarbageEvery } from "../gc.ts";

/** fflate refuses DOS dates before 1980 (and the format ends in 2107). */
const ZIP_MIN_MS = Date.UTC(1980, 0, 2);
const ZIP_MAX_MS = Date.UTC(2107, 11, 30);

/** Clamps an mtime into the DOS date range zip can store (the real mtime is restored from the scan). */
export function clampZipMtime(ms: number): Date {
  return new Date(Math.min(Math.max(ms, ZIP_MIN_MS), ZIP_MAX_MS));
}

/**
 * Sends `archives` and unpacks them into the staging tree; returns how many archives were sent and
 * whether the unpacking also set the files' modes and mtimes (a streaming unpacker does).
 * With `packedBySource` the source endpoint packs its folder itself (one archive, a remote packing
 * next to its data); the source hashes are then asked of the source after the archive arrived.
 * `dirsMade` settles once the staging folders exist: unpackers may open before, write only after.
 * `streams`: archive parts sent at once toward a streaming unpacker (Plan.zipStreams).
 */
export async function transferZip(run: Run, archives: readonly Entry[][], sourcePath: string, stagingPath: string, alg: HashAlgorithm | null, hashes: Map<string, string>,
  { packedBySource = false, dirsMade = Promise.resolve(), journal, streams = run.opts.zipStreams }: { packedBySource?: boolean; dirsMade?: Promise<void>; journal?: Journal; streams?: number } = {}): Promise<{ archives: number; attributesSet: boolean }> {
  const { target } = run;
  if (archives.length === 0) return { archives: 0, attributesSet: false };
  const unzipStream = target.unzipStream?.bind(target);
  if (unzipStream !== undefined && !packedBySource) {
    // Creating thousands of files is system-call bound at the destination: each archive is split
    // into contiguous parts (mostly different folders) streamed at once, one unpacker each.
    for (const [i, batch] of archives.entries()) {
      const parts = splitContiguous(batch, streams);
      await Promise.all(parts.map(async (part) => {
        const w = await unzipStream(stagingPath, part.map((e) => ({ size: e.size, mode: e.mode, mtimeMs: e.mtimeMs })), { signal: run.signal });
        try {
          await dirsMade;
          const crcs = await packArchive(run, part, sourcePath, w, alg, hashes);
          await w.close();
          // Unpacked and checked: a retry after a fault later on keeps these files.
          for (const [k, e] of part.entries()) journal?.fileDone(e, crcs[k]!);
        } catch (err) {
          await w.abort();
          throw err;
        }
      }));
      run.emit({ kind: "archive_done", message: `archive ${i + 1}/${archives.length} unpacked as it arrived (${batch.length} files in ${parts.length} streams)`, data: { index: i, files: batch.length, streams: parts.length } });
    }
    return { archives: archives.length, attributesSet: true };
  }
  const unzip = target.unzip?.bind(target);
  if (unzip === undefined) throw new TransferError("UNSUPPORTED", `${target.label} cannot unpack archives`);
  await dirsMade;
  await target.mkdir(run.names.zips, { signal: run.signal, mode: 0o700 });
  try {
    for (const [i, batch] of archives.entries()) {
      const archive = joinRel(run.names.zips, `${i}.zip`);
      // A source that packs its folder also hashes it, next to the data, while the archive travels
      // (one remote command; after the unpack it had cost its whole duration again).
      const sourceHashes = packedBySource && alg !== null ? run.source.hashFiles(batch.map((e) => joinRel(sourcePath, e.path)), alg, { signal: run.signal }) : null;
      sourceHashes?.catch(() => undefined); // awaited below unless the archive fails first
      const w = await target.openWrite(archive, { signal: run.signal, mode: 0o600 });
      try {
        // Not journaled: these files get their modes and mtimes only after the whole transfer (applyAttributes).
        if (packedBySource) await copyPacked(run, sourcePath, w, batch);
        else await packArchive(run, batch, sourcePath, w, alg, hashes);
        await w.close();
      } catch (err) {
        await w.abort();
        throw err;
      }
      throwIfCancelled(run.signal);
      await unzip(archive, stagingPath, { signal: run.signal });
      await target.remove(archive);
      if (sourceHashes !== null) {
        const got = await sourceHashes;
        for (const e of batch) hashes.set(e.path, got.get(joinRel(sourcePath, e.path)) ?? "");
      }
      run.emit({ kind: "archive_done", message: `archive ${i + 1}/${archives.length} unpacked (${batch.length} files)`, data: { index: i, files: batch.length } });
    }
  } finally {
    await target.remove(run.names.zips, { recursive: true });
  }
  return { archives: archives.length, attributesSet: false };
}

/** `items` cut into at most `n` contiguous, near-equal parts (none empty). */
function splitContiguous<T>(items: readonly T[], n: number): T[][] {
  const k = Math.max(1, Math.min(n, items.length));
  const parts: T[][] = [];
  for (let i = 0; i < k; i++) parts.push(items.slice(Math.floor((i * items.length) / k), Math.floor(((i + 1) * items.length) / k)));
  return parts;
}

/**
 * One stored (uncompressed) entry, fed to fflate's Zip through its documented ZipInputFile
 * interface. fflate's own ZipPassThrough computes the CRC-32 in JavaScript, which took ~1.6 ms per
 * MiB here (a tenth of a 10,000-file push's CPU); Bun's native CRC-32 costs ~0.1 ms.
 */
class StoredEntry implements ZipInputFile {
  size = 0;
  crc = 0;
  readonly compression = 0;
  mtime?: Date;
  os?: number;
  attrs?: number;
  ondata?: AsyncFlateStreamHandler;
  private running = 0;

  constructor(readonly filename: string) {}

  push(chunk: Uint8Array, final = false): void {
    this.running = Bun.hash.crc32(chunk, this.running);
    this.size += chunk.length;
    if (final) this.crc = this.running;
    this.ondata?.(null, chunk as Uint8Array<ArrayBuffer>, final);
  }
}

/** Collects fflate's many tiny output chunks and writes them in large blocks. */
class BlockSink {
  private parts: Uint8Array[] = [];
  private size = 0;

  constructor(
    private readonly w: FileWriter,
    readonly blockBytes: number,
  ) {}

  push(chunk: Uint8Array): void {
    // fflate may reuse nothing it hands out, but our own read buffers are handed to it: copy to be safe.
    this.parts.push(chunk.length < 65536 ? chunk.slice() : chunk);
    this.size += chunk.length;
  }

  get pending(): number {
    return this.size;
  }

  async flush(): Promise<void> {
    if (this.size === 0) return;
    const block = this.parts.length === 1 ? (this.parts[0] as Uint8Array) : Buffer.concat(this.parts, this.size);
    this.parts = [];
    this.size = 0;
    await this.w.write(block);
  }
}

/** Packs `batch` into `w`; each entry's CRC-32 (of the bytes read), in batch order. */
async function packArchive(run: Run, batch: readonly Entry[], sourcePath: string, w: FileWriter, alg: HashAlgorithm | null, hashes: Map<string, string>): Promise<number[]> {
  const { source, signal } = run;
  // Loaded on first use: the CLI starts faster for direct transfers.
  const { Zip } = await import("fflate");
  const sink = new BlockSink(w, run.opts.zipWriteBufferBytes);
  let zipError: Error | null = null;
  let ended = false;
  const zip = new Zip((err, chunk, final) => {
    if (err) zipError = err;
    else sink.push(chunk);
    if (final) ended = true;
  });
  // Thousands of tiny files: read each in one call where the source offers it, not as a stream.
  const readWhole = source.readWhole?.bind(source);
  const crcs: number[] = [];
  for (const e of batch) {
    throwIfCancelled(signal);
    const entry = new StoredEntry(e.path);
    entry.mtime = clampZipMtime(e.mtimeMs);
    // Unix origin: Info-ZIP unzip then takes names as bytes (UTF-8) instead of converting them from
    // the MS-DOS code page, which mangled non-ASCII names on an SSH target.
    entry.os = 3;
    entry.attrs = (0o100000 | (e.mode & 0o777)) << 16;
    zip.add(entry);
    // The entry computes the source bytes' CRC-32 for the archive anyway: no second pass for it.
    const h = alg === null || alg === "crc32" ? null : createHasher(alg);
    if (readWhole !== undefined && e.size <= run.opts.wholeFileBytes) {
      await run.throttle?.(e.size);
      const data = await readWhole(joinRel(sourcePath, e.path), e, { signal });
      collectGarbageEvery(data.length); // a fresh buffer per file, garbage once sent
      h?.update(data);
      entry.push(data, true);
      run.progress.add(1, e.size);
    } else {
      await streamEntry(run, e, joinRel(sourcePath, e.path), entry, h === null ? null : (c) => h.update(c), sink);
      run.progress.add(1, 0);
    }
    if (zipError) throw zipError;
    crcs.push(entry.crc >>> 0);
    if (alg === "crc32") hashes.set(e.path, crc32Hex(entry.crc));
    else if (h !== null) hashes.set(e.path, h.digest());
    if (sink.pending >= sink.blockBytes) await sink.flush();
    await maybeYield();
  }
  zip.end();
  if (zipError) throw zipError;
  if (!ended) throw new TransferError("IO_ERROR", "zip stream did not finish");
  await sink.flush();
  return crcs;
}

async function streamEntry(run: Run, e: Entry, src: string, entry: StoredEntry, onData: ((c: Uint8Array) => void) | null, sink: BlockSink): Promise<void> {
  let n = 0;
  for await (const chunk of run.source.openRead(src, { signal: run.signal })) {
    n += chunk.length;
    if (n > e.size) throw sourceChanged(src, `grew beyond the scanned ${e.size} bytes`);
    onData?.(chunk);
    entry.push(chunk, false);
    run.progress.add(0, chunk.length);
    await run.throttle?.(chunk.length);
    if (sink.pending >= sink.blockBytes) await sink.flush();
  }
  entry.push(new Uint8Array(0), true);
  if (n !== e.size) throw sourceChanged(src, `read ${n} bytes, scanned ${e.size}`);
  assertUnchanged(src, e, await run.source.stat(src, { signal: run.signal }));
}

async function copyPacked(run: Run, sourcePath: string, w: FileWriter, batch: readonly Entry[]): Promise<void> {
  const pack = run.source.packZip?.bind(run.source);
  if (pack === undefined) throw new TransferError("UNSUPPORTED", `${run.source.label} cannot pack archives`);
  const sink = new BlockSink(w, run.opts.zipWriteBufferBytes);
  for await (const chunk of pack(sourcePath, { signal: run.signal })) {
    sink.push(chunk);
    run.progress.add(0, chunk.length);
    await run.throttle?.(chunk.length);
    if (sink.pending >= sink.blockBytes) await sink.flush();
  }
  await sink.flush();
  run.progress.add(batch.length, 0);
}
