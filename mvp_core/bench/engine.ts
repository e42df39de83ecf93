/**
 * `bun run bench:engine [--rounds N (default 5)] [--quick] [--datasets big,small,medium] [--hashes crc32,xxh3,xxh64] [--keep]`
 *
 * Generates three datasets in a temp folder (one 1 GiB file; 10,000 × 4 KiB files in 100 folders;
 * 20 × 20 MiB), then copies each with `cp -r`, `rsync -a` and the engine CLI (direct/zip × size/
 * checksum, plus auto), interleaved and in a rotating order within each round because these
 * machines drift 2-5× between minutes. Every run is a child process under /usr/bin/time (wall
 * time and peak RSS measured the same way for all). Caches are warm for everyone (page cache
 * cannot be dropped here); `sync` runs before each timed copy so earlier writeback is not billed
 * to the next run. Datasets and copies live on a fresh journaled ext4 (scratch_disk.ts), where
 * deleting one method's 10,000 files does not slow the next method's creates as this machine's
 * root file system does. Prints medians (targets are judged on them), ratios, the fastest round, and peak
 * RSS; writes docs/bench/engine-<ts>.json and engine-latest.json. `--hashes` compares verification
 * hashes instead (direct + checksum with each, beside cp, rsync and direct + size), with CPU time
 * (user + system of the process), which a loaded machine disturbs less than wall time.
 * `--baseline DIR[,DIR…]` adds other checkouts' engines (direct/size and auto/checksum) to the same rounds
 * (baseline.ts): a before/after comparison within one run.
 */
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { parseArgs } from "node:util";
import { answerHelpOrVersion, onStopSignals, SIGNAL_EXIT } from "../cli/process.ts";
import { type Baseline, findBaselines } from "./baseline.ts";
import { formatTargets, machineInfo, saveResults } from "./results.ts";
import { type Dataset, datasets } from "./datasets.ts";
import { type ScratchDisk, mountScratchDisk } from "./scratch_disk.ts";

const REPO = path.resolve(import.meta.dir, "../..");
const CLI = path.join(REPO, "mvp_core/transfer_engine/cli/cli.ts");

interface Method {
  name: string;
  argv: (src: string, dst: string) => string[];
  engine: boolean;
}

interface Sample {
  dataset: string;
  method: string;
  round: number;
  seconds: number;
  /** User + system CPU seconds of the process and its children. */
  cpuS: number;
  peakRssMiB: number;
  engine?: unknown;
}

/** The engine CLI (this checkout's, or a baseline's) copying with `strategy`/`verify` (and `hash`, when given). */
function engineMethod(strategy: string, verify: string, hash?: string, base?: Baseline): Method {
  return {
    name: `${base?.label ?? "engine"} ${strategy}/${verify}${hash ? `/${hash}` : ""}`,
    engine: true,
    argv: (s, d) => ["bun", base?.cli ?? CLI, "--from", s, "--to", d, "--mode", "copy", "--strategy", strategy, "--verify", verify, ...(hash ? ["--hash", hash] : []), "--json"],
  };
}

const TOOLS: Method[] = [
  { name: "cp -r", engine: false, argv: (s, d) => ["cp", "-r", s, d] },
  { name: "rsync -a", engine: false, argv: (s, d) => ["rsync", "-a", `${s}/`, `${d}/`] },
];

/** The methods of a run: every strategy × verification (checksum: the default hash, and crc32), or with `hashes` one direct + checksum per hash. */
function methodsFor(hashes: readonly string[] | null, bases: readonly Baseline[]): Method[] {
  const before = bases.flatMap((base) => [engineMethod("direct", "size", undefined, base), engineMethod("auto", "checksum", undefined, base)]);
  if (hashes !== null) return [...TOOLS, engineMethod("direct", "size"), ...hashes.map((h) => engineMethod("direct", "checksum", h)), ...before];
  const plain = ([["direct", "size"], ["direct", "checksum"], ["zip", "size"], ["zip", "checksum"], ["auto", "checksum"]] as const).map(([st, v]) => engineMethod(st, v));
  return [...TOOLS, ...plain, engineMethod("direct", "checksum", "crc32"), ...before];
}

