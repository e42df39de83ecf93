/**
 * `bun run bench:sftp [--rounds N] [--quick] [--datasets big,small,medium] [--latency 0,2,20] [--max-seconds S] [--methods LIST]`
 *
 * Pushes the engine benchmark's three datasets (one 1 GiB file; 10,000 × 4 KiB files in 100
 * folders; 20 × 20 MiB) from a local folder to a throw-away sshd on loopback, with each Ketter
 * strategy (the engine CLI, `--to sftp://…`, checksum verification on) side by side with `scp -r`, `rsync -a` over ssh,
 * `tar cf - | ssh tar xf -` and `rclone copy` (when installed). All OpenSSH tools use
 * aes128-gcm@openssh.com, the fastest cipher here and the one Ketter negotiates.
 *
 * Every method writes into a fresh journaled ext4 (scratch_disk.ts: a real server's kind of file
 * system, where deleting one method's 10,000 files does not slow the next method's creates).
 * A real link is not loopback: every dataset also runs through a TCP relay (a child process) that
 * delays each direction by half the round-trip time (2 ms and 20 ms round trip by default).
 * Methods run interleaved and in a rotating order within each round (these machines drift 2-5×
 * between minutes), each as a child process under /usr/bin/time (wall time and peak RSS measured
 * the same way for all). A method slower than --max-seconds is stopped and not retried at that
 * latency. Prints medians, ratios and RSS; writes docs/bench/sftp-<ts>.json and sftp-latest.json.
 * Ketter's auto strategy also runs with `--mhl` (an ASC MHL generation written at the destination,
 * issue 16) and with `--hash crc32` (the verification before xxh3 became the default).
 * `--methods` keeps only the named methods (comma-separated, as the table names them).
 * `--baseline DIR[,DIR…]` adds other checkouts' engines (their three strategies, checksum) to the same
 * rounds (baseline.ts): a before/after comparison within one run.
 */
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { parseArgs } from "node:util";
import { answerHelpOrVersion, onStopSignals, SIGNAL_EXIT } from "../cli/process.ts";
import { startLatencyRelay } from "../testing/latency_relay.ts";
import { startSshd, type TestSshd } from "../testing/sshd.ts";
import { type Baseline, findBaselines } from "./baseline.ts";
import { formatTargets, machineInfo, saveResults } from "./results.ts";
import { type Dataset, datasets } from "./datasets.ts";
import { type ScratchDisk, mountScratchDisk } from "./scratch_disk.ts";
import { median, runTimed, shq } from "./timed_run.ts";

const REPO = path.resolve(import.meta.dir, "../..");
const CLI = path.join(REPO, "mvp_core/transfer_engine/cli/cli.ts");
const CIPHER = "aes128-gcm@openssh.com";

/** Where a method sends to: the sshd, possibly through a relay on `port`, into `dst` (absolute on the sshd). */
interface Link {
  sshd: TestSshd;
  port: number;
  latencyMs: number;
  dst: string;
}

interface Method {
  name: string;
  ketter: boolean;
  argv: (src: string, link: Link) => string[];
}

interface Sample {
  dataset: string;
  latencyMs: number;
  method: string;
  round: number;
  seconds: number | null;
  peakRssMiB: number | null;
  note?: string;
  ketter?: unknown;
}

function sshOpts(link: Link): string[] {
  const s = link.sshd;
  return [
    "-i", s.privateKeyPath, "-o", "BatchMode=yes", "-o", "IdentitiesOnly=yes", "-o", "StrictHostKeyChecking=no",
    "-o", `UserKnownHostsFile=${path.join(s.dir, "known_hosts")}`, "-o", "LogLevel=ERROR", "-c", CIPHER,
  ];
}

/** Ketter (this checkout's CLI, or a baseline's) pushing with `strategy`, checksum verification. */
function ketterArgv(cli: string, strategy: string, extra: readonly string[]): (src: string, l: Link) => string[] {
  return (src, l) => [
    "bun", cli, "--from", src, "--to", `sftp://${l.sshd.username}@${l.sshd.host}:${l.port}${l.dst}`, "--identity", l.sshd.privateKeyPath,
    "--host-key", l.sshd.hostKeyFingerprint, "--mode", "copy", "--strategy", strategy, "--verify", "checksum", ...extra, "--json",
  ];
}

