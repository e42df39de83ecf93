/**
 * `bun run bench:hash [--rounds N (default 3)] [--quick] [--parts hash,tools,copy,manifest]`
 *
 * What the choice of verification algorithm and ASC MHL manifests cost, in four parts, rounds
 * interleaved (each round runs every method once, in a rotating order) and medians reported:
 *
 * 1. Hashing in this process: MiB/s over 1 GiB (a 64 MiB random buffer fed 16 times, so the data
 *    comes from memory, not cache) in 1 MiB and 256 KiB chunks, for CRC-32 (`Bun.hash.crc32`),
 *    XXH64/XXH3/XXH128 from each backend (system libxxhash, `@node-rs/xxhash`, `hash-wasm`),
 *    SHA-1 and MD5 (`Bun.CryptoHasher`).
 * 2. The standard tools on a 1 GiB file in the page cache: `xxhsum -H1/-H3/-H2`, `md5sum`,
 *    `sha1sum`, `cksum`.
 * 3. A verified local copy of the 1 GiB file, as the engine's checksum path does it: copy
 *    (copy_file_range, as `cp`), read and hash the source, read back and hash the copy (256 KiB
 *    synchronous reads like local.ts), compare. Ratios against the CRC-32 run and against `cp`.
 *    The engine overlaps the source read with the copy; this sequential form bills hashing fully.
 * 4. The manifest of a 10,000-file job (100 folders × 100 files): building the first generation
 *    (validation, directory hashes, XML, C4, chain), reading it back, and appending a verification
 *    generation; `xmllint` parsing and XSD-validating the same manifest for comparison.
 *
 * Files live on a fresh journaled ext4 when run as root (scratch_disk.ts). Prints tables and
 * targets; writes docs/bench/hash-<ts>.json and hash-latest.json.
 */
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { parseArgs } from "node:util";
import { type Hasher, type XxhAlgorithm, type XxhBackend, createXxhHasher, xxhashBackend } from "../hashing/xxhash.ts";
import { buildGeneration } from "../mhl/generation.ts";
import type { MhlHistory } from "../mhl/history.ts";
import { parseManifest } from "../mhl/manifest_reader.ts";
import type { GenerationInput } from "../mhl/model.ts";
import { referenceDir } from "../mhl/test_support.ts";
import { formatTargets, machineInfo, saveResults } from "./results.ts";
import { type ScratchDisk, mountScratchDisk } from "./scratch_disk.ts";

const MiB = 1024 * 1024;

type Factory = () => Promise<Hasher>;

function crc32Hasher(): Hasher {
  let crc = 0;
  return { update: (c) => void (crc = Bun.hash.crc32(c, crc)), digest: () => (crc >>> 0).toString(16).padStart(8, "0") };
}

function cryptoHasher(alg: "sha1" | "md5"): Hasher {
  const h = new Bun.CryptoHasher(alg);
  return { update: (c) => void h.update(c), digest: () => h.digest("hex") };
}

const xxh = (alg: XxhAlgorithm, backend: XxhBackend): Factory => () => createXxhHasher(alg, backend);

const IN_PROCESS: [string, Factory][] = [
  ["crc32", async () => crc32Hasher()],
  ["xxh64 (system)", xxh("xxh64", "system")],
  ["xxh3 (system)", xxh("xxh3", "system")],
  ["xxh128 (system)", xxh("xxh128", "system")],
  ["xxh64 (native)", xxh("xxh64", "native")],
  ["xxh3 (native)", xxh("xxh3", "native")],
  ["xxh64 (wasm)", xxh("xxh64", "wasm")],
  ["xxh3 (wasm)", xxh("xxh3", "wasm")],
  ["xxh128 (wasm)", xxh("xxh128", "wasm")],
  ["sha1", async () => cryptoHasher("sha1")],
  ["md5", async () => cryptoHasher("md5")],
];

const TOOLS: [string, string[]][] = [
  ["xxhsum -H1 (xxh64)", ["xxhsum", "-H1"]],
  ["xxhsum -H3 (xxh3)", ["xxhsum", "-H3"]],
  ["xxhsum -H2 (xxh128)", ["xxhsum", "-H2"]],
  ["cksum (POSIX CRC)", ["cksum"]],
  ["sha1sum", ["sha1sum"]],
  ["md5sum", ["md5sum"]],
];

