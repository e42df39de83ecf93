/**
 * The local file-system endpoint. Metadata calls use the synchronous fs API: each is a few
 * microseconds, while Bun's async variants go through a thread pool that costs more than the
 * syscall itself on small files. Loops call maybeYield() so the event loop still gets turns.
 */
import fs from "node:fs";
import fsp from "node:fs/promises";
import path from "node:path";
import type { Capabilities, Endpoint, Entry, FileWriter, HashAlgorithm, OpOptions, ReadOptions, SpaceInfo } from "../endpoint.ts";
import { TransferError, fromSystemError } from "../../errors.ts";
import { LOCAL_HASHES, createHasher } from "../../hash.ts";
import { normalizeRel } from "../../paths.ts";
import { runPool } from "../../pool.ts";
import { unzipStored } from "./unzip_stored.ts";
import { maybeYield } from "../../yield.ts";

const READ_CHUNK = 1 << 20;
const BIG_READ = 4 << 20;
/** Read size when hashing large files: small enough that the hash finds the chunk still in the CPU cache. */
const HASH_READ = 256 << 10;

function throwIfAborted(signal: AbortSignal | undefined): void {
  if (signal?.aborted) throw new TransferError("CANCELLED", "transfer cancelled");
}

function isMissing(err: unknown): boolean {
  const code = (err as { code?: string })?.code;
  return code === "ENOENT" || code === "ENOTDIR";
}

/** Converts an lstat result into an Entry; UNSUPPORTED for sockets, FIFOs and devices. */
export function entryFromStats(rel: string, st: fs.Stats, abs: string): Entry {
  const base = { path: rel, size: st.size, mtimeMs: st.mtimeMs, mode: st.mode & 0o7777 };
  if (st.isFile()) return { ...base, type: "file" };
  if (st.isDirectory()) return { ...base, type: "dir", size: 0 };
  if (st.isSymbolicLink()) return { ...base, type: "symlink", linkTarget: fs.readlinkSync(abs) };
  throw new TransferError("UNSUPPORTED", `${JSON.stringify(abs)} is a socket, FIFO or device; only files, folders and symbolic links can be transferred`, { details: { path: abs } });
}

/** Endpoint over a local folder; every path is relative to `root` and may not leave it. */
export class LocalEndpoint implements Endpoint {
  readonly kind = "local" as const;
  readonly label: string;
  /** Absolute root folder. */
  readonly root: string;
  private realRoot: string | null = null;

  constructor(root: string) {
    this.root = path.resolve(root);
    this.label = this.root;
  }

  /** Absolute path for `rel` after the lexical checks only (no `..`, not absolute). */
  absolute(rel: string): string {
    const clean = normalizeRel(rel);
    return clean === "" ? this.root : path.join(this.root, clean);
  }

  /**
   * Absolute path for `rel`, refusing (PATH_ESCAPE) when a symlink on the way resolves outside the
   * root; with `follow`, the last component is checked too (operations that open it).
   */
  resolve(rel: string, follow: boolean): string {
    const abs = this.absolute(rel);
    if (this.root === "/" || abs === this.root) return abs;
    const realRoot = this.getRealRoot();
    let probe = follow ? abs : path.dirname(abs);
    for (;;) {
      try {
        this.assertInside(fs.realpathSync(probe), rel);
        break;
      } catch (err) {
        if (!isMissing(err)) throw fromSystemError(err, probe, "resolve");
        const link = probe === abs ? readlinkOrNull(abs) : null;
        if (link !== null) {
          // A dangling link: opening it would create its target, so check where that would be.
          let realParent: string;
          try {
            realParent = fs.realpathSync(path.dirname(abs));
          } catch (e) {
            throw fromSystemError(e, path.dirname(abs), "resolve");
          }
          this.assertInside(path.resolve(realParent, link), rel);
          break;
        }
        if (probe === realRoot || probe === this.root || probe === "/") break;
        probe = path.dirname(probe);
      }
    }
    return abs;
  }

  private getRealRoot(): string {
    if (this.realRoot === null) {
      try {
        this.realRoot = fs.realpathSync(this.root);
      } catch (err) {
        throw fromSystemError(err, this.root, "open endpoint root");
      }
    }
    return this.realRoot;
  }

