/**
 * File operations below a folder handle that never follow a symbolic link and never leave the
 * folder, even when the tree changes while we work (a folder swapped for a link mid-run).
 *
 * Every path is opened by the kernel relative to the root's handle with openat2(RESOLVE_BENEATH |
 * RESOLVE_NO_SYMLINKS): a link at any component, or a way out, fails the open (ELOOP/EXDEV) instead
 * of being followed, and there is no check-then-use window. Operations that take no file handle
 * (mkdir, rename, unlink, lstat…) name their entry as `/proc/self/fd/<parent>/<name>`, where
 * <parent> is the entry's folder opened that way: the kernel resumes the lookup from that handle,
 * as the *at() system calls do, and the last component is one that these calls do not follow.
 * Without openat2 (kernels before 5.6) folders are opened one component at a time with O_NOFOLLOW.
 */
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { TransferError, fromSystemError } from "../../errors.ts";
import { openBeneath, renameNoReplace } from "./libc.ts";

const C = fs.constants;
/** Not in Node's fs.constants; the value on Linux (x86_64 and arm64 alike). */
const O_PATH = 0o10000000;
const O_CLOEXEC = 0o2000000;
const O_DIRECTORY = C.O_DIRECTORY;
const O_NOFOLLOW = C.O_NOFOLLOW;
const ENOSYS = 38;

const ERRNO_NAMES = new Map<number, string>(Object.entries(os.constants.errno).map(([name, n]) => [n, name]));

/** A system error object as fs would throw it, for fromSystemError. */
export function sysError(negErrno: number, syscall: string): Error & { code: string; errno: number } {
  const code = ERRNO_NAMES.get(-negErrno) ?? `E${-negErrno}`;
  return Object.assign(new Error(`${code}: ${syscall}`), { code, errno: negErrno });
}

/** Maps a failure below the root to a TransferError; a link or a way out on the path is PATH_ESCAPE. */
export function rootedError(err: unknown, abs: string, action: string): TransferError {
  const code = (err as { code?: string })?.code;
  if (code === "ELOOP" || code === "EXDEV") {
    return new TransferError("PATH_ESCAPE", `${action} ${JSON.stringify(abs)}: a symbolic link (or a way out of the portal's folder) is on the path; Ketter never follows links below a portal's root — replace the link with the folder or file itself`, {
      cause: err,
      details: { path: abs },
    });
  }
  return fromSystemError(err, abs, action);
}

/** Path of `name` inside the folder open as `dirFd`, resolved by the kernel from that handle. */
export function inFd(dirFd: number, name: string): string {
  return name === "" ? `/proc/self/fd/${dirFd}` : `/proc/self/fd/${dirFd}/${name}`;
}

/** A folder handle (the portal's root) and the no-follow operations below it. */
export class RootedFs {
  private constructor(
    /** Open O_PATH handle of the root; its number is valid in every thread of the process. */
    readonly rootFd: number,
    /** The root as configured, for messages. */
    readonly root: string,
  ) {}

  /** Opens `root` (links in the root's own path are the administrator's choice and are followed). */
  static open(root: string): RootedFs {
    try {
      return new RootedFs(fs.openSync(root, O_PATH | O_DIRECTORY | O_CLOEXEC), root);
    } catch (err) {
      throw fromSystemError(err, root, "open the folder");
    }
  }

  /** Adopts a handle opened elsewhere in this process (a helper thread); close() is the opener's. */
  static adopt(rootFd: number, root: string): RootedFs {
    return new RootedFs(rootFd, root);
  }

  /** Absolute path of `rel`, for messages only (never opened by name). */
  abs(rel: string): string {
    return rel === "" ? this.root : path.join(this.root, rel);
  }

  /** Opens `rel` with `flags`; throws as rootedError. */
  open(rel: string, flags: number, mode = 0o600, action = "open"): number {
    const fd = this.tryOpen(rel, flags | O_CLOEXEC, mode);
    if (fd < 0) throw rootedError(sysError(fd, "openat2"), this.abs(rel), action);
    return fd;
  }

