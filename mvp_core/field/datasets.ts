/**
 * The field test's three folders (a small nested one, 10,000 tiny files, a few large files), written
 * with random (incompressible) content and hashed while written, and the check that a folder holds
 * exactly those bytes: every file's size and SHA-256, every folder, nothing extra.
 */
import { createCipheriv, randomBytes } from "node:crypto";
import { mkdir, open, readdir, stat } from "node:fs/promises";
import { join, relative } from "node:path";

/** The three dataset names, in the order they run. */
export const DATASET_NAMES = ["small", "many", "large"] as const;
/** One of the three datasets. */
export type DatasetName = (typeof DATASET_NAMES)[number];

/** What a dataset holds before it is written: every file with its size, every folder (also empty ones). */
export interface DatasetSpec {
  name: DatasetName;
  describe: string;
  files: Array<{ rel: string; size: number }>;
  dirs: string[];
}

/** What a folder must contain after a transfer: relative path → size and SHA-256, and its folders. */
export interface Manifest {
  files: Map<string, { size: number; sha256: string }>;
  dirs: Set<string>;
}

const KiB = 1024;
const MiB = 1024 * KiB;

/** The datasets of a full run, or of `--quick` (same shapes, fewer and smaller files). */
export function datasetSpecs(quick: boolean): DatasetSpec[] {
  const smallCount = quick ? 20 : 50;
  const small: DatasetSpec = {
    name: "small",
    describe: "",
    // Three levels deep, sizes from 0 bytes (an empty file) to ~150 KiB, and one empty folder.
    files: Array.from({ length: smallCount }, (_, i) => ({
      rel: [`reel_${i % 3}`, ...(i % 2 ? [`take_${i % 4}`] : []), ...(i % 5 === 0 ? ["audio"] : []), `clip_${String(i).padStart(3, "0")}.mov`].join("/"),
      size: i === 0 ? 0 : ((i * 37) % 150) * KiB + i * 13,
    })),
    dirs: ["notes/empty"],
  };
  const perDir = 100;
  const manyCount = quick ? 1_000 : 10_000;
  const many: DatasetSpec = {
    name: "many",
    describe: "",
    files: Array.from({ length: manyCount }, (_, i) => ({
      rel: `frames_${String(Math.floor(i / perDir)).padStart(3, "0")}/f${String(i).padStart(5, "0")}.dpx`,
      size: 4 * KiB,
    })),
    dirs: [],
  };
  const largeCount = quick ? 2 : 4;
  const largeSize = (quick ? 128 : 256) * MiB;
  const large: DatasetSpec = {
    name: "large",
    describe: "",
    files: Array.from({ length: largeCount }, (_, i) => ({ rel: `camera_a/A00${i + 1}.mxf`, size: largeSize })),
    dirs: [],
  };
  for (const d of [small, many, large]) d.describe = describeSpec(d);
  return [small, many, large];
}

/** "50 files, 3.6 MiB, 7 folders" — for the report. */
export function describeSpec(spec: DatasetSpec): string {
  const bytes = spec.files.reduce((n, f) => n + f.size, 0);
  return `${spec.files.length.toLocaleString("en-US")} files, ${formatBytes(bytes)}, ${allDirs(spec).size} folders`;
}

/** Every folder a spec implies (parents of its files, its empty folders and their parents). */
export function allDirs(spec: DatasetSpec): Set<string> {
  const dirs = new Set<string>();
  const addParents = (rel: string): void => {
    for (let d = parentOf(rel); d !== ""; d = parentOf(d)) dirs.add(d);
  };
  for (const f of spec.files) addParents(f.rel);
  for (const d of spec.dirs) {
    dirs.add(d);
    addParents(d);
  }
  return dirs;
}

function parentOf(rel: string): string {
  const i = rel.lastIndexOf("/");
  return i < 0 ? "" : rel.slice(0, i);
}

/** Total bytes a manifest describes. */
export function manifestBytes(m: Manifest): number {
  let n = 0;
  for (const f of m.files.values()) n += f.size;
  return n;
}

/** Human-readable size (binary units). */
export function formatBytes(n: number): string {
  if (n < KiB) return `${n} B`;
  if (n < MiB) return `${(n / KiB).toFixed(1)} KiB`;
  if (n < 1024 * MiB) return `${(n / MiB).toFixed(1)} MiB`;
  return `${(n / 1024 / MiB).toFixed(2)} GiB`;
}

/**
 * Writes `spec` into `dir` (which must not exist) and returns its manifest. Content is an AES-CTR
 * keystream under a random key: as random as randomBytes for compression's sake, and many times
 * faster, which matters for a gigabyte.
 */
