/**
 * The file-system abstraction every transfer goes through: the engine's one seam. `local` and
 * `sftp` implement it; one conformance suite (conformance.ts) runs against both.
 *
 * Paths are POSIX, relative to the endpoint's root ("" is the root itself). An endpoint refuses any
 * path that escapes its root (`..`, absolute paths, symlinks resolving outside) with PATH_ESCAPE.
 *
 * Fast paths are optional methods (rclone's `Features`): an adapter that can do something better
 * than the generic streams implements the method, and the steps use it when present. No step ever
 * asks which adapter it holds; an adapter may decline a call it cannot serve (return null/false).
 */

export type EntryType = "file" | "dir" | "symlink";

/** What stat/walk report about one entry. `path` is relative to the endpoint root (walk: to the walked folder). */
export interface Entry {
  path: string;
  type: EntryType;
  size: number;
  mtimeMs: number;
  /** Permission bits only (mode & 0o7777). */
  mode: number;
  /** Present for symlinks: the link's target text, unresolved. */
  linkTarget?: string;
  /**
   * Where the endpoint can see them, the file's inode and status-change time: any rewrite changes
   * them, even one that restores the size and mtime (`touch -r`). Opaque; compared for equality.
   */
  change?: string;
}

export interface SpaceInfo {
  freeBytes: number;
  totalBytes: number;
}

/** A file being written under a staging name; close() flushes it, abort() discards it. */
export interface FileWriter {
  /** Once the promise settles the caller may reuse `chunk`'s memory: a writer that keeps bytes copies them. */
  write(chunk: Uint8Array): Promise<void>;
  close(): Promise<void>;
  abort(): Promise<void>;
}

export interface OpOptions {
  signal?: AbortSignal;
}

export interface ReadOptions extends OpOptions {
  start?: number;
  /** Reads at most this many bytes from `start` (a range of the file); absent: to the end. */
  length?: number;
  reuseBuffer?: boolean;
}

/** How openWrite opens its file. */
export interface WriteOptions extends OpOptions {
  /** Permission bits the file gets (whole-file mode only: a range leaves them to the caller). */
  mode?: number;
  /** Bytes that will be written (the whole file; in range mode, the range). */
  size?: number;
  /**
   * Range mode: the bytes written land at this offset of the file, which is created (0600) when
   * missing and never truncated — several writers may fill one file at once, each its own range,
   * and a later attempt may fill in what an earlier one did not. abort() stops the range and
   * leaves the file (other ranges are in it).
   */
  offset?: number;
  /**
   * Range mode: told, from time to time and at close, how many bytes of the range (from `offset`)
   * the destination has written so far, with their CRC-32 as the destination computed it: what a
   * later attempt may re-check and keep after this process died (see steps/journal.ts).
   */
  onWritten?: (bytes: number, crc32: number) => void;
}

/** A byte range of a file, for crcRanges. */
export interface FileRange {
  path: string;
  offset: number;
  length: number;
}

/** How many byte streams an endpoint carries well at once, and why (for the event log). */
export interface StreamCapacity {
  streams: number;
  why: string;
}

/** Content hash names shared by both ends of a verification (the engine picks one both support). */
export const HASH_ALGORITHMS = ["xxh3", "xxh64", "xxh128", "crc32", "md5", "sha1", "sha256", "blake2b512"] as const;
/** One of HASH_ALGORITHMS (xxh3 is XXH3-64; xxh128 is XXH3-128; hex as `xxhsum` prints them). */
export type HashAlgorithm = (typeof HASH_ALGORITHMS)[number];

/** Optional abilities; the engine plans around them and records a fallback when one is missing. */
export interface Capabilities {
  /** Hash algorithms computed next to the data (locally, or by one remote command over many files), cheapest there first. */
  hashes: readonly HashAlgorithm[];
  unzip: boolean;
  packZip: boolean;
}

/** One entry of a zip sent to unzipStream. */
export interface UnzipStreamEntry {
  size: number;
  mode?: number;
  mtimeMs?: number;
}

/**
 * Where a path really is, so the engine can tell whether two paths (on any two endpoints) are the
 * same place, one inside the other, or apart — before anything is written. See location.ts.
 */