const COPY_HASHES: [string, Factory | null][] = [
  ["size only", null],
  ["crc32", async () => crc32Hasher()],
  ["xxh64 (system)", xxh("xxh64", "system")],
  ["xxh3 (system)", xxh("xxh3", "system")],
  ["xxh128 (system)", xxh("xxh128", "system")],
  ["xxh3 (native)", xxh("xxh3", "native")],
];

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 ? (s[mid] as number) : ((s[mid - 1] as number) + (s[mid] as number)) / 2;
}

function rotate<T>(xs: readonly T[], round: number): T[] {
  return xs.map((_, i) => xs[(i + round) % xs.length] as T);
}

async function hashBuffer(factory: Factory, block: Uint8Array, totalBytes: number, chunk: number): Promise<number> {
  const h = await factory();
  const t0 = performance.now();
  for (let done = 0; done < totalBytes; done += block.length) for (let o = 0; o < block.length; o += chunk) h.update(block.subarray(o, o + chunk));
  h.digest();
  return (performance.now() - t0) / 1000;
}

const READ = 256 * 1024;

function hashFileSync(h: Hasher, file: string): string {
  const fd = fs.openSync(file, "r");
  try {
    const buf = new Uint8Array(READ);
    for (;;) {
      const n = fs.readSync(fd, buf, 0, READ, null);
      if (n === 0) break;
      h.update(buf.subarray(0, n));
    }
  } finally {
    fs.closeSync(fd);
  }
  return h.digest();
}

async function verifiedCopy(factory: Factory | null, src: string, dst: string): Promise<{ wallS: number; cpuS: number }> {
  fs.rmSync(dst, { force: true });
  Bun.spawnSync(["sync"]);
  const r = await timed(async () => {
    fs.copyFileSync(src, dst);
    if (factory === null) {
      if (fs.statSync(dst).size !== fs.statSync(src).size) throw new Error("size differs");
    } else {
      const a = hashFileSync(await factory(), src);
      const b = hashFileSync(await factory(), dst);
      if (a !== b) throw new Error("hash differs");
    }
  });
  return { wallS: r.wallS, cpuS: r.cpuS };
}

function timeTool(argv: string[]): number {
  return runTool(argv).wallS;
}

/** Wall and CPU seconds (user + system) of a child process. */
function runTool(argv: string[]): { wallS: number; cpuS: number } {
  const t0 = performance.now();
  const p = Bun.spawnSync(argv, { stdout: "ignore", stderr: "pipe" });
  if (p.exitCode !== 0) throw new Error(`${argv.join(" ")} failed: ${p.stderr.toString()}`);
  const wallS = (performance.now() - t0) / 1000;
  return { wallS, cpuS: Number(p.resourceUsage.cpuTime.total) / 1e6 };
}

/**
 * Wall and CPU seconds of `fn` in this process. CPU time (all threads: JIT and GC included) is the
 * figure that survives a loaded machine, where wall time also counts waiting for a core.
 */
async function timed<T>(fn: () => Promise<T>): Promise<{ value: T; wallS: number; cpuS: number }> {
  const c = process.cpuUsage();
  const t0 = performance.now();
  const value = await fn();
  const wallS = (performance.now() - t0) / 1000;
  const d = process.cpuUsage(c);
  return { value, wallS, cpuS: (d.user + d.system) / 1e6 };
}

function jobInput(files: number, createdAt: Date): GenerationInput {
  const list: GenerationInput["files"] = [];
  for (let d = 0; d < files / 100; d++) {
    for (let i = 0; i < 100; i++) {
      const hash = Bun.hash.xxHash64(`${d}/${i}`).toString(16).padStart(16, "0");
      list.push({ path: `A${String(d).padStart(3, "0")}R2EC/Clips/A${String(d).padStart(3, "0")}C${String(i).padStart(3, "0")}_141024_R2EC.mov`, size: 4096 + i, lastModified: new Date(1_700_000_000_000 + i * 1000), hashes: { xxh64: hash } });
    }
  }
  return { rootName: "Job", createdAt, creator: { tool: { name: "Ketter", version: "3.0.0" }, hostName: os.hostname() }, hashFormat: "xxh64", files: list };
}

interface ManifestSample {
  buildS: number;
  buildCpuS: number;
  parseS: number;
  parseCpuS: number;
  appendS: number;
  appendCpuS: number;
  xmllintParseS: number;
  xmllintParseCpuS: number;
  xmllintXsdS: number;
  xmllintXsdCpuS: number;
  bytes: number;
}