export async function writeDataset(dir: string, spec: DatasetSpec): Promise<Manifest> {
  const dirs = allDirs(spec);
  await mkdir(dir, { recursive: false });
  for (const d of [...dirs].sort()) await mkdir(join(dir, d), { recursive: true });
  const cipher = createCipheriv("aes-128-ctr", randomBytes(16), randomBytes(16));
  const files: Manifest["files"] = new Map();
  const chunk = 8 * MiB;
  const zeros = Buffer.alloc(chunk);
  // Sequential on purpose: one keystream, and 10,000 concurrent small writes buy nothing on one disk.
  for (const f of spec.files) {
    const hasher = new Bun.CryptoHasher("sha256");
    const fh = await open(join(dir, f.rel), "wx");
    try {
      for (let done = 0; done < f.size; done += chunk) {
        const data = cipher.update(zeros.subarray(0, Math.min(chunk, f.size - done)));
        hasher.update(data);
        await fh.write(data);
      }
    } finally {
      await fh.close();
    }
    files.set(f.rel, { size: f.size, sha256: hasher.digest("hex") });
  }
  return { files, dirs };
}

/** SHA-256 of a file, streamed (large files do not fit comfortably in memory twice). */
export async function hashFile(path: string): Promise<string> {
  const hasher = new Bun.CryptoHasher("sha256");
  for await (const chunk of Bun.file(path).stream()) hasher.update(chunk);
  return hasher.digest("hex");
}

/** Reads what `dir` holds now: every file hashed, every folder listed. */
export async function readManifest(dir: string): Promise<Manifest> {
  const entries = await readdir(dir, { recursive: true, withFileTypes: true });
  const files: Manifest["files"] = new Map();
  const dirs = new Set<string>();
  const fileRels: string[] = [];
  for (const e of entries) {
    const rel = relative(dir, join(e.parentPath, e.name));
    if (e.isDirectory()) dirs.add(rel);
    else if (e.isFile()) fileRels.push(rel);
    // Anything else (a link, a socket) has no business in a copy of these datasets.
    else files.set(rel, { size: -1, sha256: "not a regular file" });
  }
  // Hashing a few at a time keeps small files fast without opening thousands of descriptors.
  for (let i = 0; i < fileRels.length; i += 32) {
    await Promise.all(
      fileRels.slice(i, i + 32).map(async (rel) => {
        const path = join(dir, rel);
        const [info, sha256] = await Promise.all([stat(path), hashFile(path)]);
        files.set(rel, { size: info.size, sha256 });
      }),
    );
  }
  return { files, dirs };
}

/** Differences between what a folder holds and what it should (missing, extra, different); [] when identical. */
export function compareManifests(actual: Manifest, expected: Manifest, limit = 5): string[] {
  const problems: string[] = [];
  for (const [rel, want] of expected.files) {
    const got = actual.files.get(rel);
    if (!got) problems.push(`missing file ${rel}`);
    else if (got.size !== want.size) problems.push(`${rel}: ${got.size} bytes, expected ${want.size}`);
    else if (got.sha256 !== want.sha256) problems.push(`${rel}: content differs (sha256 ${got.sha256.slice(0, 12)}…, expected ${want.sha256.slice(0, 12)}…)`);
  }
  for (const rel of actual.files.keys()) if (!expected.files.has(rel)) problems.push(`unexpected file ${rel}`);
  for (const d of expected.dirs) if (!actual.dirs.has(d)) problems.push(`missing folder ${d}`);
  for (const d of actual.dirs) if (!expected.dirs.has(d)) problems.push(`unexpected folder ${d}`);
  return problems.length > limit ? [...problems.slice(0, limit), `… and ${problems.length - limit} more`] : problems;
}

/** Differences between folder `dir` and `expected`; a missing folder is one problem. */
export async function verifyFolder(dir: string, expected: Manifest): Promise<string[]> {
  const info = await stat(dir).catch((err: NodeJS.ErrnoException) => {
    if (err.code === "ENOENT") return null;
    throw err;
  });
  if (!info) return [`${dir} does not exist`];
  if (!info.isDirectory()) return [`${dir} is not a folder`];
  return compareManifests(await readManifest(dir), expected);
}

/** True when nothing exists at `path` any more (what a move must leave behind). */
export async function isGone(path: string): Promise<boolean> {
  return stat(path).then(
    () => false,
    (err: NodeJS.ErrnoException) => {
      if (err.code === "ENOENT") return true;
      throw err;
    },
  );
}