function runOnce(m: Method, src: string, dst: string, timeFile: string): { seconds: number; cpuS: number; peakRssMiB: number; engine?: unknown } {
  Bun.spawnSync(["sync"]);
  const t0 = performance.now();
  const p = Bun.spawnSync(["/usr/bin/time", "-f", "%M %U %S", "-o", timeFile, ...m.argv(src, dst)], { stdout: "pipe", stderr: "pipe" });
  const seconds = (performance.now() - t0) / 1000;
  if (p.exitCode !== 0) throw new Error(`${m.name} failed (${p.exitCode}): ${p.stderr.toString()} ${p.stdout.toString()}`);
  const [rss, user, sys] = (fs.readFileSync(timeFile, "utf8").trim().split("\n").at(-1) ?? "").split(" ").map(Number);
  const engine = m.engine ? (JSON.parse(p.stdout.toString()) as { result: unknown }).result : undefined;
  return { seconds, cpuS: (user ?? 0) + (sys ?? 0), peakRssMiB: (rss ?? 0) / 1024, engine };
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 ? (s[mid] as number) : ((s[mid - 1] as number) + (s[mid] as number)) / 2;
}

const USAGE = `usage: bun run bench:engine [--rounds N] [--quick] [--datasets big,small,medium] [--hashes crc32,xxh3,…] [--baseline DIR[,DIR…]] [--help | --version]
Local copies with the engine beside cp -r and rsync -a (interleaved rounds, medians, ratios, peak RSS);
prints a table and writes docs/bench/engine-latest.json. As root, on a fresh ext4 scratch disk.
exit status: 0 done, 1 failed, 2 bad flags, 130/143 interrupted (scratch disk and data removed first)`;

