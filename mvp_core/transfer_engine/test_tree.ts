/** Test helpers: build real trees on disk and snapshot them for comparison (used by *.test.ts only). */
import fs from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";

/** A temp folder of its own, removed by `cleanup`. */
export async function tempDir(prefix = "ketter-engine-"): Promise<{ dir: string; cleanup: () => Promise<void> }> {
  const dir = await mkdtemp(path.join(os.tmpdir(), prefix));
  return { dir, cleanup: () => rm(dir, { recursive: true, force: true }) };
}

/** Writes `files` (relative path → content or byte count of random data) under `root`. */
export function writeTree(root: string, files: Record<string, string | number | Uint8Array>): void {
  for (const [rel, content] of Object.entries(files)) {
    const abs = path.join(root, rel);
    if (rel.endsWith("/")) {
      fs.mkdirSync(abs, { recursive: true });
      continue;
    }
    fs.mkdirSync(path.dirname(abs), { recursive: true });
    fs.writeFileSync(abs, typeof content === "number" ? randomBytes(content) : content);
  }
}

/** `n` bytes of random data. */
export function randomBytes(n: number): Uint8Array {
  const b = new Uint8Array(n);
  for (let off = 0; off < n; off += 65536) crypto.getRandomValues(b.subarray(off, Math.min(n, off + 65536)));
  return b;
}

/** One entry of a snapshot: everything but the mtime as text, the mtime apart (compared with a tolerance). */
export interface Snap {
  desc: string;
  mtimeMs: number;
}

/** Everything about a tree a copy must preserve: type, permission bits, mtime, content hash, link text. */
export function snapshot(root: string): Record<string, Snap> {
  const out: Record<string, Snap> = {};
  const visit = (rel: string): void => {
    const abs = rel === "" ? root : path.join(root, rel);
    const st = fs.lstatSync(abs);
    const mtimeMs = st.mtimeMs;
    if (st.isSymbolicLink()) out[rel] = { desc: `link ${fs.readlinkSync(abs)}`, mtimeMs };
    else if (st.isFile()) out[rel] = { desc: `file ${(st.mode & 0o7777).toString(8)} ${st.size} ${new Bun.CryptoHasher("sha1").update(fs.readFileSync(abs)).digest("hex")}`, mtimeMs };
    else if (st.isDirectory()) {
      out[rel] = { desc: `dir ${(st.mode & 0o7777).toString(8)}`, mtimeMs };
      for (const name of fs.readdirSync(abs).sort()) visit(rel === "" ? name : `${rel}/${name}`);
    }
  };
  visit("");
  return out;
}

/**
 * Lists the differences between two snapshots. Mtimes may differ by under 1 µs: they travel as
 * float milliseconds (Entry.mtimeMs), which cannot carry every nanosecond of a modern timestamp.
 */
export function treeDiff(actual: Record<string, Snap>, expected: Record<string, Snap>): string[] {
  const out: string[] = [];
  for (const [p, want] of Object.entries(expected)) {
    const got = actual[p];
    if (got === undefined) out.push(`${JSON.stringify(p)} missing`);
    else if (got.desc !== want.desc) out.push(`${JSON.stringify(p)}: ${got.desc} != ${want.desc}`);
    else if (Math.abs(got.mtimeMs - want.mtimeMs) >= 0.001) out.push(`${JSON.stringify(p)}: mtime ${got.mtimeMs} != ${want.mtimeMs}`);
  }
  for (const p of Object.keys(actual)) if (!(p in expected)) out.push(`${JSON.stringify(p)} unexpected`);
  return out;
}

/** Names in `dir` that a transfer might leave behind. */
export function leftovers(dir: string): string[] {
  return fs.readdirSync(dir).filter((n) => n.startsWith(".ketter-"));
}