export interface Location {
  /** Boot id of the kernel that serves the path: inode numbers compare only within one. Null: cannot tell. */
  kernel: string | null;
  /** Namespace in which `realPath` names a file: in one scope, one real path is one file. */
  scope: string;
  /** The path, or (see `missing`) its nearest existing ancestor, absolute with every link resolved. */
  realPath: string;
  /** The components below realPath that do not exist yet ("" when the path itself exists). */
  missing: string;
  /** "dev:ino" of realPath and of each ancestor up to "/", nearest first; null when the endpoint cannot tell. */
  chain: string[] | null;
  /** realPath lies on a network or FUSE file system (another machine may reach it under another identity); null: unknown. */
  shared: boolean | null;
}

/** What copyFilesFrom needs besides the files: where, which hash, the rate budget, and where to report. */
export interface CopyFilesOptions extends OpOptions {
  /** Folder the files' paths are relative to, on the source and on this endpoint. */
  sourcePath: string;
  targetPath: string;
  hash: HashAlgorithm | null;
  /** Files up to this size may be copied with one read and one write. */
  wholeFileBytes: number;
  /** Awaited before reading `bytes` more from the source (the engine's rate limit); absent: no limit. */
  throttle?: (bytes: number) => Promise<void>;
  /** Called as bytes land and as files complete (from any thread of the copy, in order per file). */
  onProgress: (files: number, bytes: number) => void;
  /**
   * When present, asked about each failed file: true means "recorded as that file's own failure,
   * go on with the others" (skipFileErrors); false (or absent) stops the copy with the error.
   */
  onFileError?: (e: Entry, err: unknown) => boolean;
}

export interface Endpoint {
  readonly kind: "local" | "sftp";
  /** Human-readable location, e.g. "/data/footage" or "ketter@srvtrf:22:/srv/in". Never contains secrets. */
  readonly label: string;

  /** lstat: null when the path does not exist. */
  stat(path: string, opts?: OpOptions): Promise<Entry | null>;
  /** Every entry below `path` (not `path` itself), parents before children, paths relative to `path`. */
  walk(path: string, opts?: OpOptions): AsyncIterable<Entry>;

  /**
   * The file's bytes from `start`. With `reuseBuffer` a chunk is valid only until the next one is
   * requested (the reader may read into the same memory again), for callers that are done with
   * each chunk by then; readers may ignore it and hand out fresh chunks.
   */
  openRead(path: string, opts?: ReadOptions): AsyncIterable<Uint8Array>;
  /**
   * Creates or truncates `path` (normally a staging name) for writing with permission bits `mode`;
   * with `offset`, writes a range into it instead (see WriteOptions).
   */
  openWrite(path: string, opts?: WriteOptions): Promise<FileWriter>;

  mkdir(path: string, opts?: OpOptions & { mode?: number; recursive?: boolean }): Promise<void>;
  symlink(target: string, path: string, opts?: OpOptions): Promise<void>;
  setAttributes(path: string, attrs: { mtimeMs?: number; mode?: number }, opts?: OpOptions): Promise<void>;
  /** Atomic rename within the endpoint; refuses (TARGET_EXISTS) when `to` exists unless `replace`. */
  rename(from: string, to: string, opts?: OpOptions & { replace?: boolean }): Promise<void>;
  /** Removes a file, link or (with recursive) a whole tree; a missing path is not an error. */
  remove(path: string, opts?: OpOptions & { recursive?: boolean }): Promise<void>;
  space(path: string, opts?: OpOptions): Promise<SpaceInfo>;

  /** What this endpoint can do next to the data; probed once per endpoint and cached. */
  capabilities(opts?: OpOptions): Promise<Capabilities>;
  /** Hashes of many files at once (hex), keyed by the given paths; one of capabilities().hashes. */
  hashFiles(paths: readonly string[], algorithm: HashAlgorithm, opts?: OpOptions): Promise<Map<string, string>>;
  /** Where `path` (or its nearest existing ancestor) really is; see Location. */
  locate(path: string, opts?: OpOptions): Promise<Location>;