  private assertInside(real: string, rel: string): void {
    const root = this.getRealRoot();
    if (real !== root && !real.startsWith(root.endsWith("/") ? root : `${root}/`)) {
      throw new TransferError("PATH_ESCAPE", `path ${JSON.stringify(rel)} resolves outside ${this.label} through a symbolic link`, { details: { path: rel } });
    }
  }

  async stat(rel: string, opts?: OpOptions): Promise<Entry | null> {
    throwIfAborted(opts?.signal);
    const abs = this.resolve(rel, false);
    let st: fs.Stats;
    try {
      st = fs.lstatSync(abs);
    } catch (err) {
      if (isMissing(err)) return null;
      throw fromSystemError(err, abs, "stat");
    }
    return entryFromStats(normalizeRel(rel), st, abs);
  }

  async *walk(rel: string, opts?: OpOptions): AsyncIterable<Entry> {
    const base = this.resolve(rel, true);
    // Depth-first with an explicit stack: parents are yielded before their children.
    const stack: string[] = [""];
    while (stack.length > 0) {
      const dirRel = stack.pop() as string;
      const dirAbs = dirRel === "" ? base : path.join(base, dirRel);
      let names: string[];
      try {
        names = fs.readdirSync(dirAbs);
      } catch (err) {
        throw fromSystemError(err, dirAbs, "list");
      }
      names.sort();
      const subdirs: string[] = [];
      for (const name of names) {
        throwIfAborted(opts?.signal);
        await maybeYield();
        const childRel = dirRel === "" ? name : `${dirRel}/${name}`;
        const childAbs = path.join(dirAbs, name);
        let st: fs.Stats;
        try {
          st = fs.lstatSync(childAbs);
        } catch (err) {
          if (isMissing(err)) continue; // deleted while we listed: it is simply not part of the snapshot
          throw fromSystemError(err, childAbs, "stat");
        }
        const entry = entryFromStats(childRel, st, childAbs);
        yield entry;
        if (entry.type === "dir") subdirs.push(childRel);
      }
      for (let i = subdirs.length - 1; i >= 0; i--) stack.push(subdirs[i] as string);
    }
  }

  async *openRead(rel: string, opts?: ReadOptions): AsyncIterable<Uint8Array> {
    throwIfAborted(opts?.signal);
    const abs = this.resolve(rel, true);
    let fh: fsp.FileHandle;
    try {
      fh = await fsp.open(abs, "r");
    } catch (err) {
      throw fromSystemError(err, abs, "open");
    }
    try {
      let pos = opts?.start ?? 0;
      // Buffers sized to the file: a fresh zero-filled 1 MiB per read cost ~2 MiB of memset and
      // garbage per 4 KiB file when small files stream to an SSH target (seconds, and RSS).
      // Reusing one buffer spares a big file's stream a fresh 1 MiB (page faults, then garbage to
      // collect) per read: 1 GiB to an SSH lane took ~0.3 CPU-s less.
      const size = (await fh.stat()).size;
      let reused: Buffer | null = null;
      for (;;) {
        throwIfAborted(opts?.signal);
        const want = Math.min(READ_CHUNK, Math.max(size - pos, 64 * 1024));
        const buf = opts?.reuseBuffer ? (reused !== null && reused.length >= want ? reused : (reused = Buffer.allocUnsafe(want))) : Buffer.allocUnsafe(want);
        const { bytesRead } = await fh.read(buf, 0, want, pos);
        if (bytesRead === 0) return;
        pos += bytesRead;
        yield buf.subarray(0, bytesRead);
      }
    } catch (err) {
      throw fromSystemError(err, abs, "read");
    } finally {
      await fh.close();
    }
  }

  async openWrite(rel: string, opts?: OpOptions & { mode?: number; size?: number }): Promise<FileWriter> {
    throwIfAborted(opts?.signal);
    const abs = this.resolve(rel, true);
    let fh: fsp.FileHandle;
    try {
      fh = await fsp.open(abs, "w", opts?.mode ?? 0o644);
      if (opts?.mode !== undefined) await fh.chmod(opts.mode); // the umask masked the open() mode
    } catch (err) {
      throw fromSystemError(err, abs, "create");
    }
    let closed = false;
    return {
      write: async (chunk) => {
        try {
          let off = 0;
          while (off < chunk.length) off += (await fh.write(chunk, off, chunk.length - off)).bytesWritten;
        } catch (err) {
          throw fromSystemError(err, abs, "write");
        }
      },
      close: async () => {
        if (closed) return;
        closed = true;
        try {
          await fh.close();
        } catch (err) {
          throw fromSystemError(err, abs, "close");
        }
      },
      abort: async () => {
        if (!closed) {
          closed = true;
          await fh.close();
        }
        await fsp.rm(abs, { force: true });
      },
    };
  }

