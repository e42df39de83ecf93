/**
 * The smoke fixture: a small folder of a few larger files (sent directly) and a folder of a few
 * thousand tiny files (sent as zip), with the hash of every file so the copies can be verified
 * byte for byte — even after a move removed the originals.
 */
import { randomBytes } from "node:crypto";
import { mkdir, readdir, readFile, writeFile } from "node:fs/promises";
import { join, relative } from "node:path";

/** Sizes of the generated folders; the defaults make the engine pick both strategies. */
export interface FixtureShape {
  /** Files in the "small" folder (a few hundred KiB each). */
  smallFiles: number;
  /** Files in the "many" folder (under 1 KiB each), spread over subfolders. */
  manyFiles: number;
}

/** 2,000 tiny files is twice the engine's default zip threshold (zipMinSmallFiles = 1,000). */
export const DEFAULT_FIXTURE: FixtureShape = { smallFiles: 4, manyFiles: 2_000 };

/** What a folder must contain: relative path → size and SHA-256. */
export type Manifest = Map<string, { size: number; sha256: string }>;

function sha256(data: Uint8Array): string {
  return new Bun.CryptoHasher("sha256").update(data).digest("hex");
}

async function writeFiles(dir: string, files: Array<{ rel: string; data: Uint8Array }>): Promise<Manifest> {
  const manifest: Manifest = new Map();
  const dirs = new Set(files.map((f) => join(dir, f.rel, "..")));
  for (const d of dirs) await mkdir(d, { recursive: true });
  // Writes in batches: thousands at once would exhaust file descriptors.
  for (let i = 0; i < files.length; i += 64) {
    await Promise.all(files.slice(i, i + 64).map((f) => writeFile(join(dir, f.rel), f.data)));
  }
  for (const f of files) manifest.set(f.rel, { size: f.data.length, sha256: sha256(f.data) });
  return manifest;
}

/** Writes the small folder into `dir` (random content, including an empty file and a subfolder). */
export function writeSmallFolder(dir: string, shape: FixtureShape = DEFAULT_FIXTURE): Promise<Manifest> {
  const files = Array.from({ length: shape.smallFiles }, (_, i) => ({
    rel: i % 2 === 0 ? `clip_${i}.mov` : `sub/clip_${i}.mov`,
    data: randomBytes(i === 0 ? 0 : 128 * 1024 + i * 97 * 1024),
  }));
  return writeFiles(dir, files);
}

/** Writes the many-tiny-files folder into `dir`, 100 files per subfolder. */
export function writeManyFolder(dir: string, shape: FixtureShape = DEFAULT_FIXTURE): Promise<Manifest> {
  const files = Array.from({ length: shape.manyFiles }, (_, i) => ({
    rel: `frames_${String(Math.floor(i / 100)).padStart(3, "0")}/f${String(i).padStart(5, "0")}.dpx`,
    data: randomBytes(i % 977),
  }));
  return writeFiles(dir, files);
}

/** Differences between `dir` and `expected` (missing, extra, different), at most `limit` of them; [] when identical. */
export async function compareFolder(dir: string, expected: Manifest, limit = 5): Promise<string[]> {
  const problems: string[] = [];
  const entries = await readdir(dir, { recursive: true, withFileTypes: true });
  const seen = new Set<string>();
  for (const e of entries) {
    if (!e.isFile()) continue;
    const rel = relative(dir, join(e.parentPath, e.name));
    seen.add(rel);
    const want = expected.get(rel);
    if (!want) {
      problems.push(`unexpected file ${rel}`);
      continue;
    }
    const data = await readFile(join(dir, rel));
    if (data.length !== want.size) problems.push(`${rel}: ${data.length} bytes, expected ${want.size}`);
    else if (sha256(data) !== want.sha256) problems.push(`${rel}: content differs`);
  }
  for (const rel of expected.keys()) if (!seen.has(rel)) problems.push(`missing ${rel}`);
  return problems.length > limit ? [...problems.slice(0, limit), `… ${problems.length - limit} more`] : problems;
}

/** Total bytes a manifest describes. */
export function manifestBytes(m: Manifest): number {
  let n = 0;
  for (const f of m.values()) n += f.size;
  return n;
}