function methods(bases: readonly Baseline[]): Method[] {
  const list: Method[] = [
    { name: "scp -r", ketter: false, argv: (src, l) => ["scp", "-q", "-r", ...sshOpts(l), "-P", String(l.port), src, `${l.sshd.username}@${l.sshd.host}:${l.dst}`] },
    {
      name: "rsync -a",
      ketter: false,
      argv: (src, l) => ["rsync", "-a", "-e", ["ssh", ...sshOpts(l), "-p", String(l.port)].map(shq).join(" "), `${src}/`, `${l.sshd.username}@${l.sshd.host}:${l.dst}/`],
    },
    {
      name: "tar | ssh tar",
      ketter: false,
      argv: (src, l) => ["sh", "-c", `tar -C ${shq(src)} -cf - . | ssh ${[...sshOpts(l), "-p", String(l.port), "-l", l.sshd.username, l.sshd.host].map(shq).join(" ")} ${shq(`mkdir -p ${shq(l.dst)} && tar -C ${shq(l.dst)} -xf -`)}`],
    },
  ];
  if (Bun.which("rclone")) {
    list.push({
      name: "rclone copy",
      ketter: false,
      argv: (src, l) => ["rclone", "copy", "--sftp-host", l.sshd.host, "--sftp-port", String(l.port), "--sftp-user", l.sshd.username, "--sftp-key-file", l.sshd.privateKeyPath, "--sftp-shell-type", "unix", src, `:sftp:${l.dst}`],
    });
  }
  for (const [strategy, extra] of [["direct", []], ["zip", []], ["auto", []], ["auto", ["--mhl"]], ["auto", ["--hash", "crc32"]]] as const) {
    list.push({ name: `ketter ${strategy}/checksum${extra.length ? ` ${extra.join(" ")}` : ""}`, ketter: true, argv: ketterArgv(CLI, strategy, extra) });
  }
  // (Not "ketter …": the targets and the RSS check judge this checkout only.)
  for (const base of bases) for (const strategy of ["direct", "zip", "auto"]) list.push({ name: `${base.label} ${strategy}/checksum`, ketter: true, argv: ketterArgv(base.cli, strategy, []) });
  return list;
}

/** Runs one method as a child under /usr/bin/time; null seconds when it exceeded the budget. */
async function runOnce(m: Method, src: string, link: Link, timeFile: string, maxSeconds: number): Promise<Omit<Sample, "dataset" | "latencyMs" | "method" | "round">> {
  const r = await runTimed(m.argv(src, link), { timeFile, maxSeconds });
  if (r.seconds === null) return { seconds: null, peakRssMiB: null, ...(r.note ? { note: r.note } : {}) };
  const ketter = m.ketter ? (JSON.parse(r.stdout) as { result: unknown }).result : undefined;
  return { seconds: r.seconds, peakRssMiB: r.peakRssMiB, ...(ketter ? { ketter } : {}) };
}

const USAGE = `usage: bun run bench:sftp [--rounds N] [--quick] [--datasets LIST] [--latency 0,2,20] [--max-seconds S] [--methods LIST] [--baseline DIR[,DIR…]] [--help | --version]
The engine to a loopback sshd (with added round-trip latency) beside scp, rsync over ssh and tar | ssh;
prints a table and writes docs/bench/sftp-latest.json.
exit status: 0 done, 1 failed, 2 bad flags, 130/143 interrupted (sshd, relays and data removed first)`;