  async mkdir(rel: string, opts?: OpOptions & { mode?: number; recursive?: boolean }): Promise<void> {
    throwIfAborted(opts?.signal);
    const abs = this.resolve(rel, false);
    try {
      fs.mkdirSync(abs, { recursive: opts?.recursive ?? false, mode: opts?.mode ?? 0o755 });
      if (opts?.mode !== undefined) fs.chmodSync(abs, opts.mode);
    } catch (err) {
      throw fromSystemError(err, abs, "create folder");
    }
  }

  async symlink(target: string, rel: string, opts?: OpOptions): Promise<void> {
    throwIfAborted(opts?.signal);
    const abs = this.resolve(rel, false);
    try {
      fs.symlinkSync(target, abs);
    } catch (err) {
      throw fromSystemError(err, abs, "create link");
    }
  }

  async setAttributes(rel: string, attrs: { mtimeMs?: number; mode?: number }, opts?: OpOptions): Promise<void> {
    throwIfAborted(opts?.signal);
    const abs = this.resolve(rel, false);
    try {
      const st = fs.lstatSync(abs);
      const when = attrs.mtimeMs === undefined ? undefined : attrs.mtimeMs / 1000;
      if (st.isSymbolicLink()) {
        // Linux cannot chmod a link; only its times can be set.
        if (when !== undefined) fs.lutimesSync(abs, when, when);
        return;
      }
      if (attrs.mode !== undefined) fs.chmodSync(abs, attrs.mode);
      if (when !== undefined) fs.utimesSync(abs, when, when);
    } catch (err) {
      throw fromSystemError(err, abs, "set attributes of");
    }
  }

  async rename(from: string, to: string, opts?: OpOptions & { replace?: boolean }): Promise<void> {
    throwIfAborted(opts?.signal);
    const src = this.resolve(from, false);
    const dst = this.resolve(to, false);
    if (!opts?.replace && lstatOrNull(dst) !== null) {
      throw new TransferError("TARGET_EXISTS", `${JSON.stringify(dst)} already exists`, { details: { path: to } });
    }
    try {
      fs.renameSync(src, dst);
    } catch (err) {
      throw fromSystemError(err, src, `rename to ${JSON.stringify(dst)}:`);
    }
  }

  async remove(rel: string, opts?: OpOptions & { recursive?: boolean }): Promise<void> {
    throwIfAborted(opts?.signal);
    if (normalizeRel(rel) === "") throw new TransferError("INVALID_SPEC", `refusing to remove the endpoint root ${this.label}`);
    const abs = this.resolve(rel, false);
    const st = lstatOrNull(abs);
    if (st === null) return;
    try {
      if (!st.isDirectory()) fs.unlinkSync(abs);
      else if (opts?.recursive) await fsp.rm(abs, { recursive: true, force: true });
      else fs.rmdirSync(abs);
    } catch (err) {
      throw fromSystemError(err, abs, "remove");
    }
  }

  async space(rel: string, opts?: OpOptions): Promise<SpaceInfo> {
    throwIfAborted(opts?.signal);
    let probe = this.resolve(rel, true);
    // The path may not exist yet (a target): measure the folder it will be created in.
    while (lstatOrNull(probe) === null && probe !== path.dirname(probe)) probe = path.dirname(probe);
    try {
      const s = fs.statfsSync(probe);
      return { freeBytes: s.bavail * s.bsize, totalBytes: s.blocks * s.bsize };
    } catch (err) {
      throw fromSystemError(err, probe, "measure free space of");
    }
  }

  async capabilities(): Promise<Capabilities> {
    return { hashes: LOCAL_HASHES, unzip: true, packZip: false };
  }

  async hashFiles(paths: readonly string[], algorithm: HashAlgorithm, opts?: OpOptions): Promise<Map<string, string>> {
    if (!LOCAL_HASHES.includes(algorithm)) throw new TransferError("UNSUPPORTED", `hash ${algorithm} is not available on ${this.label}`);
    const out = new Map<string, string>();
    // Two lanes: while one waits for a large file's read, the other hashes.
    await runPool(paths, 2, async (rel) => {
      throwIfAborted(opts?.signal);
      await maybeYield();
      out.set(rel, await hashLocalFile(this.resolve(rel, true), algorithm, opts?.signal));
    });
    return out;
  }