async function manifestRound(dir: string, xsd: string): Promise<ManifestSample> {
  const input = jobInput(10_000, new Date("2026-12-02T10:00:00Z"));
  const build = await timed(() => buildGeneration(input, null));
  const first = build.value;
  const bytes = first.writes[0]?.bytes as Uint8Array;
  const file = path.join(dir, "job.mhl");
  fs.writeFileSync(file, bytes);
  const parse = await timed(async () => parseManifest(new TextDecoder().decode(bytes), "job.mhl"));
  const m = first.manifests[0];
  if (m === undefined) throw new Error("no manifest");
  const history: MhlHistory = { path: "", folderName: "Job", exists: true, chain: [{ sequence: 1, path: m.fileName, c4: m.c4 }], generations: [{ sequence: 1, fileName: m.fileName, c4: m.c4, manifest: parse.value }], problems: [], children: [] };
  const append = await timed(() => buildGeneration({ ...input, createdAt: new Date("2026-12-03T10:00:00Z") }, history));
  if (append.value.failed.length !== 0 || append.value.manifests[0]?.sequence !== 2) throw new Error("the appended generation is wrong");
  const lintParse = runTool(["xmllint", "--noout", file]);
  const lintXsd = runTool(["xmllint", "--noout", "--schema", xsd, file]);
  return {
    buildS: build.wallS,
    buildCpuS: build.cpuS,
    parseS: parse.wallS,
    parseCpuS: parse.cpuS,
    appendS: append.wallS,
    appendCpuS: append.cpuS,
    xmllintParseS: lintParse.wallS,
    xmllintParseCpuS: lintParse.cpuS,
    xmllintXsdS: lintXsd.wallS,
    xmllintXsdCpuS: lintXsd.cpuS,
    bytes: bytes.length,
  };
}

function writeRandomFile(file: string, bytes: number): void {
  const block = new Uint8Array(64 * MiB);
  for (let o = 0; o < block.length; o += 65536) crypto.getRandomValues(block.subarray(o, o + 65536));
  const fd = fs.openSync(file, "w");
  for (let done = 0; done < bytes; done += block.length) fs.writeSync(fd, block, 0, Math.min(block.length, bytes - done));
  fs.closeSync(fd);
}

function table(title: string, head: string[], rows: (string | number)[][]): void {
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => String(r[i]).length)));
  const line = (cells: (string | number)[]) => cells.map((c, i) => (i === 0 ? String(c).padEnd(widths[i] as number) : String(c).padStart(widths[i] as number))).join("  ");
  process.stdout.write(`\n${title}\n${line(head)}\n${"-".repeat(widths.reduce((a, b) => a + b + 2, -2))}\n${rows.map(line).join("\n")}\n`);
}

