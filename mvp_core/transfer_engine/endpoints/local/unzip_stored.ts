/**
 * Unpacks a stored (method 0) zip by reading its central directory. fflate's streaming Unzip finds
 * entry ends by scanning for signatures, which mis-splits stored binary data that happens to contain
 * them; stored entries are plain byte ranges, so the central directory is all we need. Every entry's
 * CRC-32 is checked. Plain zip only: Zip64 archives are refused (the engine never writes them).
 */
import fs from "node:fs";
import { cancelledError } from "../../cancel.ts";
import { TransferError, fromSystemError } from "../../errors.ts";
import { joinRel, normalizeRel, parentRel } from "../../paths.ts";
import { maybeYield } from "../../yield.ts";
import type { RootedFs } from "./rooted_fs.ts";

const EOCD_SIG = 0x06054b50;
const CEN_SIG = 0x02014b50;
const LOC_SIG = 0x04034b50;
/** Entries up to this size are read with their local header in one pread; larger ones stream. */
const WHOLE_ENTRY_MAX = 4 << 20;
const STREAM_CHUNK = 4 << 20;

interface CentralEntry {
  name: string;
  crc: number;
  size: number;
  localOffset: number;
}

/**
 * Unpacks `archive` into the existing folder `into` (both below `rfs`'s root: every file and folder
 * is created below its handle, never through a link); returns entry and byte counts.
 */
export async function unzipStored(rfs: RootedFs, archive: string, into: string, opts: { signal?: AbortSignal } = {}): Promise<{ files: number; bytes: number }> {
  const archiveAbs = rfs.abs(archive);
  const fd = rfs.open(archive, fs.constants.O_RDONLY, 0, "open archive");
  try {
    const entries = readCentralDirectory(fd, archiveAbs);
    const made = new Set<string>([into]);
    let bytes = 0;
    let files = 0;
    for (const e of entries) {
      if (opts.signal?.aborted) throw cancelledError();
      await maybeYield();
      const isDir = e.name.endsWith("/");
      const rel = normalizeRel(isDir ? e.name.slice(0, -1) : e.name);
      if (rel === "") continue;
      const dst = joinRel(into, rel);
      const dir = isDir ? dst : parentRel(dst);
      if (!made.has(dir)) {
        rfs.mkdirp(dir, 0o755);
        made.add(dir);
      }
      if (isDir) continue;
      await extractEntry(fd, e, rfs, dst);
      bytes += e.size;
      files++;
    }
    return { files, bytes };
  } finally {
    fs.closeSync(fd);
  }
}

function corrupt(archive: string, why: string): TransferError {
  return new TransferError("VERIFY_FAILED", `archive ${JSON.stringify(archive)} is damaged: ${why}`, { details: { archive } });
}

function readCentralDirectory(fd: number, archive: string): CentralEntry[] {
  const size = fs.fstatSync(fd).size;
  const tailLen = Math.min(size, 22 + 0xffff);
  const tail = Buffer.alloc(tailLen);
  fs.readSync(fd, tail, 0, tailLen, size - tailLen);
  let eocd = -1;
  for (let i = tailLen - 22; i >= 0; i--) {
    if (tail.readUInt32LE(i) === EOCD_SIG) {
      eocd = i;
      break;
    }
  }
  if (eocd < 0) throw corrupt(archive, "no end-of-central-directory record");
  const count = tail.readUInt16LE(eocd + 10);
  const cdSize = tail.readUInt32LE(eocd + 12);
  const cdOffset = tail.readUInt32LE(eocd + 16);
  if (count === 0xffff || cdOffset === 0xffffffff || cdSize === 0xffffffff) {
    throw new TransferError("UNSUPPORTED", `archive ${JSON.stringify(archive)} is Zip64, which this unpacker does not read`);
  }
  if (cdOffset + cdSize > size) throw corrupt(archive, "central directory beyond end of file");
  const cd = Buffer.alloc(cdSize);
  fs.readSync(fd, cd, 0, cdSize, cdOffset);
  const out: CentralEntry[] = [];
  const decoder = new TextDecoder();
  let p = 0;
  for (let i = 0; i < count; i++) {
    if (p + 46 > cdSize || cd.readUInt32LE(p) !== CEN_SIG) throw corrupt(archive, `bad central directory entry #${i}`);
    const method = cd.readUInt16LE(p + 10);
    const crc = cd.readUInt32LE(p + 16);
    const csize = cd.readUInt32LE(p + 20);
    const usize = cd.readUInt32LE(p + 24);
    const nameLen = cd.readUInt16LE(p + 28);
    const extraLen = cd.readUInt16LE(p + 30);
    const commentLen = cd.readUInt16LE(p + 32);
    const localOffset = cd.readUInt32LE(p + 42);
    const name = decoder.decode(cd.subarray(p + 46, p + 46 + nameLen));
    if (method !== 0) throw new TransferError("UNSUPPORTED", `archive entry ${JSON.stringify(name)} is compressed (method ${method}); only stored entries are unpacked`);
    if (csize !== usize) throw corrupt(archive, `entry ${JSON.stringify(name)} sizes disagree`);
    if (localOffset + 30 + csize > cdOffset) throw corrupt(archive, `entry ${JSON.stringify(name)} overlaps the central directory`);
    out.push({ name, crc, size: usize, localOffset });
    p += 46 + nameLen + extraLen + commentLen;
  }
  return out;
}

async function extractEntry(fd: number, e: CentralEntry, rfs: RootedFs, dstRel: string): Promise<void> {
  const dst = rfs.abs(dstRel);
  // Local header: 30 bytes + name + extra; the extra length can differ from the central copy.
  const guess = 30 + 1024 + (e.size <= WHOLE_ENTRY_MAX ? e.size : 0);
  const head = Buffer.alloc(guess);
  const got = fs.readSync(fd, head, 0, guess, e.localOffset);
  if (got < 30 || head.readUInt32LE(0) !== LOC_SIG) throw corrupt(dst, `no local header for ${JSON.stringify(e.name)}`);
  const dataStart = 30 + head.readUInt16LE(26) + head.readUInt16LE(28);
  const out = rfs.open(dstRel, fs.constants.O_WRONLY | fs.constants.O_CREAT | fs.constants.O_EXCL, 0o600, "create");
  try {
    let crc = 0;
    if (dataStart + e.size <= got) {
      const data = head.subarray(dataStart, dataStart + e.size);
      crc = Bun.hash.crc32(data);
      writeAll(out, data);
    } else {
      const buf = Buffer.alloc(Math.min(STREAM_CHUNK, Math.max(e.size, 1)));
      let pos = e.localOffset + dataStart;
      let left = e.size;
      while (left > 0) {
        const n = fs.readSync(fd, buf, 0, Math.min(buf.length, left), pos);
        if (n === 0) throw corrupt(dst, `entry ${JSON.stringify(e.name)} is truncated`);
        const chunk = buf.subarray(0, n);
        crc = Bun.hash.crc32(chunk, crc);
        writeAll(out, chunk);
        pos += n;
        left -= n;
        await maybeYield();
      }
    }
    if (crc >>> 0 !== e.crc >>> 0) {
      throw new TransferError("VERIFY_FAILED", `CRC-32 mismatch unpacking ${JSON.stringify(e.name)}: the archive was damaged in transit`, { details: { entry: e.name } });
    }
  } catch (err) {
    throw fromSystemError(err, dst, "write");
  } finally {
    fs.closeSync(out);
  }
}

function writeAll(fd: number, data: Uint8Array): void {
  let off = 0;
  while (off < data.length) off += fs.writeSync(fd, data, off, data.length - off);
}