  /** Like open, but a missing entry (or a parent that is not a folder) answers null. */
  openIfExists(rel: string, flags: number, action = "open"): number | null {
    const fd = this.tryOpen(rel, flags | O_CLOEXEC, 0);
    if (fd === -2 || fd === -20) return null; // ENOENT, ENOTDIR
    if (fd < 0) throw rootedError(sysError(fd, "openat2"), this.abs(rel), action);
    return fd;
  }

  /** Opens the folder `rel` for listing (an fd usable with inFd()). */
  openDir(rel: string): number {
    return this.open(rel, C.O_RDONLY | O_DIRECTORY, 0, "list");
  }

  /**
   * Runs `fn` with a path naming `rel` through its parent folder's handle (see the file comment),
   * for operations that take no file handle; the handle is closed afterwards.
   */
  at<T>(rel: string, action: string, fn: (p: string) => T): T {
    if (rel === "") throw new TransferError("INVALID_SPEC", `cannot ${action} the portal's root folder itself`);
    const slash = rel.lastIndexOf("/");
    const dirFd = this.open(slash < 0 ? "" : rel.slice(0, slash), O_PATH | O_DIRECTORY, 0, action);
    try {
      return fn(inFd(dirFd, rel.slice(slash + 1)));
    } catch (err) {
      throw rootedError(err, this.abs(rel), action);
    } finally {
      fs.closeSync(dirFd);
    }
  }

  /** lstat of `rel` ("" is the root), null when missing. */
  lstat(rel: string): fs.Stats | null {
    if (rel === "") return fs.fstatSync(this.rootFd);
    const slash = rel.lastIndexOf("/");
    const dirFd = this.openIfExists(slash < 0 ? "" : rel.slice(0, slash), O_PATH | O_DIRECTORY, "stat");
    if (dirFd === null) return null;
    try {
      return fs.lstatSync(inFd(dirFd, rel.slice(slash + 1)));
    } catch (err) {
      const code = (err as { code?: string }).code;
      if (code === "ENOENT" || code === "ENOTDIR") return null;
      throw rootedError(err, this.abs(rel), "stat");
    } finally {
      fs.closeSync(dirFd);
    }
  }

  /**
   * Renames `from` to `to` (below `other`'s root, by default this one); without `replace`, an
   * existing `to` is TARGET_EXISTS, atomically. False, with nothing moved, when the two are on
   * different file systems (EXDEV).
   */
  rename(from: string, to: string, replace: boolean, other: RootedFs = this): boolean {
    const fromSlash = from.lastIndexOf("/");
    const toSlash = to.lastIndexOf("/");
    const fromDir = this.open(fromSlash < 0 ? "" : from.slice(0, fromSlash), O_PATH | O_DIRECTORY, 0, "rename");
    try {
      const toDir = other.open(toSlash < 0 ? "" : to.slice(0, toSlash), O_PATH | O_DIRECTORY, 0, "rename into");
      try {
        const fromName = from.slice(fromSlash + 1);
        const toName = to.slice(toSlash + 1);
        let r = 0;
        if (replace) {
          try {
            fs.renameSync(inFd(fromDir, fromName), inFd(toDir, toName));
          } catch (err) {
            r = -Math.abs((err as { errno?: number }).errno ?? 5);
            if (r !== -18) throw rootedError(err, this.abs(from), `rename to ${JSON.stringify(other.abs(to))}:`);
          }
        } else r = renameNoReplace(fromDir, fromName, toDir, toName);
        if (r === -18) return false; // EXDEV here means another file system, not a way out (the handles are proven)
        if (r === -17 || r === -39) throw new TransferError("TARGET_EXISTS", `${JSON.stringify(other.abs(to))} already exists`, { details: { path: to } });
        if (r < 0) throw rootedError(sysError(r, "renameat2"), this.abs(from), `rename to ${JSON.stringify(other.abs(to))}:`);
        return true;
      } finally {
        fs.closeSync(toDir);
      }
    } finally {
      fs.closeSync(fromDir);
    }
  }

  /** Creates the folder `rel` (its parent must exist) with exactly `mode` (the umask would mask it). */
  mkdir(rel: string, mode: number): void {
    this.at(rel, "create folder", (p) => fs.mkdirSync(p, { mode }));
    this.setAttributes(rel, { mode });
  }