async function main(): Promise<number> {
  const { values } = parseArgs({ args: process.argv.slice(2), options: { rounds: { type: "string" }, quick: { type: "boolean" }, parts: { type: "string" } } });
  const parts = new Set((values.parts ?? "hash,tools,copy,manifest").split(","));
  for (const p of parts) {
    if (!["hash", "tools", "copy", "manifest"].includes(p)) {
      process.stderr.write(`--parts takes a comma-separated subset of hash,tools,copy,manifest (got ${p})\n`);
      return 2;
    }
  }
  const rounds = Number(values.rounds ?? 3);
  if (!Number.isInteger(rounds) || rounds < 1) {
    process.stderr.write("--rounds must be a positive integer\n");
    return 2;
  }
  const total = values.quick ? 256 * MiB : 1024 * MiB;
  const xsd = path.join(referenceDir(), "xsd/ASCMHL.xsd");
  for (const tool of ["xxhsum", "xmllint"]) if (!Bun.which(tool)) throw new Error(`${tool} is missing: apt-get install xxhash libxml2-utils`);
  const root = fs.mkdtempSync(path.join(os.tmpdir(), "ketter-bench-hash-"));
  let disk: ScratchDisk | null = null;
  const inProcess: { name: string; chunkKiB: number; round: number; seconds: number }[] = [];
  const tools: { name: string; round: number; seconds: number }[] = [];
  const copies: { name: string; round: number; seconds: number; cpuS: number }[] = [];
  const manifests: ManifestSample[] = [];
  let fileSystem = "";
  try {
    disk = mountScratchDisk({ imageDir: root, at: path.join(root, "vol"), bytes: 4 * 1024 ** 3 });
    const data = disk?.path ?? root;
    fileSystem = disk?.describe ?? `${root} (not root: no scratch disk)`;
    process.stderr.write(`file system: ${fileSystem}\nwriting a ${total / MiB} MiB random file…\n`);
    const src = path.join(data, "big.bin");
    const dst = path.join(data, "big.copy");
    if (parts.has("tools") || parts.has("copy")) writeRandomFile(src, total);
    const block = new Uint8Array(64 * MiB);
    for (let o = 0; o < block.length; o += 65536) crypto.getRandomValues(block.subarray(o, o + 65536));
    for (let round = 0; round < rounds; round++) {
      for (const chunkKiB of parts.has("hash") ? [1024, 256] : []) {
        for (const [name, factory] of rotate(IN_PROCESS, round)) {
          const seconds = await hashBuffer(factory, block, total, chunkKiB * 1024);
          inProcess.push({ name, chunkKiB, round, seconds });
          process.stderr.write(`round ${round + 1}/${rounds}  hash ${name.padEnd(14)} ${String(chunkKiB).padStart(4)} KiB  ${((total / MiB) / seconds).toFixed(0)} MiB/s\n`);
        }
      }
      for (const [name, argv] of parts.has("tools") ? rotate(TOOLS, round) : []) {
        const seconds = timeTool([...argv, src]);
        tools.push({ name, round, seconds });
        process.stderr.write(`round ${round + 1}/${rounds}  tool ${name.padEnd(20)} ${seconds.toFixed(3)} s\n`);
      }
      for (const [name, factory] of parts.has("copy") ? rotate([...COPY_HASHES, ["cp", null] as [string, null]], round) : []) {
        const r = name === "cp" ? (fs.rmSync(dst, { force: true }), Bun.spawnSync(["sync"]), runTool(["cp", src, dst])) : await verifiedCopy(factory, src, dst);
        copies.push({ name, round, seconds: r.wallS, cpuS: r.cpuS });
        process.stderr.write(`round ${round + 1}/${rounds}  copy ${name.padEnd(14)} ${r.wallS.toFixed(3)} s wall ${r.cpuS.toFixed(3)} s CPU\n`);
      }
    }
    for (let r = 0; r < (parts.has("manifest") ? Math.max(5, rounds) : 0); r++) manifests.push(await manifestRound(root, xsd));
  } finally {
    disk?.stop();
    fs.rmSync(root, { recursive: true, force: true });
  }

  const mib = total / MiB;
  const hashRows = IN_PROCESS.map(([name]) => {
    const at = (k: number) => mib / median(inProcess.filter((s) => s.name === name && s.chunkKiB === k).map((s) => s.seconds));
    return { name, mibPerS1MiB: Math.round(at(1024)), mibPerS256KiB: Math.round(at(256)) };
  });
  const toolRows = TOOLS.map(([name]) => ({ name, seconds: median(tools.filter((s) => s.name === name).map((s) => s.seconds)) })).map((r) => ({ ...r, mibPerS: Math.round(mib / r.seconds) }));
  const copyMedian = (n: string, k: "seconds" | "cpuS" = "seconds") => median(copies.filter((s) => s.name === n).map((s) => s[k]));
  const copyRows = [...COPY_HASHES.map(([n]) => n), "cp"].map((name) => ({
    name,
    seconds: copyMedian(name),
    vsCrc32: copyMedian(name) / copyMedian("crc32"),
    vsCp: copyMedian(name) / copyMedian("cp"),
    cpuS: copyMedian(name, "cpuS"),
    cpuVsCrc32: copyMedian(name, "cpuS") / copyMedian("crc32", "cpuS"),
  }));
  const med = (k: keyof ManifestSample) => median(manifests.map((x) => x[k]));
  const m = {
    files: 10_000,
    manifestBytes: manifests[0]?.bytes ?? 0,
    firstBuildS: manifests[0]?.buildS ?? Number.NaN,
    firstBuildCpuS: manifests[0]?.buildCpuS ?? Number.NaN,
    buildMedianS: med("buildS"),
    buildMedianCpuS: med("buildCpuS"),
    parseMedianS: med("parseS"),
    parseMedianCpuS: med("parseCpuS"),
    appendMedianS: med("appendS"),
    appendMedianCpuS: med("appendCpuS"),
    xmllintParseMedianS: med("xmllintParseS"),
    xmllintParseMedianCpuS: med("xmllintParseCpuS"),
    xmllintXsdMedianS: med("xmllintXsdS"),
    xmllintXsdMedianCpuS: med("xmllintXsdCpuS"),
  };

  if (parts.has("hash")) table(`in-process hashing, ${mib} MiB from memory (MiB/s, median of ${rounds}) — xxHash backend: ${JSON.stringify(await xxhashBackend())}`, ["algorithm", "1 MiB chunks", "256 KiB chunks"], hashRows.map((r) => [r.name, r.mibPerS1MiB, r.mibPerS256KiB]));
  if (parts.has("tools")) table(`standard tools on the ${mib} MiB file (page cache)`, ["tool", "median s", "MiB/s"], toolRows.map((r) => [r.name, r.seconds.toFixed(3), r.mibPerS]));
  if (parts.has("copy")) table(`verified local copy of the ${mib} MiB file (copy, hash source, hash copy)`, ["hash", "median s", "× crc32", "× cp", "CPU s", "CPU × crc32"], copyRows.map((r) => [r.name, r.seconds.toFixed(3), r.vsCrc32.toFixed(2), r.vsCp.toFixed(2), r.cpuS.toFixed(3), r.cpuVsCrc32.toFixed(2)]));
  const f = (x: number) => x.toFixed(3);
  if (parts.has("manifest")) table(`ASC MHL manifest of a 10,000-file job (${(m.manifestBytes / MiB).toFixed(1)} MiB of XML), ${manifests.length} runs`, ["step", "wall s", "CPU s"], [
    ["build generation 1 (first run, cold)", f(m.firstBuildS), f(m.firstBuildCpuS)],
    ["build generation 1 (median)", f(m.buildMedianS), f(m.buildMedianCpuS)],
    ["read it back (parseManifest, median)", f(m.parseMedianS), f(m.parseMedianCpuS)],
    ["append a verification generation (median)", f(m.appendMedianS), f(m.appendMedianCpuS)],
    ["xmllint --noout (parse, median)", f(m.xmllintParseMedianS), f(m.xmllintParseMedianCpuS)],
    ["xmllint --schema (validate, median)", f(m.xmllintXsdMedianS), f(m.xmllintXsdMedianCpuS)],
  ]);
  process.stdout.write(`load average during the run: ${os.loadavg().map((x) => x.toFixed(1)).join(" ")} on ${os.cpus().length} cores\n`);
  const ratio = (n: string) => copyRows.find((r) => r.name === n)?.vsCrc32 ?? Number.NaN;
  const cpuRatio = (n: string) => copyRows.find((r) => r.name === n)?.cpuVsCrc32 ?? Number.NaN;
  const targets = [
    ...(parts.has("copy")
      ? [
          ...["xxh64 (system)", "xxh3 (system)"].map((n) => ({ what: `verified copy with ${n} ≤ 1.1× crc32 (wall)`, ok: ratio(n) <= 1.1, detail: `${ratio(n).toFixed(2)}× wall, ${cpuRatio(n).toFixed(2)}× CPU` })),
        ]
      : []),
    ...(parts.has("manifest")
      ? [
          { what: "10,000-file manifest written ≤ 0.3 s (median wall)", ok: m.buildMedianS <= 0.3, detail: `${f(m.buildMedianS)} s wall, ${f(m.buildMedianCpuS)} s CPU` },
          { what: "10,000-file manifest written ≤ 0.3 s (first run, cold, wall)", ok: m.firstBuildS <= 0.3, detail: `${f(m.firstBuildS)} s wall, ${f(m.firstBuildCpuS)} s CPU` },
        ]
      : []),
  ];
  const report = { when: new Date().toISOString(), machine: machineInfo(), loadAverage: os.loadavg(), rounds, bytes: total, fileSystem, xxhashBackend: await xxhashBackend(), hashing: hashRows, tools: toolRows, copies: copyRows, manifest: m, targets, samples: { inProcess, tools, copies, manifests } };
  const saved = saveResults("hash", report.when, report);
  process.stdout.write(`${formatTargets(targets)}wrote ${saved}\n`);
  return 0;
}

process.exitCode = await main();