async function main(): Promise<number> {
  const argv = process.argv.slice(2);
  const answered = answerHelpOrVersion("ketter-bench-engine", USAGE, argv);
  if (answered !== null) return answered;
  let values;
  try {
    ({ values } = parseArgs({ args: argv, options: { rounds: { type: "string" }, quick: { type: "boolean" }, datasets: { type: "string" }, hashes: { type: "string" }, keep: { type: "boolean" }, baseline: { type: "string" } } }));
  } catch (err) {
    process.stderr.write(`${err instanceof Error ? err.message : String(err)}\n${USAGE}\n`);
    return 2;
  }
  // Five by default: on these shared machines single runs of the same command differ 2-5×.
  const rounds = Number(values.rounds ?? 5);
  if (!Number.isInteger(rounds) || rounds < 1) {
    process.stderr.write("--rounds must be a positive integer\n");
    return 2;
  }
  const quick = values.quick === true;
  const bases = values.baseline === undefined ? [] : findBaselines(values.baseline);
  if (typeof bases === "string") {
    process.stderr.write(`${bases}\n`);
    return 2;
  }
  const methods = methodsFor(values.hashes?.split(",") ?? null, bases);
  const wanted = values.datasets?.split(",");
  const sets = datasets(quick).filter((d) => !wanted || wanted.includes(d.name));
  const root = fs.mkdtempSync(path.join(os.tmpdir(), "ketter-bench-"));
  const samples: Sample[] = [];
  const startupSamples: number[] = [];
  let disk: ScratchDisk | null = null;
  let destination = "";
  // Interrupted: unmount the scratch disk and remove the datasets before leaving.
  onStopSignals((signal) => {
    disk?.stop();
    fs.rmSync(root, { recursive: true, force: true });
    process.exit(SIGNAL_EXIT[signal]);
  });
  try {
    // Sources and copies on one file system, as in a local copy; the scratch disk when we can mount one.
    disk = mountScratchDisk({ imageDir: root, at: path.join(root, "vol"), bytes: 8 * 1024 ** 3 });
    const data = disk?.path ?? root;
    destination = disk?.describe ?? `${root} (not root: no scratch disk, small-file times depend on what was deleted there in the last minutes)`;
    process.stderr.write(`file system: ${destination}\n`);
    for (const d of sets) {
      process.stderr.write(`generating ${d.name} (${d.describe})…\n`);
      d.make(path.join(data, d.name, "src"));
    }
    for (let round = 0; round < rounds; round++) {
      const t0 = performance.now();
      Bun.spawnSync(["bun", CLI, "--help"], { stdout: "ignore" });
      startupSamples.push((performance.now() - t0) / 1000);
      for (const base of bases) Bun.spawnSync(["bun", base.cli, "--help"], { stdout: "ignore" }); // their bundles built before they are timed
      for (const d of sets) {
        // Rotate the order each round so no method always runs first (cold) or last.
        const order = methods.map((_, i) => methods[(i + round) % methods.length] as Method);
        for (const m of order) {
          const src = path.join(data, d.name, "src");
          const dst = path.join(data, d.name, "dst");
          fs.rmSync(dst, { recursive: true, force: true });
          const r = runOnce(m, src, dst, path.join(root, "time.txt"));
          fs.rmSync(dst, { recursive: true, force: true });
          samples.push({ dataset: d.name, method: m.name, round, ...r });
          process.stderr.write(`round ${round + 1}/${rounds}  ${d.name.padEnd(6)} ${m.name.padEnd(30)} ${r.seconds.toFixed(3)} s  ${r.cpuS.toFixed(2)} s CPU  ${r.peakRssMiB.toFixed(0)} MiB\n`);
        }
      }
    }
  } finally {
    if (values.keep) process.stderr.write(`kept ${root}${disk ? ` (scratch disk still mounted at ${disk.path})` : ""}\n`);
    else {
      disk?.stop();
      fs.rmSync(root, { recursive: true, force: true });
    }
  }
  const rows = summarise(sets, samples, methods);
  printTable(rows);
  const startup = median(startupSamples);
  process.stdout.write(`\nengine CLI start-up alone (bun + module load, \`--help\`): median ${(startup * 1000).toFixed(0)} ms — included in every engine time above\n`);
  const report = {
    when: new Date().toISOString(),
    machine: machineInfo(),
    rounds,
    quick,
    fileSystem: destination,
    baselines: bases.map((b) => b.label),
    datasets: sets.map((d) => ({ name: d.name, describe: d.describe })),
    startupMedianS: median(startupSamples),
    rows,
    targets: checkTargets(rows),
    samples,
  };
  const saved = saveResults("engine", report.when, report);
  process.stdout.write(`${formatTargets(report.targets)}wrote ${saved}\n`);
  return 0;
}

interface Row {
  dataset: string;
  method: string;
  /** What the engine actually did (its result's strategy and archive count). */
  used: string;
  medianS: number;
  /** Median CPU seconds (user + system). */
  cpuS: number;
  /** Fastest round: the least disturbed by other load on the machine. */
  minS: number;
  minVsCp: number;
  vsCp: number;
  vsRsync: number;
  peakRssMiB: number;
}

function summarise(sets: Dataset[], samples: Sample[], methods: readonly Method[]): Row[] {
  const rows: Row[] = [];
  for (const d of sets) {
    const med = (method: string): number => median(samples.filter((s) => s.dataset === d.name && s.method === method).map((s) => s.seconds));
    const cp = med("cp -r");
    const rsync = med("rsync -a");
    const best = (method: string): number => Math.min(...samples.filter((s) => s.dataset === d.name && s.method === method).map((s) => s.seconds));
    for (const m of methods) {
      const mine = samples.filter((s) => s.dataset === d.name && s.method === m.name);
      const medianS = med(m.name);
      const result = mine.at(-1)?.engine as { strategy?: string; archives?: number } | undefined;
      const used = result?.strategy === undefined ? "" : `${result.strategy}${result.archives ? ` (${result.archives} archive${result.archives > 1 ? "s" : ""})` : ""}`;
      rows.push({ dataset: d.name, method: m.name, used, medianS, cpuS: median(mine.map((s) => s.cpuS)), minS: best(m.name), minVsCp: best(m.name) / best("cp -r"), vsCp: medianS / cp, vsRsync: medianS / rsync, peakRssMiB: Math.max(...mine.map((s) => s.peakRssMiB)) });
    }
  }
  return rows;
}

