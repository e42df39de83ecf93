/**
 * `bun run bench:sync [--rounds N] [--rtt MS] [--files N] [--changed N] [--link netns|loopback]
 *                     [--bookkeeping-rounds N] [--max-seconds S]`
 *
 * Re-runs over SSH (issue 15): LAB holds N × 4 KiB in N/100 folders, SRVTRF (the WAN testbed:
 * its own network namespace behind a veth, --rtt of packet-level delay; loopback and a stream relay
 * when not root) already holds a copy. Two scenarios, each target reset to its starting state
 * before every run (a local `cp -a` on SRVTRF's disk: no wire bytes):
 *   - changed:   --changed files were rewritten on LAB (new content and mtime) since the copy;
 *   - unchanged: the copy is current.
 * Methods, interleaved per round in a rotating order: Ketter's CLI `--sync mtime` and
 * `--sync checksum` (checksum verification of what travels) and `rsync -a`. Measured: wall time
 * and the bytes on the wire both ways (the veth's counters; not on loopback), and every result is
 * checked (file count, bytes, the changed files' content). Then the bookkeeping overhead
 * (sync_bookkeeping.ts). Prints a table and the targets; writes docs/bench/sync-<time>.json and
 * sync-latest.json.
 */
import fs from "node:fs";
import path from "node:path";
import { parseArgs } from "node:util";
import { answerHelpOrVersion } from "../cli/process.ts";
import { startTestbed, type Testbed } from "../testing/testbed/testbed.ts";
import { randomBlock } from "./datasets.ts";
import { formatTargets, machineInfo, saveResults } from "./results.ts";
import { type BookkeepingResult, measureBookkeeping } from "./sync_bookkeeping.ts";
import { median, runTimed, shq } from "./timed_run.ts";
import { CIPHER, rsyncArgv, type WanLink } from "./wan_methods.ts";

const USAGE = `usage: bun run bench:sync [--rounds N] [--rtt MS] [--files N] [--changed N] [--link netns|loopback]
                          [--bookkeeping-rounds N] [--max-seconds S]
  defaults: 3 rounds, 20 ms, 10000 files of 4 KiB, 10 changed, netns (root) else loopback, 7 bookkeeping rounds, 120 s`;

const CLI = path.resolve(import.meta.dir, "../transfer_engine/cli/cli.ts");
const SCENARIOS = ["changed", "unchanged"] as const;
type Scenario = (typeof SCENARIOS)[number];

interface Options {
  rounds: number;
  rttMs: number;
  files: number;
  changed: number;
  link: "netns" | "loopback";
  bookkeepingRounds: number;
  maxSeconds: number;
}

interface Method {
  name: string;
  ketter: boolean;
  argv(src: string, dst: string, link: WanLink): string[];
}

/** Ketter's CLI updating `dst` on SRVTRF in place at sync `level`, verifying what travels by checksum. */
function ketterSync(level: "mtime" | "checksum"): Method {
  return {
    name: `ketter --sync ${level}`,
    ketter: true,
    argv: (src, dst, l) => [
      "bun", CLI, "--from", src, "--to", `sftp://${l.username}@${l.host}:${l.port}${dst}`, "--identity", l.keyFile, "--host-key", l.hostKeyFingerprint,
      "--mode", "copy", "--verify", "checksum", "--sync", level, "--json",
    ],
  };
}

const METHODS: Method[] = [ketterSync("mtime"), ketterSync("checksum"), { name: "rsync -a", ketter: false, argv: (src, dst, l) => rsyncArgv(src, dst, l) }];

/** One timed run. */
interface Sample {
  scenario: Scenario;
  method: string;
  round: number;
  seconds: number | null;
  wireBytes: number | null;
  labCpuS?: number | null;
  /** Ketter only: the result's file counts and its time per engine phase (where the time goes). */
  fileCounts?: unknown;
  durationsMs?: Record<string, number>;
  note?: string;
}

