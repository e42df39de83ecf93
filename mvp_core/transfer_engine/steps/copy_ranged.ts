/**
 * Step 3 for big files (direct strategy, and the big files of a zip plan): a file of at least
 * `rangeMinFileBytes` travels as ranges, each read from its offset at the source
 * (ReadOptions.length) and written at its offset into the staging file (WriteOptions.offset),
 * over as many streams at once as both endpoints carry (Plan.streams). Over SSH one channel moves
 * ~2 MiB per round trip and one connection about its TCP send buffer: several streams on several
 * connections fill a long link that one stream cannot (docs/engine.md, "Several streams per file").
 *
 * Each range is checked when it lands — the destination's CRC-32 of what it wrote against the
 * CRC-32 of what was read — and the file's whole CRC-32 is combined from its ranges
 * (crc32_combine), so the verification step compares whole files exactly as before. Ranges report
 * their progress to the journal: after a fault, the next attempt sends only what is missing.
 */
import type { Entry, HashAlgorithm } from "../endpoints/endpoint.ts";
import { throwIfCancelled } from "../cancel.ts";
import { TransferError, fromSystemError } from "../errors.ts";
import { crc32Hex } from "../hash.ts";
import { runPool } from "../pool.ts";
import type { Run } from "../run.ts";
import { assertUnchanged, sourceChanged } from "../source_check.ts";
import { type Extent, gaps, wholeCrc } from "./extents.ts";
import type { Journal } from "./journal.ts";

const MiB = 1 << 20;

/** One big file to send as ranges: where it is on each side, and what a resume already kept of it. */
export interface RangedFile {
  entry: Entry;
  src: string;
  dst: string;
  /** Extents already in the staging file, checked at both ends (their CRC-32 is the source's). */
  kept: readonly Extent[];
}

/** The range size for a file of `size` bytes over `streams` streams: one range per stream, at most `max`, whole MiB. */
export function rangeBytesFor(size: number, streams: number, max: number): number {
  return Math.max(MiB, Math.min(max, Math.ceil(size / streams / MiB) * MiB));
}

interface FileState {
  f: RangedFile;
  /** Source CRC-32s of the parts present (kept, and ranges sent), by offset. */
  pieces: Extent[];
  pending: number;
  failed: boolean;
}

interface Range {
  s: FileState;
  offset: number;
  length: number;
}

/**
 * Sends `files` as ranges over `streams` streams; records each file's source hash in `hashes` (by
 * entry path). `stopped` names a failure elsewhere in the step: no range starts after it.
 */
export async function copyRanged(run: Run, files: readonly RangedFile[], streams: number, alg: HashAlgorithm | null, hashes: Map<string, string>, journal: Journal, stopped: () => unknown = () => undefined): Promise<void> {
  const ranges: Range[] = [];
  const complete: FileState[] = [];
  for (const f of files) {
    const s: FileState = { f, pieces: [...f.kept], pending: 0, failed: false };
    const step = rangeBytesFor(f.entry.size, streams, run.opts.rangeMaxBytes);
    for (const gap of gaps(f.kept, f.entry.size)) {
      for (let o = gap.offset; o < gap.offset + gap.length; o += step) ranges.push({ s, offset: o, length: Math.min(step, gap.offset + gap.length - o) });
    }
    s.pending = ranges.filter((r) => r.s === s).length;
    if (s.pending === 0) complete.push(s);
  }
  // Files a resume found complete only need their finish.
  for (const s of complete) await finishFile(run, s, alg, hashes);
  await runPool(ranges, streams, async (r) => {
    const elsewhere = stopped();
    if (elsewhere !== undefined) throw elsewhere;
    if (r.s.failed) return;
    try {
      await sendRange(run, r, journal);
      if (--r.s.pending === 0) await finishFile(run, r.s, alg, hashes);
    } catch (caught) {
      const err = fromSystemError(caught, r.s.f.src, "copy");
      // skipFileErrors: this file alone failed; its other ranges are skipped, the others go on.
      if (run.signal?.aborted || r.s.failed || !run.ledger.fail(r.s.f.entry, err)) throw err;
      r.s.failed = true;
      journal.forget(r.s.f.entry.path);
    }
  });
}

/** Reads one range at the source and writes it at its offset into the staging file. */
async function sendRange(run: Run, r: Range, journal: Journal): Promise<void> {
  const { source, target, signal } = run;
  const { entry, src, dst } = r.s.f;
  throwIfCancelled(signal);
  journal.started(entry, r.offset, r.length);
  let told: { bytes: number; crc: number } | null = null;
  const w = await target.openWrite(dst, {
    signal, offset: r.offset, size: r.length,
    onWritten: (bytes, crc) => {
      told = { bytes, crc };
      journal.written(entry, r.offset, bytes, crc);
    },
  });
  let n = 0;
  let crc = 0;
  try {
    // Each chunk is hashed and written (the writer copies what it keeps) before the next is read.
    for await (const chunk of source.openRead(src, { signal, start: r.offset, length: r.length, reuseBuffer: true })) {
      crc = Bun.hash.crc32(chunk, crc);
      n += chunk.length;
      await w.write(chunk);
      run.progress.add(0, chunk.length);
      await run.throttle?.(chunk.length);
    }
    if (n !== r.length) throw sourceChanged(src, `a range of ${r.length} bytes at ${r.offset} read ${n}: the file is shorter than scanned`);
    await w.close();
  } catch (err) {
    await w.abort();
    throw err;
  }
  const landed = told as { bytes: number; crc: number } | null;
  if (landed === null || landed.bytes !== r.length || landed.crc !== crc >>> 0) {
    throw new TransferError("VERIFY_FAILED", `${JSON.stringify(src)}: the range at ${r.offset} arrived different from the source (crc32 ${landed === null ? "unreported" : crc32Hex(landed.crc)} for ${landed?.bytes ?? 0} bytes at the destination, ${crc32Hex(crc)} for ${r.length} read); retry it`, { details: { path: src, offset: r.offset } });
  }
  r.s.pieces.push({ offset: r.offset, length: r.length, crc: crc >>> 0 });
  journal.finished(entry, r.offset);
}

/** Every range is in: the source must still be what the scan saw; attributes, and the whole file's hash. */
async function finishFile(run: Run, s: FileState, alg: HashAlgorithm | null, hashes: Map<string, string>): Promise<void> {
  const { source, target, signal } = run;
  const { entry, src, dst } = s.f;
  if (alg !== null && alg !== "crc32") {
    // Ranges cannot be chained into other hashes: the source hashes the file next to its data.
    const h = (await source.hashFiles([src], alg, { signal })).get(src);
    if (h !== undefined) hashes.set(entry.path, h);
  }
  assertUnchanged(src, entry, await source.stat(src, { signal }));
  await target.setAttributes(dst, { mtimeMs: entry.mtimeMs, mode: entry.mode }, { signal });
  const whole = wholeCrc(s.pieces, entry.size);
  if (whole === null) throw new TransferError("IO_ERROR", `${JSON.stringify(src)}: its ranges do not cover the file (internal error); retry it`, { details: { path: src } });
  if (alg === "crc32") hashes.set(entry.path, crc32Hex(whole));
  run.progress.add(1, 0);
}
