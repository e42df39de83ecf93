/**
 * The datasets of `bench:wan`, shaped like what LAB sends to SRVTRF (issue "Big footage over a
 * real WAN"): one big file, a camera card, an image sequence and a folder of many small files.
 * Content is random (no tool gains from compression); sizes are fixed by a seeded generator, so
 * every run moves the same bytes.
 */
import fs from "node:fs";
import path from "node:path";
import { type Dataset, MiB, randomBlock, writeRandomFile } from "./datasets.ts";

/** The names `--datasets` accepts, in table order. */
export const WAN_DATASETS = ["big", "card", "seq", "small"] as const;
/** One of WAN_DATASETS. */
export type WanDatasetName = (typeof WAN_DATASETS)[number];

/** A dataset of this benchmark, with its total size (the resume scenario watches the wire against it). */
export interface WanDataset extends Dataset {
  name: WanDatasetName;
  bytes: number;
}

/** Full size, or (`quick`) about a tenth: the same shapes, a couple of minutes in all. */
export function wanDatasets(quick: boolean): WanDataset[] {
  const big = (quick ? 256 : 2048) * MiB;
  const clip = (quick ? 64 : 400) * MiB;
  const sidecars = quick ? 100 : 300;
  const frames = quick ? 300 : 1500;
  const small = quick ? 2000 : 10_000;
  return [
    { name: "big", describe: `one ${big / MiB} MiB file`, bytes: big, make: (d) => writeRandomFile(path.join(d, "A001C001_footage.mov"), big) },
    {
      name: "card",
      describe: `camera card: 3 × ${clip / MiB} MiB + ${sidecars} sidecars of 1–64 KiB in nested folders`,
      bytes: 3 * clip + sidecarSizes(sidecars).reduce((a, b) => a + b, 0),
      make: (d) => makeCard(d, clip, sidecars),
    },
    {
      name: "seq",
      describe: `image sequence: ${frames} × 1 MiB in one folder`,
      bytes: frames * MiB,
      make: (d) => writeFiles(path.join(d, "SHOT_010"), frames, MiB, (i) => `SHOT_010.${String(i + 86_400).padStart(7, "0")}.dpx`),
    },
    {
      name: "small",
      describe: `${small} × 4 KiB in ${small / 100} folders`,
      bytes: small * 4096,
      make: (d) => {
        for (let f = 0; f < small / 100; f++) writeFiles(path.join(d, `dir${String(f).padStart(3, "0")}`), 100, 4096, (i) => `file${f * 100 + i}.dat`);
      },
    },
  ];
}

/** Sizes of the card's sidecar files, 1–64 KiB, the same on every run. */
function sidecarSizes(n: number): number[] {
  let seed = 0x5eed;
  const next = (): number => {
    seed = (seed * 1_103_515_245 + 12_345) % 2 ** 31;
    return seed / 2 ** 31;
  };
  return Array.from({ length: n }, () => 1024 + Math.floor(next() * 63 * 1024));
}

/** An XDCAM-like card: clips in one folder, sidecars (proxies, thumbnails, XML) nested per clip and kind. */
function makeCard(dir: string, clipBytes: number, sidecars: number): void {
  for (let c = 1; c <= 3; c++) writeRandomFile(path.join(dir, "PRIVATE/XDROOT/Clip", `C000${c}.MXF`), clipBytes);
  const kinds = ["Sub", "Thmbnl", "Edit", "General/Sony/Meta"];
  sidecarSizes(sidecars).forEach((bytes, i) => {
    const folder = path.join(dir, "PRIVATE/XDROOT", kinds[i % kinds.length] as string, `C000${(i % 3) + 1}`);
    fs.mkdirSync(folder, { recursive: true });
    const data = randomBlock(bytes);
    fs.writeFileSync(path.join(folder, `side${String(i).padStart(4, "0")}.bin`), data);
  });
}

/** `count` random files of `bytes` each in `dir` (created). */
function writeFiles(dir: string, count: number, bytes: number, name: (i: number) => string): void {
  fs.mkdirSync(dir, { recursive: true });
  const block = randomBlock(bytes);
  for (let i = 0; i < count; i++) {
    block.writeUInt32LE(i, 0); // distinct content per file
    fs.writeFileSync(path.join(dir, name(i)), block);
  }
}