function parseOptions(argv: string[]): Options | string {
  const { values } = parseArgs({
    args: argv, strict: true,
    options: { rounds: { type: "string" }, rtt: { type: "string" }, files: { type: "string" }, changed: { type: "string" }, link: { type: "string" }, "bookkeeping-rounds": { type: "string" }, "max-seconds": { type: "string" } },
  });
  const o: Options = {
    rounds: Number(values.rounds ?? 3),
    rttMs: Number(values.rtt ?? 20),
    files: Number(values.files ?? 10_000),
    changed: Number(values.changed ?? 10),
    link: (values.link ?? (process.getuid?.() === 0 ? "netns" : "loopback")) as Options["link"],
    bookkeepingRounds: Number(values["bookkeeping-rounds"] ?? 7),
    maxSeconds: Number(values["max-seconds"] ?? 120),
  };
  if (!Number.isInteger(o.rounds) || o.rounds < 1) return "--rounds must be a positive integer";
  if (!(o.rttMs >= 0 && o.rttMs <= 1000)) return "--rtt must be round-trip milliseconds between 0 and 1000";
  if (!Number.isInteger(o.files) || o.files < 100 || o.files % 100 !== 0) return "--files must be a multiple of 100 (100 per folder)";
  if (!Number.isInteger(o.changed) || o.changed < 1 || o.changed > o.files) return "--changed must be between 1 and --files";
  if (o.link !== "netns" && o.link !== "loopback") return "--link must be netns or loopback";
  if (!Number.isInteger(o.bookkeepingRounds) || o.bookkeepingRounds < 0) return "--bookkeeping-rounds must be 0 (skip) or more";
  if (!(o.maxSeconds > 0)) return "--max-seconds must be positive";
  return o;
}

/** `files` × 4 KiB of distinct random content in folders of 100 under `dir`. */
function makeSource(dir: string, files: number): string[] {
  const block = randomBlock(4096);
  const names: string[] = [];
  for (let i = 0; i < files; i++) {
    const rel = path.join(`dir${String(Math.floor(i / 100)).padStart(3, "0")}`, `file${i}.dat`);
    if (i % 100 === 0) fs.mkdirSync(path.join(dir, path.dirname(rel)), { recursive: true });
    block.writeUInt32LE(i, 0);
    fs.writeFileSync(path.join(dir, rel), block);
    names.push(rel);
  }
  return names;
}

/** Rewrites `count` files spread over the tree: new content, an mtime a minute later. */
function changeFiles(dir: string, names: readonly string[], count: number): string[] {
  const step = Math.floor(names.length / count);
  const changed = Array.from({ length: count }, (_, i) => names[i * step]!);
  for (const rel of changed) {
    const file = path.join(dir, rel);
    const st = fs.statSync(file);
    fs.writeFileSync(file, randomBlock(4096));
    fs.utimesSync(file, st.atime, new Date(st.mtimeMs + 60_000));
  }
  return changed;
}

/** A copy of `from` at `to` on SRVTRF's disk, owned by the SSH user, mtimes kept: no wire bytes. */
function localCopy(from: string, to: string, owner: string): void {
  fs.rmSync(to, { recursive: true, force: true });
  for (const argv of [["cp", "-a", from, to], ["chown", "-R", `${owner}:`, to]]) {
    const r = Bun.spawnSync(argv);
    if (r.exitCode !== 0) throw new Error(`${argv.join(" ")}: ${r.stderr.toString()}`);
  }
}

/** Problems with `dst` against `src`: missing or different files (all names compared by size, `changed` by content). */
function differences(src: string, dst: string, names: readonly string[], changed: readonly string[]): string[] {
  const problems: string[] = [];
  for (const rel of names) {
    const d = path.join(dst, rel);
    if (!fs.existsSync(d)) problems.push(`${rel} missing`);
    else if (fs.statSync(d).size !== 4096) problems.push(`${rel} has the wrong size`);
    if (problems.length > 5) return problems;
  }
  for (const rel of changed) if (!fs.readFileSync(path.join(src, rel)).equals(fs.readFileSync(path.join(dst, rel)))) problems.push(`${rel} not updated`);
  return problems;
}

function wire(tb: Testbed): number | null {
  if (tb.kind !== "netns") return null;
  const w = tb.wireBytes();
  return w.labToSrvtrf + w.srvtrfToLab;
}