  async unzip(archive: string, into: string, opts?: OpOptions): Promise<void> {
    await unzipStored(this.resolve(archive, true), this.resolve(into, true), opts);
  }

  /** st_dev of `rel`: lets the engine tell whether a local move can be a rename. */
  device(rel: string): number {
    const abs = this.resolve(rel, false);
    try {
      return fs.lstatSync(abs).dev;
    } catch (err) {
      throw fromSystemError(err, abs, "stat");
    }
  }

  async close(): Promise<void> {}
}

function lstatOrNull(abs: string): fs.Stats | null {
  try {
    return fs.lstatSync(abs);
  } catch (err) {
    if (isMissing(err)) return null;
    throw fromSystemError(err, abs, "stat");
  }
}

function readlinkOrNull(abs: string): string | null {
  try {
    return fs.readlinkSync(abs);
  } catch (err) {
    // Not a link (EINVAL) or missing: the caller keeps walking up.
    const code = (err as { code?: string }).code;
    if (code === "EINVAL" || isMissing(err)) return null;
    throw fromSystemError(err, abs, "read link");
  }
}

/** Hashes one local file: small files in one synchronous read, large ones in 256 KiB reads (hashFd). */
export async function hashLocalFile(abs: string, algorithm: HashAlgorithm, signal?: AbortSignal): Promise<string> {
  let fd: number;
  try {
    fd = fs.openSync(abs, "r");
  } catch (err) {
    throw fromSystemError(err, abs, "open");
  }
  let size: number;
  try {
    size = fs.fstatSync(fd).size;
    if (size < BIG_READ) {
      // Pooled: one fresh buffer per file would leave hundreds of MiB for the GC on big trees.
      const pooled = takeBuffer();
      const buf = pooled.subarray(0, size + 1); // +1: a file that grew shows up as a longer read
      let n = 0;
      for (;;) {
        const got = fs.readSync(fd, buf, n, buf.length - n, null);
        if (got === 0 || n + got === buf.length) {
          n += got;
          break;
        }
        n += got;
      }
      try {
        if (n <= size) {
          const h = createHasher(algorithm);
          h.update(buf.subarray(0, n));
          return h.digest();
        }
      } finally {
        giveBuffer(pooled);
      }
    }
    return (await hashFd(fd, abs, algorithm, signal)).digest;
  } catch (err) {
    throw fromSystemError(err, abs, "read");
  } finally {
    fs.closeSync(fd);
  }
}

/**
 * Hashes an open file from the start with synchronous 256 KiB reads on this thread, giving the
 * event loop a turn every few ms. Measured on a cached 1 GiB file (CRC-32, medians of 5): 150 ms
 * wall and 150 ms CPU, against 195 ms / 222 ms with three 4 MiB reads in flight in the thread pool
 * (each chunk lands from another core and wakes this thread; 256 KiB-1 MiB async reads were no
 * better) and 194 ms with 4 MiB synchronous reads (the chunk overflows the CPU cache before the
 * hash reads it back). One read blocks for less than the whole-file reads of small files already
 * do. A short read ends the hash: callers compare the byte count (or the digest) with what they expect.
 */
export async function hashFd(fd: number, abs: string, algorithm: HashAlgorithm, signal?: AbortSignal): Promise<{ digest: string; bytes: number }> {
  const h = createHasher(algorithm);
  const pooled = takeBuffer();
  const buf = pooled.subarray(0, HASH_READ);
  let pos = 0;
  try {
    for (;;) {
      const n = fs.readSync(fd, buf, 0, HASH_READ, pos);
      h.update(buf.subarray(0, n));
      pos += n;
      if (n < HASH_READ) break;
      throwIfAborted(signal);
      await maybeYield();
    }
  } catch (err) {
    throw fromSystemError(err, abs, "read");
  } finally {
    giveBuffer(pooled);
  }
  return { digest: h.digest(), bytes: pos };
}

const bufferPool: Buffer[] = [];

function takeBuffer(): Buffer {
  return bufferPool.pop() ?? Buffer.allocUnsafe(BIG_READ);
}

function giveBuffer(b: Buffer): void {
  if (bufferPool.length < 16) bufferPool.push(b);
}
