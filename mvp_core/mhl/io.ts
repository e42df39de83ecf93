/**
 * The only I/O the MHL library does, behind one small interface, so the engine can run the reader
 * and verifier over any endpoint (local or SFTP) and hash next to the data where it can. Paths are
 * absolute POSIX paths; the library joins them with "/". Writing is not here: the library returns
 * the bytes to write and the engine puts them in place with its own commit.
 */
import fs from "node:fs/promises";
import type { MhlHashFormat } from "./hash_format.ts";
import { createFormatHasher } from "./hash_format.ts";

/** One child of a folder. */
export interface MhlDirEntry {
  name: string;
  type: "file" | "dir" | "other";
  size: number;
  mtimeMs: number;
}

/** What the reader and verifier need from a file system. */
export interface MhlFs {
  /** The children of a folder; throws when it cannot be listed. */
  list(dir: string): Promise<MhlDirEntry[]>;
  /** A small file's bytes (manifests, chain files), or null when it does not exist. */
  readFile(path: string): Promise<Uint8Array | null>;
  /** A file's digests in the given formats, from one read (implementation guidelines 2.3). */
  hashFile(path: string, formats: readonly MhlHashFormat[]): Promise<Partial<Record<MhlHashFormat, string>>>;
}

/** Joins an absolute folder and a relative path ("" is the folder itself). */
export function joinFs(dir: string, rel: string): string {
  if (rel === "") return dir;
  return dir.endsWith("/") ? `${dir}${rel}` : `${dir}/${rel}`;
}

const READ_CHUNK = 1 << 20;

/** MhlFs over this machine's file system (node:fs), hashing in 1 MiB reads. */
export function localMhlFs(): MhlFs {
  return {
    async list(dir) {
      const names = await fs.readdir(dir, { withFileTypes: true });
      return Promise.all(
        names.map(async (d) => {
          const st = await fs.lstat(joinFs(dir, d.name));
          const type = st.isFile() ? "file" : st.isDirectory() ? "dir" : "other";
          return { name: d.name, type, size: st.size, mtimeMs: st.mtimeMs } satisfies MhlDirEntry;
        }),
      );
    },
    async readFile(path) {
      try {
        return new Uint8Array(await fs.readFile(path));
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code === "ENOENT") return null;
        throw e;
      }
    },
    async hashFile(path, formats) {
      const hashers = await Promise.all(formats.map((f) => createFormatHasher(f)));
      const fh = await fs.open(path, "r");
      try {
        const buf = new Uint8Array(READ_CHUNK);
        for (;;) {
          const { bytesRead } = await fh.read(buf, 0, READ_CHUNK, null);
          if (bytesRead === 0) break;
          const chunk = buf.subarray(0, bytesRead);
          for (const h of hashers) h.update(chunk);
        }
      } finally {
        await fh.close();
      }
      return Object.fromEntries(formats.map((f, i) => [f, hashers[i]?.digest()]));
    },
  };
}