  /** Creates `rel` and any missing parents (each with `mode`); existing folders are left as they are. */
  mkdirp(rel: string, mode: number): void {
    const parts = rel === "" ? [] : rel.split("/");
    for (let i = 1; i <= parts.length; i++) {
      const sub = parts.slice(0, i).join("/");
      const st = this.lstat(sub);
      if (st?.isDirectory()) continue;
      if (st !== null) throw rootedError(Object.assign(new Error("ENOTDIR"), { code: "ENOTDIR" }), this.abs(sub), "create folder");
      try {
        this.mkdir(sub, mode);
      } catch (err) {
        // Made meanwhile by someone else (a second unpacker): fine, it is a folder now.
        if (!this.lstat(sub)?.isDirectory()) throw err;
      }
    }
  }

  /**
   * Sets mode and/or mtime of `rel`: through an O_PATH handle, which cannot be a link (openat2 refuses
   * one), so the change lands on the entry itself; a link gets only its own times (Linux cannot chmod one).
   */
  setAttributes(rel: string, attrs: { mtimeMs?: number; mode?: number }): void {
    const when = attrs.mtimeMs === undefined ? undefined : attrs.mtimeMs / 1000;
    const fd = this.tryOpen(rel, O_PATH | O_CLOEXEC, 0);
    if (fd === -40) {
      if (when !== undefined) this.at(rel, "set attributes of", (p) => fs.lutimesSync(p, when, when));
      return;
    }
    if (fd < 0) throw rootedError(sysError(fd, "openat2"), this.abs(rel), "set attributes of");
    try {
      if (attrs.mode !== undefined) fs.chmodSync(inFd(fd, ""), attrs.mode);
      if (when !== undefined) fs.utimesSync(inFd(fd, ""), when, when);
    } catch (err) {
      throw rootedError(err, this.abs(rel), "set attributes of");
    } finally {
      fs.closeSync(fd);
    }
  }

  /** Removes a file or link (never what a link points to). */
  unlink(rel: string): void {
    this.at(rel, "remove", (p) => fs.unlinkSync(p));
  }

  /** Removes an empty folder. */
  rmdir(rel: string): void {
    this.at(rel, "remove", (p) => fs.rmdirSync(p));
  }

  /** Removes the folder `rel` and everything below it, never following a link out of it. */
  removeTree(rel: string): void {
    const dirFd = this.openDir(rel);
    try {
      for (const name of fs.readdirSync(inFd(dirFd, ""))) {
        const child = rel === "" ? name : `${rel}/${name}`;
        let st: fs.Stats;
        try {
          st = fs.lstatSync(inFd(dirFd, name));
        } catch (err) {
          if ((err as { code?: string }).code === "ENOENT") continue;
          throw rootedError(err, this.abs(child), "remove");
        }
        if (st.isDirectory()) this.removeTree(child);
        else this.unlink(child);
      }
    } finally {
      fs.closeSync(dirFd);
    }
    this.rmdir(rel);
  }

  /** Closes the root handle (not for adopted ones). */
  close(): void {
    fs.closeSync(this.rootFd);
  }

  private tryOpen(rel: string, flags: number, mode: number): number {
    const fd = openBeneath(this.rootFd, rel, flags, mode);
    return fd === -ENOSYS ? this.openByComponents(rel, flags, mode) : fd;
  }

  /** The fallback: one O_NOFOLLOW open per component, each from the handle of the one before. */
  private openByComponents(rel: string, flags: number, mode: number): number {
    const parts = rel === "" ? [] : rel.split("/");
    let dir = this.rootFd;
    try {
      for (let i = 0; i < parts.length; i++) {
        const last = i === parts.length - 1;
        const next = fs.openSync(inFd(dir, parts[i] as string), last ? flags | O_NOFOLLOW : C.O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC, mode);
        if (dir !== this.rootFd) fs.closeSync(dir);
        dir = next;
      }
      return dir === this.rootFd ? fs.openSync(inFd(dir, ""), flags, mode) : dir;
    } catch (err) {
      if (dir !== this.rootFd) fs.closeSync(dir);
      const n = (err as { errno?: number }).errno;
      return typeof n === "number" && n !== 0 ? -Math.abs(n) : -5; // fs reports errno negative; -EIO otherwise
    }
  }
}