/** The re-run matrix: every round, both scenarios, every method (rotated), each from a reset target. */
async function runMatrix(o: Options, tb: Testbed, link: WanLink, src: string, names: string[], changed: string[], log: (s: string) => void): Promise<Sample[]> {
  const bases: Record<Scenario, string> = { changed: path.join(tb.sshd.root, "base-old"), unchanged: path.join(tb.sshd.root, "base-new") };
  const dst = path.join(tb.sshd.root, "dst");
  const timeFile = path.join(tb.labRoot, "time.txt");
  const samples: Sample[] = [];
  for (let round = 0; round < o.rounds; round++) {
    for (const scenario of SCENARIOS) {
      for (const m of METHODS.map((_, i) => METHODS[(i + round) % METHODS.length]!)) {
        localCopy(bases[scenario], dst, tb.sshd.username);
        const base = { scenario, method: m.name, round };
        const before = wire(tb);
        const s = await runTimed(m.argv(src, dst, link), { timeFile, maxSeconds: o.maxSeconds })
          .then((r): Sample => {
            const after = wire(tb);
            if (r.seconds === null) return { ...base, seconds: null, wireBytes: null, ...(r.note ? { note: r.note } : {}) };
            const problems = differences(src, dst, names, changed);
            if (problems.length > 0) return { ...base, seconds: null, wireBytes: null, note: `wrong result: ${problems.join("; ")}` };
            const result = m.ketter ? (JSON.parse(r.stdout) as { result: { fileCounts: unknown; durationsMs: Record<string, number> } }).result : null;
            const ketter = result ? { fileCounts: result.fileCounts, durationsMs: Object.fromEntries(Object.entries(result.durationsMs).map(([k, v]) => [k, Math.round(v)])) } : {};
            return { ...base, seconds: r.seconds, wireBytes: before === null || after === null ? null : after - before, labCpuS: r.cpuSeconds, ...ketter };
          })
          .catch((err: unknown): Sample => ({ ...base, seconds: null, wireBytes: null, note: `failed: ${String((err as Error).message ?? err).slice(0, 300)}` }));
        samples.push(s);
        const bytes = s.wireBytes === null ? "" : `  ${(s.wireBytes / 1024).toFixed(0)} KiB on the wire`;
        log(`round ${round + 1}/${o.rounds}  ${scenario.padEnd(9)} ${m.name.padEnd(22)} ${s.seconds === null ? s.note : `${s.seconds.toFixed(2)} s${bytes}${s.fileCounts ? `  ${JSON.stringify(s.fileCounts)} ms ${JSON.stringify(s.durationsMs)}` : ""}`}`);
      }
    }
  }
  fs.rmSync(dst, { recursive: true, force: true });
  return samples;
}

interface Row {
  scenario: Scenario;
  method: string;
  runs: number;
  medianS: number | null;
  minS: number | null;
  maxS: number | null;
  timeVsRsync: number | null;
  medianWireBytes: number | null;
  bytesVsRsync: number | null;
}

function summarise(samples: Sample[]): Row[] {
  const rows: Row[] = [];
  for (const scenario of SCENARIOS) {
    const of = (method: string) => samples.filter((s) => s.scenario === scenario && s.method === method && s.seconds !== null);
    const rsync = of("rsync -a");
    const rsyncS = rsync.length ? median(rsync.map((s) => s.seconds!)) : null;
    const rsyncB = rsync.length && rsync.every((s) => s.wireBytes !== null) ? median(rsync.map((s) => s.wireBytes!)) : null;
    for (const m of METHODS) {
      const ok = of(m.name);
      const secs = ok.map((s) => s.seconds!);
      const medianS = secs.length ? median(secs) : null;
      const bytes = ok.length && ok.every((s) => s.wireBytes !== null) ? median(ok.map((s) => s.wireBytes!)) : null;
      rows.push({
        scenario, method: m.name, runs: ok.length, medianS, minS: secs.length ? Math.min(...secs) : null, maxS: secs.length ? Math.max(...secs) : null,
        timeVsRsync: medianS !== null && rsyncS ? medianS / rsyncS : null, medianWireBytes: bytes, bytesVsRsync: bytes !== null && rsyncB ? bytes / rsyncB : null,
      });
    }
  }
  return rows;
}

const fmt = (n: number | null, digits = 2) => (n === null ? "—" : n.toFixed(digits));
const pct = (x: number) => `${x >= 0 ? "+" : ""}${(x * 100).toFixed(1)} %`;

function formatTable(rows: Row[], bk: BookkeepingResult | null): string {
  const lines = [
    "| scenario | method | median s | min–max s | × rsync time | wire KiB | × rsync bytes |",
    "| --- | --- | --- | --- | --- | --- | --- |",
    ...rows.map((r) => `| ${r.scenario} | ${r.method} | ${fmt(r.medianS, 3)} | ${fmt(r.minS)}–${fmt(r.maxS)} | ${fmt(r.timeVsRsync)} | ${r.medianWireBytes === null ? "—" : (r.medianWireBytes / 1024).toFixed(0)} | ${fmt(r.bytesVsRsync)} |`),
  ];
  if (bk) {
    lines.push(
      "",
      `bookkeeping: a fresh local copy of ${bk.files} files, median of ${bk.rounds}: ${bk.medianWithoutS.toFixed(3)} s without job_files, ${bk.medianWithS.toFixed(3)} s with (${bk.rowsPerRun} rows per run): ${pct(bk.overhead)};`,
      `  of which waiting for the outcome writes (median ${median(bk.waitedS).toFixed(3)} s): ${pct(bk.waitOverhead)} of the copy`,
    );
  }
  return `${lines.join("\n")}\n`;
}