async function main(): Promise<number> {
  const argv = process.argv.slice(2);
  const answered = answerHelpOrVersion("ketter-bench-sftp", USAGE, argv);
  if (answered !== null) return answered;
  let values;
  try {
    ({ values } = parseArgs({
      args: argv,
      options: {
        rounds: { type: "string" }, quick: { type: "boolean" }, datasets: { type: "string" }, latency: { type: "string" },
        "max-seconds": { type: "string" }, methods: { type: "string" }, baseline: { type: "string" },
      },
    }));
  } catch (err) {
    process.stderr.write(`${err instanceof Error ? err.message : String(err)}\n${USAGE}\n`);
    return 2;
  }
  const quick = values.quick === true;
  const rounds = Number(values.rounds ?? (quick ? 1 : 3));
  const latencies = (values.latency ?? "0,2,20").split(",").map(Number);
  const maxSeconds = Number(values["max-seconds"] ?? 120);
  if (!Number.isInteger(rounds) || rounds < 1 || latencies.some((l) => !Number.isFinite(l) || l < 0) || !(maxSeconds > 0)) {
    process.stderr.write("--rounds must be a positive integer, --latency a list of round-trip milliseconds, --max-seconds positive\n");
    return 2;
  }
  const wanted = values.datasets?.split(",");
  const sets = datasets(quick, 256).filter((d) => !wanted || wanted.includes(d.name));
  const bases = values.baseline === undefined ? [] : findBaselines(values.baseline);
  if (typeof bases === "string") {
    process.stderr.write(`${bases}\n`);
    return 2;
  }
  const keep = values.methods?.split(",");
  const METHODS = methods(bases).filter((m) => !keep || keep.includes(m.name));
  if (keep && METHODS.length !== keep.length) {
    process.stderr.write(`--methods: unknown name among ${keep.join(", ")}; the names are: ${methods(bases).map((m) => m.name).join(", ")}\n`);
    return 2;
  }
  const root = fs.mkdtempSync(path.join(os.tmpdir(), "ketter-bench-sftp-"));
  const sshd = await startSshd();
  const samples: Sample[] = [];
  let destination = "";
  const relays = new Map<number, { port: number; stop: () => Promise<void> }>();
  let disk: ScratchDisk | null = null;
  const cleanup = async (): Promise<void> => {
    for (const r of relays.values()) await r.stop();
    disk?.stop();
    await sshd.stop();
    fs.rmSync(root, { recursive: true, force: true });
  };
  // Interrupted: still remove the throw-away user, sshd, relays and datasets.
  onStopSignals((signal) => void cleanup().finally(() => process.exit(SIGNAL_EXIT[signal])));
  try {
    for (const d of sets) {
      process.stderr.write(`generating ${d.name} (${d.describe})…\n`);
      d.make(path.join(root, d.name));
    }
    disk = mountScratchDisk({ imageDir: root, at: path.join(sshd.root, "vol"), bytes: 8 * 1024 ** 3, owner: sshd.username });
    destination = disk?.describe ?? `${sshd.root} (not root: no scratch disk, small-file times depend on what was deleted there in the last minutes)`;
    process.stderr.write(`destination: ${destination}\n`);
    const dst = path.join(disk?.path ?? sshd.root, "dst");
    // The CLI builds its cached bundle on the first start after a change: not inside a timed run.
    Bun.spawnSync(["bun", CLI, "--help"], { stdout: "ignore" });
    for (const base of bases) Bun.spawnSync(["bun", base.cli, "--help"], { stdout: "ignore" });
    for (const l of latencies) relays.set(l, l === 0 ? { port: sshd.port, stop: async () => undefined } : await startLatencyRelay({ listenHost: sshd.host, targetHost: sshd.host, targetPort: sshd.port, oneWayMs: l / 2 }));
    const dead = new Set<string>(); // dataset|latency|method that blew the time budget
    for (let round = 0; round < rounds; round++) {
      for (const latencyMs of latencies) {
        const link: Link = { sshd, port: relays.get(latencyMs)!.port, latencyMs, dst };
        for (const d of sets) {
          const order = METHODS.map((_, i) => METHODS[(i + round) % METHODS.length] as Method);
          for (const m of order) {
            const key = `${d.name}|${latencyMs}|${m.name}`;
            fs.rmSync(dst, { recursive: true, force: true });
            if (dead.has(key)) {
              samples.push({ dataset: d.name, latencyMs, method: m.name, round, seconds: null, peakRssMiB: null, note: "skipped (over budget earlier)" });
              continue;
            }
            // A failed run is recorded (and shown) rather than ending the whole benchmark.
            const r = await runOnce(m, path.join(root, d.name), link, path.join(root, "time.txt"), maxSeconds).catch((err: unknown) => ({
              seconds: null, peakRssMiB: null, note: `failed: ${String((err as Error)?.message ?? err).split("\n").find((l) => l.includes("Error")) ?? String(err).slice(0, 200)}`,
            }));
            fs.rmSync(dst, { recursive: true, force: true });
            if (r.seconds === null && r.note?.startsWith("stopped")) dead.add(key);
            samples.push({ dataset: d.name, latencyMs, method: m.name, round, ...r });
            process.stderr.write(`round ${round + 1}/${rounds}  ${String(latencyMs).padStart(2)} ms  ${d.name.padEnd(6)} ${m.name.padEnd(24)} ${r.seconds === null ? r.note : `${r.seconds.toFixed(3)} s  ${r.peakRssMiB?.toFixed(0)} MiB`}\n`);
          }
        }
      }
    }
  } finally {
    await cleanup();
  }
  const rows = summarise(sets, latencies, METHODS, samples);
  printTable(rows);
  const report = {
    when: new Date().toISOString(),
    machine: machineInfo(),
    rounds, quick, latenciesMs: latencies, cipher: CIPHER, destination, baselines: bases.map((b) => b.label),
    datasets: sets.map((d) => ({ name: d.name, describe: d.describe })),
    rows,
    targets: checkTargets(rows),
    samples,
  };
  const saved = saveResults("sftp", report.when, report);
  process.stdout.write(`${formatTargets(report.targets)}wrote ${saved}\n`);
  return 0;
}

