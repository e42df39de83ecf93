/**
 * Local→local file copies that bypass the Endpoint streams. For small files, synchronous
 * open/read/write/close beats the async fs API (a thread-pool hop per call); the parallelism comes
 * from a second thread instead (small_copy_worker.ts). The old measurement that also had it beat
 * copy_file_range (`cp -r` ~2 s in the kernel for 10,000 × 4 KiB) was this machine's root file
 * system slowing every create after many deletions; on a fresh ext4 `cp -r` takes ~0.3 s, so that
 * comparison is open again. Large files go through copy_file_range (no user-space copy).
 */
import fs from "node:fs";
import fsp from "node:fs/promises";
import type { Entry, HashAlgorithm } from "../endpoint.ts";
import { TransferError, fromSystemError } from "../../errors.ts";
import { createHasher } from "../../hash.ts";
import { hashFd } from "./local_endpoint.ts";
import { preallocate } from "./prealloc.ts";

const UMASK = process.umask();

/** SOURCE_CHANGED (retryable): the file no longer matches what the scan saw, so a copy could be torn. */
export function sourceChanged(path: string, why: string): TransferError {
  return new TransferError("SOURCE_CHANGED", `source file ${JSON.stringify(path)} changed while being copied (${why}); the transfer was stopped so no torn copy is reported — retry when the file is stable`, {
    details: { path },
  });
}

/** Throws SOURCE_CHANGED when `st` (an fstat of the open source) differs from the scanned entry. */
export function checkUnchanged(abs: string, e: Entry, st: { size: number; mtimeMs: number }): void {
  if (st.size !== e.size) throw sourceChanged(abs, `size ${e.size} → ${st.size}`);
  if (st.mtimeMs !== e.mtimeMs) throw sourceChanged(abs, "modification time changed");
}

/**
 * Reads a whole small file; returns its bytes. One fstat after the read suffices: any write since
 * the scan, before or during the read, moved the mtime (or size) away from the scanned one.
 */
export function readWholeChecked(abs: string, e: Entry): Buffer {
  let fd: number;
  try {
    fd = fs.openSync(abs, fs.constants.O_RDONLY | fs.constants.O_NOFOLLOW);
  } catch (err) {
    throw fromSystemError(err, abs, "open");
  }
  try {
    const buf = Buffer.allocUnsafe(e.size);
    let off = 0;
    while (off < e.size) {
      const n = fs.readSync(fd, buf, off, e.size - off, off);
      if (n === 0) throw sourceChanged(abs, "shorter than scanned");
      off += n;
    }
    checkUnchanged(abs, e, fs.fstatSync(fd));
    return buf;
  } catch (err) {
    throw fromSystemError(err, abs, "read");
  } finally {
    fs.closeSync(fd);
  }
}

/** Creates `abs` (which must not exist) with `data`, the entry's permission bits and mtime. */
export function writeWhole(abs: string, data: Uint8Array, e: Entry): void {
  let fd: number;
  try {
    fd = fs.openSync(abs, fs.constants.O_WRONLY | fs.constants.O_CREAT | fs.constants.O_EXCL, e.mode & 0o777);
  } catch (err) {
    throw fromSystemError(err, abs, "create");
  }
  try {
    let off = 0;
    while (off < data.length) off += fs.writeSync(fd, data, off, data.length - off);
    // open() masked the mode with the umask; setuid/setgid/sticky bits need fchmod too.
    if ((e.mode & UMASK) !== 0 || e.mode > 0o777) fs.fchmodSync(fd, e.mode);
    fs.futimesSync(fd, e.mtimeMs / 1000, e.mtimeMs / 1000);
  } catch (err) {
    throw fromSystemError(err, abs, "write");
  } finally {
    fs.closeSync(fd);
  }
}

/** Copies one small file synchronously; returns its hash when `alg` is set. */
export function copySmall(src: string, dst: string, e: Entry, alg: HashAlgorithm | null): string | undefined {
  const data = readWholeChecked(src, e);
  writeWhole(dst, data, e);
  if (alg === null) return undefined;
  const h = createHasher(alg);
  h.update(data);
  return h.digest();
}

/**
 * Copies one large file with copy_file_range (the kernel moves the bytes, as `cp` does). With a
 * hash, the source is read and hashed at the same time on this thread while the copy runs in the
 * thread pool: measured on 1 GiB, read+hash+write through user space took 0.5-1.0 s against
 * 0.3 s for copy_file_range, and hashing a cached file takes ~0.15 s, so overlapping the two
 * keeps checksum mode near the cost of the copy. The fstat checks before and after (size, mtime)
 * tie the hash to the bytes copied: a change in between fails with SOURCE_CHANGED.
 */
export async function copyLarge(src: string, dst: string, e: Entry, alg: HashAlgorithm | null, onBytes: (n: number) => void, signal?: AbortSignal): Promise<string | undefined> {
  // Opens, fstats and attributes are synchronous (microseconds each): through fs/promises each one
  // was a thread-pool round trip, ~7 per file, which showed on 20 × 20 MiB under load.
  let sfd: number;
  try {
    sfd = fs.openSync(src, fs.constants.O_RDONLY | fs.constants.O_NOFOLLOW);
  } catch (err) {
    throw fromSystemError(err, src, "open");
  }
  let dfd: number | undefined;
  try {
    checkUnchanged(src, e, fs.fstatSync(sfd));
    dfd = createPreallocated(dst, e.size);
    // No COPYFILE_EXCL: the file was just created (O_EXCL) by us. Bun's copyFile opens an existing
    // target without O_TRUNC and truncates it to the bytes copied, so the reservation is kept.
    const copy = fsp.copyFile(src, dst).then(
      () => onBytes(e.size),
      (err: unknown) => {
        throw fromSystemError(err, dst, "copy to");
      },
    );
    const hashing = alg === null ? Promise.resolve(undefined) : hashOpenFile(sfd, src, e, alg, signal);
    const [copied, hashed] = await Promise.allSettled([copy, hashing]);
    if (copied.status === "rejected") throw copied.reason;
    if (hashed.status === "rejected") throw hashed.reason;
    const digest = hashed.value;
    checkUnchanged(src, e, fs.fstatSync(sfd));
    try {
      // dfd is still the file copyFile filled (it writes into the existing inode).
      fs.fchmodSync(dfd, e.mode);
      fs.futimesSync(dfd, e.mtimeMs / 1000, e.mtimeMs / 1000);
    } catch (err) {
      throw fromSystemError(err, dst, "set attributes of");
    }
    return digest;
  } finally {
    fs.closeSync(sfd);
    if (dfd !== undefined) fs.closeSync(dfd);
  }
}

/** Creates `dst` (which must not exist) with room for `size` bytes (see prealloc.ts); returns its open fd. */
function createPreallocated(dst: string, size: number): number {
  let fd: number;
  try {
    fd = fs.openSync(dst, fs.constants.O_WRONLY | fs.constants.O_CREAT | fs.constants.O_EXCL, 0o600);
  } catch (err) {
    throw fromSystemError(err, dst, "create");
  }
  try {
    preallocate(fd, size);
  } catch (err) {
    fs.closeSync(fd);
    throw fromSystemError(err, dst, "reserve space for");
  }
  return fd;
}

async function hashOpenFile(sfd: number, src: string, e: Entry, alg: HashAlgorithm, signal?: AbortSignal): Promise<string> {
  const { digest, bytes } = await hashFd(sfd, src, alg, signal);
  if (bytes !== e.size) throw sourceChanged(src, `read ${bytes} bytes, scanned ${e.size}`);
  return digest;
}