  /** Unpacks the stored-zip archive `archive` into the existing folder `into` (only when capabilities().unzip). */
  unzip?(archive: string, into: string, opts?: OpOptions): Promise<void>;
  /**
   * Optional: a writer that unpacks the stored zip written to it into the existing folder `into`
   * while it arrives (no archive lands at the destination, unpacking overlaps the transfer).
   * `entries` follow archive order: each size (the zip states it only after the data), and the
   * mode and mtime the file gets once written. close() resolves once every entry is written, its
   * CRC-32 checked and its attributes set.
   */
  unzipStream?(into: string, entries: readonly UnzipStreamEntry[], opts?: OpOptions): Promise<FileWriter>;
  /**
   * Streams a stored (uncompressed) zip of the folder `path`, packed next to the data (only when
   * capabilities().packZip): lets a remote source send thousands of small files as one stream.
   */
  packZip?(path: string, opts?: OpOptions): AsyncIterable<Uint8Array>;

  /**
   * Optional batch form of mkdir (non-recursive, parents listed before children): a remote endpoint
   * creates thousands of folders in a few round trips instead of one each.
   */
  mkdirMany?(dirs: readonly { path: string; mode?: number }[], opts?: OpOptions): Promise<void>;
  /** Optional batch form of setAttributes for files and folders (links are left alone), for the same reason. */
  setAttributesMany?(items: readonly { path: string; mtimeMs?: number; mode?: number }[], opts?: OpOptions): Promise<void>;

  /**
   * Optional: copies `files` (paths relative to opts.sourcePath) from `source` to the same paths
   * below opts.targetPath here, faster than the streams would, checking each against its scanned
   * entry (SOURCE_CHANGED) and returning the source hashes. Null when it cannot serve this source:
   * the engine then streams. (local: the kernel copies, small files on two threads.)
   */
  copyFilesFrom?(source: Endpoint, files: readonly Entry[], opts: CopyFilesOptions): Promise<Map<string, string>> | null;
  /**
   * Optional: moves `from` on `source` to `to` here with one atomic rename (never replacing `to`);
   * false when that is impossible (another kind of endpoint, another file system) and nothing moved.
   */
  renameFrom?(source: Endpoint, from: string, to: string, opts?: OpOptions): Promise<boolean>;
  /**
   * Optional: a small file's bytes in one read, checked against its scanned entry (SOURCE_CHANGED
   * when it differs); for packers that would otherwise stream thousands of tiny files.
   */
  readWhole?(path: string, expected: Entry, opts?: OpOptions): Promise<Uint8Array>;
  /**
   * Optional: the current entries of many paths in one call (a remote shell's stat), so the engine can
   * re-check a source after copying without a round trip per file. Keyed by the given paths; null for
   * a path that does not exist. Entries carry `change` in the same shape as the endpoint's walk.
   */
  statMany?(paths: readonly string[], opts?: OpOptions): Promise<Map<string, Entry | null>>;
  /**
   * Optional: the CRC-32 of each range, computed next to the data (a remote endpoint: one command
   * for all of them), in the order given; null for a range the file does not hold in full (missing,
   * shorter). Lets a resumed transfer re-check the bytes an earlier attempt left.
   */
  crcRanges?(ranges: readonly FileRange[], opts?: OpOptions): Promise<(number | null)[]>;
  /**
   * Optional: how many byte streams (file reads or writes, whole files or ranges of one) this
   * endpoint carries well at once — a remote endpoint over a long link gains from several, each
   * with its own flow-control window. Asked again after a transfer: a server that refused extra
   * sessions or connections lowers it. Absent: streams gain nothing here (a local disk).
   */
  streamCapacity?(opts?: OpOptions): Promise<StreamCapacity>;
  /**
   * Optional: the transfer is about to move enough bytes for about `streams` streams at once; open
   * what carries them now (an SSH endpoint's extra connections: a handshake each, never more than
   * its shape allows) rather than when the first stream waits for it. Never fails: what cannot be
   * opened is what streamCapacity says later.
   */
  warmStreams?(streams: number): void;

  close(): Promise<void>;
}
