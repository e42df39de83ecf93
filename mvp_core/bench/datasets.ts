/** The three datasets every transfer benchmark runs (the engine's and the SSH one compare on the same data). */
import fs from "node:fs";
import path from "node:path";

/** Bytes in a MiB. */
export const MiB = 1024 * 1024;

/** A dataset: `make` writes it into an empty folder. */
export interface Dataset {
  name: string;
  describe: string;
  make: (dir: string) => void;
}

/**
 * One large file (1 GiB), 10,000 × 4 KiB in 100 folders, and 20 × 20 MiB; `quick` shrinks them
 * (the large file to `quickBigMiB`). Content is random so no tool gains from compression or dedup.
 */
export function datasets(quick: boolean, quickBigMiB = 128): Dataset[] {
  const bigBytes = (quick ? quickBigMiB : 1024) * MiB;
  const smallCount = quick ? 2000 : 10_000;
  const medCount = quick ? 5 : 20;
  return [
    { name: "big", describe: `1 file × ${bigBytes / MiB} MiB`, make: (d) => writeRandomFile(path.join(d, "big.bin"), bigBytes) },
    {
      name: "small",
      describe: `${smallCount} × 4 KiB in ${smallCount / 100} folders`,
      make: (d) => {
        const block = randomBlock(4096);
        for (let i = 0; i < smallCount; i++) {
          const sub = path.join(d, `dir${String(i % (smallCount / 100)).padStart(3, "0")}`);
          if (i < smallCount / 100) fs.mkdirSync(sub, { recursive: true });
          block.writeUInt32LE(i, 0); // distinct content per file
          fs.writeFileSync(path.join(sub, `file${i}.dat`), block);
        }
      },
    },
    { name: "medium", describe: `${medCount} × 20 MiB`, make: (d) => { for (let i = 0; i < medCount; i++) writeRandomFile(path.join(d, `m${i}.bin`), 20 * MiB); } },
  ];
}

/** `n` random bytes (no tool gains from compression). */
export function randomBlock(n: number): Buffer {
  const b = Buffer.allocUnsafe(n);
  for (let off = 0; off < n; off += 65536) crypto.getRandomValues(b.subarray(off, Math.min(n, off + 65536)));
  return b;
}

/** Writes `bytes` of random content to `file` (its folder created), no two 16 MiB blocks alike. */
export function writeRandomFile(file: string, bytes: number): void {
  fs.mkdirSync(path.dirname(file), { recursive: true });
  const block = randomBlock(16 * MiB);
  const fd = fs.openSync(file, "w");
  try {
    for (let off = 0, i = 0; off < bytes; off += block.length, i++) {
      block.writeUInt32LE(i, 0); // no two blocks identical
      fs.writeSync(fd, block, 0, Math.min(block.length, bytes - off));
    }
  } finally {
    fs.closeSync(fd);
  }
}