function printTable(rows: Row[]): void {
  const head = `${"dataset".padEnd(8)} ${"method".padEnd(30)} ${"used".padEnd(16)} ${"median s".padStart(9)} ${"CPU s".padStart(7)} ${"× cp -r".padStart(8)} ${"× rsync".padStart(8)} ${"min s".padStart(7)} ${"min×cp".padStart(7)} ${"peak RSS MiB".padStart(13)}`;
  process.stdout.write(`\n${head}\n${"-".repeat(head.length)}\n`);
  for (const r of rows) {
    process.stdout.write(`${r.dataset.padEnd(8)} ${r.method.padEnd(30)} ${r.used.padEnd(16)} ${r.medianS.toFixed(3).padStart(9)} ${r.cpuS.toFixed(2).padStart(7)} ${r.vsCp.toFixed(2).padStart(8)} ${r.vsRsync.toFixed(2).padStart(8)} ${r.minS.toFixed(3).padStart(7)} ${r.minVsCp.toFixed(2).padStart(7)} ${r.peakRssMiB.toFixed(0).padStart(13)}\n`);
  }
}

function checkTargets(rows: Row[]): { what: string; ok: boolean; detail: string }[] {
  const out: { what: string; ok: boolean; detail: string }[] = [];
  const datasetsSeen = [...new Set(rows.map((r) => r.dataset))];
  for (const d of datasetsSeen) {
    const get = (m: string): Row | undefined => rows.find((r) => r.dataset === d && r.method === m);
    const size = get("engine direct/size");
    const sum = get("engine direct/checksum");
    if (size) out.push({ what: `${d}: direct+size ≤ 1.0× cp -r`, ok: size.vsCp <= 1.0, detail: `${size.vsCp.toFixed(2)}×` });
    if (sum) out.push({ what: `${d}: direct+checksum ≤ 2.0× cp -r`, ok: sum.vsCp <= 2.0, detail: `${sum.vsCp.toFixed(2)}×` });
    // Issue 16: xxHash verification costs at most 1.1× the CRC-32 path, same run.
    const crc = get("engine direct/checksum/crc32");
    for (const h of ["xxh3", "xxh64"]) {
      const x = get(`engine direct/checksum/${h}`) ?? (h === "xxh3" ? get("engine direct/checksum") : undefined);
      if (crc && x) out.push({ what: `${d}: direct+checksum ${h} ≤ 1.1× crc32`, ok: x.medianS / crc.medianS <= 1.1, detail: `${(x.medianS / crc.medianS).toFixed(2)}× wall, ${(x.cpuS / crc.cpuS).toFixed(2)}× CPU` });
    }
    const peak = Math.max(...rows.filter((r) => r.dataset === d && r.method.startsWith("engine")).map((r) => r.peakRssMiB));
    out.push({ what: `${d}: engine peak RSS < 200 MiB`, ok: peak < 200, detail: `${peak.toFixed(0)} MiB` });
  }
  for (const m of ["engine zip/size", "engine zip/checksum"]) {
    const z = rows.find((r) => r.dataset === "small" && r.method === m);
    if (z) out.push({ what: `small: ${m.slice(7)} round trip ≤ 1.5× cp -r`, ok: z.vsCp <= 1.5, detail: `${z.vsCp.toFixed(2)}×` });
  }
  return out;
}

process.exitCode = await main();