interface Row {
  dataset: string;
  latencyMs: number;
  method: string;
  medianS: number | null;
  /** Against rsync -a, and against the fastest OpenSSH tool, at the same latency. */
  vsRsync: number | null;
  vsBestOpenSsh: number | null;
  peakRssMiB: number | null;
}

function summarise(sets: Dataset[], latencies: number[], METHODS: Method[], samples: Sample[]): Row[] {
  const rows: Row[] = [];
  for (const latencyMs of latencies) {
    for (const d of sets) {
      const of = (method: string): Sample[] => samples.filter((s) => s.dataset === d.name && s.latencyMs === latencyMs && s.method === method);
      const med = (method: string): number | null => {
        const xs = of(method).map((s) => s.seconds);
        return xs.length && xs.every((x) => x !== null) ? median(xs as number[]) : null;
      };
      const rsync = med("rsync -a");
      const tools = METHODS.filter((m) => !m.ketter && m.name !== "rclone copy").map((m) => med(m.name)).filter((x): x is number => x !== null);
      const best = tools.length ? Math.min(...tools) : null;
      for (const m of METHODS) {
        const medianS = med(m.name);
        const rss = of(m.name).map((s) => s.peakRssMiB).filter((x): x is number => x !== null);
        rows.push({
          dataset: d.name, latencyMs, method: m.name, medianS,
          vsRsync: medianS !== null && rsync ? medianS / rsync : null,
          vsBestOpenSsh: medianS !== null && best ? medianS / best : null,
          peakRssMiB: rss.length ? Math.max(...rss) : null,
        });
      }
    }
  }
  return rows;
}

function printTable(rows: Row[]): void {
  const f = (x: number | null, digits: number): string => (x === null ? "—" : x.toFixed(digits));
  process.stdout.write(`\n${"lat".padStart(4)}  ${"dataset".padEnd(7)} ${"method".padEnd(30)} ${"median s".padStart(9)} ${"×rsync".padStart(7)} ${"×best".padStart(7)} ${"RSS MiB".padStart(8)}\n`);
  for (const r of rows) {
    process.stdout.write(`${String(r.latencyMs).padStart(4)}  ${r.dataset.padEnd(7)} ${r.method.padEnd(30)} ${f(r.medianS, 3).padStart(9)} ${f(r.vsRsync, 2).padStart(7)} ${f(r.vsBestOpenSsh, 2).padStart(7)} ${f(r.peakRssMiB, 0).padStart(8)}\n`);
  }
}

/** The issue's targets, per latency, for Ketter's auto strategy (what users get) and its best strategy. */
function checkTargets(rows: Row[]): { what: string; ok: boolean; detail: string }[] {
  const out: { what: string; ok: boolean; detail: string }[] = [];
  const latencies = [...new Set(rows.map((r) => r.latencyMs))];
  const ketterBest = (dataset: string, l: number): Row | undefined =>
    rows.filter((r) => r.dataset === dataset && r.latencyMs === l && r.method.startsWith("ketter") && r.medianS !== null).sort((a, b) => a.medianS! - b.medianS!)[0];
  for (const l of latencies) {
    for (const [dataset, field, limit, label] of [
      ["small", "vsRsync", 1.0, "× rsync -a"],
      ["big", "vsBestOpenSsh", 1.1, "× fastest OpenSSH tool"],
      ["medium", "vsBestOpenSsh", 1.1, "× fastest OpenSSH tool"],
    ] as const) {
      const best = ketterBest(dataset, l);
      for (const method of ["ketter auto/checksum", "ketter auto/checksum --mhl"]) {
        const auto = rows.find((r) => r.dataset === dataset && r.latencyMs === l && r.method === method);
        if (!auto) continue;
        const ratio = auto[field];
        out.push({ what: `${dataset} @ ${l} ms, ${method.slice(7)} ≤ ${limit}${label}`, ok: ratio !== null && ratio <= limit, detail: `${ratio?.toFixed(2) ?? "—"}, best Ketter (${best?.method ?? "—"}) ${best?.[field]?.toFixed(2) ?? "—"}` });
      }
    }
  }
  const ketterRss = rows.filter((r) => r.method.startsWith("ketter") && r.peakRssMiB !== null).map((r) => r.peakRssMiB as number);
  out.push({ what: "Ketter peak RSS < 256 MiB", ok: ketterRss.every((x) => x < 256), detail: `max ${ketterRss.length ? Math.max(...ketterRss).toFixed(0) : "—"} MiB` });
  return out;
}

process.exitCode = await main();
