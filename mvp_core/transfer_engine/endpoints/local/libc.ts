/**
 * The Linux system calls Node's fs lacks, through bun:ffi: openat2 (open below a folder handle with
 * no symlink and no escape at any component, checked by the kernel), renameat2 (rename that never
 * replaces), fallocate (reserve a large copy's blocks at once), copy_file_range (the kernel copies,
 * in chunks we can count, pace and cancel). Each returns a negative errno instead of throwing, so
 * callers map failures with the path they were working on. Loaded once per thread.
 */
import { FFIType, dlopen, ptr, read } from "bun:ffi";

const SYS_OPENAT2 = 437n;
/** openat2 resolve flags (linux/openat2.h). */
const RESOLVE_NO_SYMLINKS = 0x04;
const RESOLVE_BENEATH = 0x08;
/** renameat2 flag: fail with EEXIST instead of replacing. */
const RENAME_NOREPLACE = 1;

type Libc = ReturnType<typeof openLibc>;
let libc: Libc | null | undefined;

function openLibc() {
  return dlopen("libc.so.6", {
    syscall: { args: [FFIType.i64, FFIType.i32, FFIType.ptr, FFIType.ptr, FFIType.u64], returns: FFIType.i64 },
    renameat2: { args: [FFIType.i32, FFIType.ptr, FFIType.i32, FFIType.ptr, FFIType.u32], returns: FFIType.i32 },
    fallocate: { args: [FFIType.i32, FFIType.i32, FFIType.i64, FFIType.i64], returns: FFIType.i32 },
    copy_file_range: { args: [FFIType.i32, FFIType.ptr, FFIType.i32, FFIType.ptr, FFIType.u64, FFIType.u32], returns: FFIType.i64 },
    __errno_location: { args: [], returns: FFIType.ptr },
  });
}

/** The bindings, or null where they cannot load (no glibc): callers then refuse or fall back. */
function load(): Libc | null {
  if (libc === undefined) {
    try {
      libc = process.platform === "linux" ? openLibc() : null;
    } catch {
      libc = null;
    }
  }
  return libc;
}

function errno(c: Libc): number {
  const where = c.symbols.__errno_location();
  return where === null ? 0 : read.i32(where, 0);
}

function cString(s: string): Buffer {
  return Buffer.from(`${s}\0`, "utf8");
}

/** Whether the system calls are available in this process. */
export function haveLibc(): boolean {
  return load() !== null;
}

/**
 * openat2(dirFd, rel, flags, mode) refusing every symbolic link and any escape from dirFd on the
 * way (ELOOP / EXDEV). Returns the fd, or -errno (-ENOSYS without the bindings).
 */
export function openBeneath(dirFd: number, rel: string, flags: number, mode = 0): number {
  const c = load();
  if (c === null) return -38;
  const how = new BigUint64Array([BigInt(flags), BigInt(mode), BigInt(RESOLVE_NO_SYMLINKS | RESOLVE_BENEATH)]);
  const path = cString(rel === "" ? "." : rel);
  const fd = Number(c.symbols.syscall(SYS_OPENAT2, dirFd, ptr(path), ptr(how), 24n));
  return fd < 0 ? -errno(c) : fd;
}

/** renameat2 without replacing: 0, or -errno (-EEXIST when `to` exists). */
export function renameNoReplace(fromDir: number, from: string, toDir: number, to: string): number {
  const c = load();
  if (c === null) return -38;
  const r = c.symbols.renameat2(fromDir, ptr(cString(from)), toDir, ptr(cString(to)), RENAME_NOREPLACE);
  return r < 0 ? -errno(c) : 0;
}

/** fallocate(fd, 0, 0, size): 0, or -errno (callers ignore all but ENOSPC/EDQUOT: it is only a reservation). */
export function fallocate(fd: number, size: number): number {
  const c = load();
  if (c === null || size <= 0) return 0;
  return c.symbols.fallocate(fd, 0, 0, size) === 0 ? 0 : -errno(c);
}

/**
 * copy_file_range of up to `len` bytes from `inFd` at offsets[0] to `outFd` at offsets[1]; the
 * kernel advances both offsets. Returns the bytes copied (0 at the source's end) or -errno.
 */
export function copyRange(inFd: number, outFd: number, offsets: BigInt64Array, len: number): number {
  const c = load();
  if (c === null) return -38;
  const n = Number(c.symbols.copy_file_range(inFd, ptr(offsets, 0), outFd, ptr(offsets, 8), len, 0));
  return n < 0 ? -errno(c) : n;
}