function checkTargets(rows: Row[], bk: BookkeepingResult | null): { ok: boolean; what: string; detail: string }[] {
  const row = (s: Scenario, m: string) => rows.find((r) => r.scenario === s && r.method === m);
  const targets: { ok: boolean; what: string; detail: string }[] = [];
  for (const m of METHODS.filter((x) => x.ketter)) {
    const c = row("changed", m.name);
    const u = row("unchanged", m.name);
    targets.push({ ok: (c?.timeVsRsync ?? Infinity) <= 1.0, what: `changed re-run, ${m.name}: time ≤ 1.0× rsync -a`, detail: `${fmt(c?.timeVsRsync ?? null)}×` });
    if (c?.bytesVsRsync !== null && c?.bytesVsRsync !== undefined) targets.push({ ok: c.bytesVsRsync <= 1.2, what: `changed re-run, ${m.name}: bytes on the wire ≤ 1.2× rsync -a`, detail: `${fmt(c.bytesVsRsync)}×` });
    targets.push({ ok: (u?.timeVsRsync ?? Infinity) <= 1.0, what: `unchanged re-run, ${m.name}: time ≤ 1.0× rsync -a`, detail: `${fmt(u?.timeVsRsync ?? null)}×` });
  }
  if (bk) {
    // The wait is what job_files adds to the copy's critical path, measured inside the run; the
    // difference of medians says the same with the machine's noise on top (reported, not judged).
    targets.push({ ok: bk.waitOverhead <= 0.1, what: `per-file bookkeeping on a fresh ${bk.files}-file copy ≤ +10 %`, detail: `${pct(bk.waitOverhead)} waiting for the writes (difference of medians: ${pct(bk.overhead)})` });
  }
  return targets;
}

async function main(): Promise<number> {
  const answered = answerHelpOrVersion("bench:sync", USAGE, process.argv.slice(2));
  if (answered !== null) return answered;
  let parsed: Options | string;
  try {
    parsed = parseOptions(process.argv.slice(2));
  } catch (err) {
    parsed = (err as Error).message;
  }
  if (typeof parsed === "string") {
    process.stderr.write(`bad usage: ${parsed}\n${USAGE}\n`);
    return 2;
  }
  const o = parsed;
  const log = (s: string): void => void process.stderr.write(`${s}\n`);
  const tb = await startTestbed({ scratchBytes: 2 * 1024 ** 3, loopback: o.link === "loopback" });
  let interrupted = false;
  for (const sig of ["SIGINT", "SIGTERM"] as const) process.once(sig, () => void (interrupted = true, tb.stop().finally(() => process.exit(sig === "SIGINT" ? 130 : 143))));
  log(`testbed: ${tb.describe}`);
  let samples: Sample[] = [];
  let bk: BookkeepingResult | null = null;
  try {
    const src = path.join(tb.labRoot, "src");
    log(`generating ${o.files} × 4 KiB…`);
    const names = makeSource(src, o.files);
    localCopy(src, path.join(tb.sshd.root, "base-old"), tb.sshd.username);
    const changed = changeFiles(src, names, o.changed);
    localCopy(src, path.join(tb.sshd.root, "base-new"), tb.sshd.username);
    const knownHosts = path.join(tb.labRoot, "known_hosts");
    const pub = fs.readFileSync(path.join(tb.sshd.dir, "host_ed25519.pub"), "utf8").trim().split(" ").slice(0, 2).join(" ");
    fs.writeFileSync(knownHosts, `* ${pub}\n`);
    const p = await tb.path({ rttMs: o.rttMs });
    const link: WanLink = { host: p.host, port: p.port, username: tb.sshd.username, keyFile: tb.sshd.privateKeyPath, knownHosts, hostKeyFingerprint: tb.sshd.hostKeyFingerprint };
    // The CLI builds its cached bundle on the first start after a change: not inside a timed run.
    Bun.spawnSync(["bun", CLI, "--help"], { stdout: "ignore" });
    samples = await runMatrix(o, tb, link, src, names, changed, log);
    if (o.bookkeepingRounds > 0 && !interrupted) bk = await measureBookkeeping({ src, work: path.join(tb.labRoot, "bookkeeping"), files: o.files, rounds: o.bookkeepingRounds, log });
  } finally {
    await tb.stop();
  }
  const rows = summarise(samples);
  const table = formatTable(rows, bk);
  const targets = checkTargets(rows, bk);
  process.stdout.write(`\n${table}`);
  const report = {
    when: new Date().toISOString(),
    command: `bun run bench:sync ${process.argv.slice(2).map((a) => (/^[\w.,=/-]+$/.test(a) ? a : shq(a))).join(" ")}`.trim(),
    machine: machineInfo(), testbed: tb.describe, cipher: CIPHER, options: o,
    rows, bookkeeping: bk, targets, table, samples,
  };
  const saved = saveResults("sync", report.when, report);
  process.stdout.write(`${formatTargets(targets)}wrote ${saved}\n`);
  return 0;
}

process.exitCode = await main();
