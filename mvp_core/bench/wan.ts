/**
 * `bun run bench:wan [--quick] [--datasets big,card,seq,small] [--rtt 0,20,100] [--rounds N]
 *                    [--methods ketter,rsync -a,…] [--max-seconds S] [--resume-rtt MS | --no-resume]`
 *
 * LAB pushes footage-shaped datasets (wan_datasets.ts) to SRVTRF over the WAN testbed
 * (testing/testbed/: SRVTRF's sshd in its own network namespace behind a veth, delays by a
 * packet-level delay line; loopback and a stream relay when not root), with Ketter's CLI (checksum
 * verification) beside scp -r, rsync -a, tar | ssh and rclone copy (wan_methods.ts). Both sides
 * are fresh journaled ext4 file systems. Rounds are interleaved (every RTT and dataset once per
 * round, methods in a rotating order) because this machine drifts between minutes; each output is
 * checked (file count and bytes) and removed. A method over --max-seconds is stopped, and skipped
 * for that dataset at the same and higher RTTs.
 *
 * Then the resume scenario (wan_resume.ts) at --resume-rtt. Prints the table and the issue's
 * targets; writes docs/bench/wan-<time>.json and wan-latest.json.
 */
import fs from "node:fs";
import path from "node:path";
import { parseArgs } from "node:util";
import { startTestbed, type Testbed } from "../testing/testbed/testbed.ts";
import { formatTargets, machineInfo, saveResults } from "./results.ts";
import { type CpuAccount, accountCpu } from "./server_cpu.ts";
import { runTimed } from "./timed_run.ts";
import { WAN_DATASETS, type WanDataset, wanDatasets } from "./wan_datasets.ts";
import { CIPHER, KETTER_CLI, type WanLink, type WanMethod, wanMethods } from "./wan_methods.ts";
import { checkTargets, formatTable, summarise, type WanSample } from "./wan_report.ts";
import { resumeScenario, type ResumeResult } from "./wan_resume.ts";

const USAGE = `usage: bun run bench:wan [--quick] [--datasets big,card,seq,small] [--rtt 0,20,100] [--rounds N]
                         [--methods ketter,scp -r,rsync -a,tar | ssh,rclone copy,ketter direct,ketter zip] [--max-seconds S]
                         [--resume-rtt MS | --no-resume] [--streams N] [--max-connections N]
  --streams/--max-connections go to Ketter (default: chosen from the link's round trip)
  what changes the ranking (docs/ssh.md, "WAN testbed"):
    [--link netns|loopback] [--mtu N] [--pin LAB_CPUS/SRVTRF_CPUS, e.g. 0/1] [--fs scratch|plain]`;

interface Options {
  quick: boolean;
  rounds: number;
  rtts: number[];
  datasets: WanDataset[];
  methods: WanMethod[];
  maxSeconds: number;
  resumeRtt: number | null;
  /** Testbed variations for the investigation: loopback instead of the veth, the veth's MTU, CPUs per side, file systems. */
  link: "netns" | "loopback";
  mtu: number | undefined;
  pin: { lab: string; srvtrf: string } | null;
  scratch: boolean;
  /** Ketter's stream tuning; empty: its defaults. */
  tuning: { streams?: number; maxConnections?: number };
}

function parseOptions(argv: string[]): Options | string {
  const { values } = parseArgs({
    args: argv, strict: true,
    options: {
      quick: { type: "boolean" }, rounds: { type: "string" }, rtt: { type: "string" }, datasets: { type: "string" }, methods: { type: "string" },
      "max-seconds": { type: "string" }, "resume-rtt": { type: "string" }, "no-resume": { type: "boolean" },
      link: { type: "string" }, mtu: { type: "string" }, pin: { type: "string" }, fs: { type: "string" },
      streams: { type: "string" }, "max-connections": { type: "string" },
    },
  });
  const quick = values.quick === true;
  const rounds = Number(values.rounds ?? (quick ? 1 : 3));
  const rtts = (values.rtt ?? (quick ? "0,20" : "0,20,100")).split(",").map(Number);
  const maxSeconds = Number(values["max-seconds"] ?? (quick ? 120 : 400));
  const resumeRtt = values["no-resume"] ? null : Number(values["resume-rtt"] ?? 20);
  const names = (values.datasets ?? WAN_DATASETS.join(",")).split(",");
  const unknown = names.filter((n) => !(WAN_DATASETS as readonly string[]).includes(n));
  const streams = values.streams === undefined ? undefined : Number(values.streams);
  const maxConnections = values["max-connections"] === undefined ? undefined : Number(values["max-connections"]);
  if (streams !== undefined && !(Number.isInteger(streams) && streams >= 1 && streams <= 64)) return "--streams must be a whole number from 1 to 64";
  if (maxConnections !== undefined && !(Number.isInteger(maxConnections) && maxConnections >= 1 && maxConnections <= 16)) return "--max-connections must be a whole number from 1 to 16";
  const tuning = { ...(streams !== undefined ? { streams } : {}), ...(maxConnections !== undefined ? { maxConnections } : {}) };
  const all = wanMethods(tuning);
  const methodNames = values.methods?.split(",").map((m) => m.trim());
  const badMethods = methodNames?.filter((m) => !all.some((x) => x.name === m)) ?? [];
  if (!Number.isInteger(rounds) || rounds < 1) return "--rounds must be a positive integer";
  if (rtts.some((r) => !Number.isFinite(r) || r < 0 || r > 1000)) return "--rtt must be round-trip milliseconds between 0 and 1000, e.g. 0,20,100";
  if (!(maxSeconds > 0)) return "--max-seconds must be positive";
  if (resumeRtt !== null && !(resumeRtt >= 0 && resumeRtt <= 1000)) return "--resume-rtt must be milliseconds between 0 and 1000";
  if (unknown.length) return `unknown dataset ${unknown.join(",")}: use ${WAN_DATASETS.join(",")}`;
  if (badMethods.length) return `unknown method ${badMethods.join(",")}: use ${all.map((m) => m.name).join(",")}`;
  const link = values.link ?? "netns";
  if (link !== "netns" && link !== "loopback") return "--link must be netns or loopback";
  const mtu = values.mtu === undefined ? undefined : Number(values.mtu);
  if (mtu !== undefined && !(Number.isInteger(mtu) && mtu >= 1280 && mtu <= 65535)) return "--mtu must be an integer between 1280 and 65535";
  const pinMatch = values.pin === undefined ? null : /^([\d,-]+)\/([\d,-]+)$/.exec(values.pin);
  if (values.pin !== undefined && !pinMatch) return "--pin must be LAB_CPUS/SRVTRF_CPUS in taskset's list form, e.g. 0/1";
  const fsKind = values.fs ?? "scratch";
  if (fsKind !== "scratch" && fsKind !== "plain") return "--fs must be scratch (fresh journaled ext4 both sides) or plain (the machine's own /tmp)";
  return {
    link, mtu, pin: pinMatch ? { lab: pinMatch[1]!, srvtrf: pinMatch[2]! } : null, scratch: fsKind === "scratch", tuning,
    quick, rounds, rtts: [...new Set(rtts)], maxSeconds, resumeRtt,
    datasets: wanDatasets(quick).filter((d) => names.includes(d.name)),
    methods: methodNames ? all.filter((m) => methodNames.includes(m.name)) : all.filter((m) => !m.extra),
  };
}

/** File count and bytes under `dir`: the cheap check that a tool copied everything. */
function footprint(dir: string): { files: number; bytes: number } {
  let files = 0;
  let bytes = 0;
  for (const e of fs.readdirSync(dir, { withFileTypes: true, recursive: true })) {
    if (!e.isFile()) continue;
    files++;
    bytes += fs.statSync(path.join(e.parentPath, e.name)).size;
  }
  return { files, bytes };
}

async function linkFor(tb: Testbed, rttMs: number, knownHosts: string): Promise<WanLink> {
  const p = await tb.path({ rttMs });
  return { host: p.host, port: p.port, username: tb.sshd.username, keyFile: tb.sshd.privateKeyPath, knownHosts, hostKeyFingerprint: tb.sshd.hostKeyFingerprint };
}

/** Runs the timed matrix; returns its samples. */
async function runMatrix(o: Options, tb: Testbed, serverCpu: CpuAccount | null, src: string, knownHosts: string, log: (s: string) => void): Promise<WanSample[]> {
  const samples: WanSample[] = [];
  const expected = new Map(o.datasets.map((d) => [d.name, footprint(path.join(src, d.name))]));
  const dst = path.join(tb.sshd.root, "dst");
  const timeFile = path.join(tb.labRoot, "time.txt");
  const stoppedAt = new Map<string, number>(); // dataset|method → lowest RTT it was stopped at
  for (let round = 0; round < o.rounds; round++) {
    for (const rttMs of o.rtts) {
      const link = await linkFor(tb, rttMs, knownHosts);
      for (const d of o.datasets) {
        const order = o.methods.map((_, i) => o.methods[(i + round) % o.methods.length] as WanMethod);
        for (const m of order) {
          const base = { dataset: d.name, rttMs, method: m.name, round };
          const over = stoppedAt.get(`${d.name}|${m.name}`);
          if (over !== undefined && rttMs >= over) {
            samples.push({ ...base, seconds: null, peakRssMiB: null, note: `skipped: over ${o.maxSeconds} s at ${over} ms` });
            continue;
          }
          fs.rmSync(dst, { recursive: true, force: true });
          const argv = m.argv(path.join(src, d.name), dst, link);
          const serverCpuBefore = serverCpu?.seconds() ?? 0;
          const s = await runTimed(o.pin ? ["taskset", "-c", o.pin.lab, ...argv] : argv, { timeFile, maxSeconds: o.maxSeconds })
            .then(async (r): Promise<WanSample> => {
              if (r.seconds === null) return { ...base, seconds: null, peakRssMiB: null, ...(r.note ? { note: r.note } : {}) };
              const cpu = { labCpuS: r.cpuSeconds, srvtrfCpuS: serverCpu ? serverCpu.seconds() - serverCpuBefore : null };
              const got = footprint(dst);
              const want = expected.get(d.name)!;
              if (got.files !== want.files || got.bytes !== want.bytes) return { ...base, seconds: null, peakRssMiB: null, note: `incomplete copy: ${got.files} files / ${got.bytes} bytes, expected ${want.files} / ${want.bytes}` };
              return { ...base, seconds: r.seconds, peakRssMiB: r.peakRssMiB, ...cpu, ...(m.ketter ? { ketter: (JSON.parse(r.stdout) as { result: unknown }).result } : {}) };
            })
            .catch((err: unknown): WanSample => ({ ...base, seconds: null, peakRssMiB: null, note: `failed: ${String((err as Error).message ?? err).slice(0, 300)}` }));
          fs.rmSync(dst, { recursive: true, force: true });
          if (s.note?.startsWith("stopped")) stoppedAt.set(`${d.name}|${m.name}`, Math.min(rttMs, over ?? Infinity));
          samples.push(s);
          log(`round ${round + 1}/${o.rounds}  ${String(rttMs).padStart(3)} ms  ${d.name.padEnd(6)} ${m.name.padEnd(12)} ${s.seconds === null ? s.note : `${s.seconds.toFixed(2)} s  ${s.peakRssMiB?.toFixed(0)} MiB  CPU ${s.labCpuS?.toFixed(2)} + ${s.srvtrfCpuS?.toFixed(2)} s`}`);
        }
      }
    }
  }
  return samples;
}

async function main(): Promise<number> {
  let o: Options | string;
  try {
    o = parseOptions(process.argv.slice(2));
  } catch (err) {
    o = (err as Error).message;
  }
  if (typeof o === "string") {
    process.stderr.write(`bad usage: ${o}\n${USAGE}\n`);
    return 2;
  }
  const opts = o;
  const log = (s: string): void => void process.stderr.write(`${s}\n`);
  if (!Bun.which("rclone")) log("rclone is not installed: its column is left out (apt-get install rclone)");
  const big = opts.datasets.find((d) => d.name === "big") ?? wanDatasets(opts.quick).find((d) => d.name === "big")!;
  const tb = await startTestbed({
    scratchBytes: opts.scratch ? (opts.quick ? 4 : 12) * 1024 ** 3 : undefined,
    loopback: opts.link === "loopback", mtu: opts.mtu, sshd: opts.pin ? { cpus: opts.pin.srvtrf } : {},
  });
  const serverCpu = accountCpu(tb.sshd.pid()!, `ketter-bench-wan-${process.pid}`);
  const stop = async (): Promise<void> => {
    serverCpu?.stop();
    await tb.stop();
  };
  for (const sig of ["SIGINT", "SIGTERM"] as const) process.once(sig, () => void stop().finally(() => process.exit(130)));
  log(`testbed: ${tb.describe}`);
  let samples: WanSample[] = [];
  const resume: ResumeResult[] = [];
  try {
    const src = path.join(tb.labRoot, "src");
    const sets = opts.resumeRtt !== null && !opts.datasets.includes(big) ? [...opts.datasets, big] : opts.datasets;
    for (const d of sets) {
      log(`generating ${d.name}: ${d.describe}…`);
      d.make(path.join(src, d.name));
    }
    const knownHosts = path.join(tb.labRoot, "known_hosts");
    const pub = fs.readFileSync(path.join(tb.sshd.dir, "host_ed25519.pub"), "utf8").trim().split(" ").slice(0, 2).join(" ");
    fs.writeFileSync(knownHosts, `* ${pub}\n`);
    // The CLI builds its cached bundle on the first start after a change: not inside a timed run.
    Bun.spawnSync(["bun", KETTER_CLI, "--help"], { stdout: "ignore" });
    samples = await runMatrix(opts, tb, serverCpu, src, knownHosts, log);
    if (opts.resumeRtt !== null) {
      if (tb.kind !== "netns") log("resume scenario skipped: it counts bytes on the wire, which needs the netns testbed (root)");
      else {
        for (let round = 0; round < opts.rounds; round++) {
          resume.push(...(await resumeScenario({
            tb, link: await linkFor(tb, opts.resumeRtt, knownHosts), rttMs: opts.resumeRtt, round, src: path.join(src, "big"), fileBytes: big.bytes,
            workDir: path.join(tb.sshd.root, "resume"), timeFile: path.join(tb.labRoot, "time.txt"), maxSeconds: opts.maxSeconds, log, tuning: opts.tuning,
          })));
        }
      }
    }
  } finally {
    await stop();
  }
  const rows = summarise(samples, opts.datasets.map((d) => d.name), opts.rtts, opts.methods.map((m) => m.name));
  const table = formatTable(rows, resume);
  process.stdout.write(`\n${table}`);
  const report = {
    when: new Date().toISOString(),
    command: `bun run bench:wan ${process.argv.slice(2).join(" ")}`.trim(),
    machine: machineInfo(),
    testbed: tb.describe,
    variation: { link: opts.link, mtu: opts.mtu ?? null, pin: opts.pin, fs: opts.scratch ? "scratch ext4 (journaled) both sides" : "plain /tmp both sides", ketter: opts.tuning },
    cipher: CIPHER, rounds: opts.rounds, quick: opts.quick, rttsMs: opts.rtts, maxSeconds: opts.maxSeconds,
    datasets: opts.datasets.map((d) => ({ name: d.name, describe: d.describe, bytes: d.bytes })),
    rows, resume, targets: checkTargets(rows, resume), table, samples,
  };
  // Runs that vary the testbed are kept apart: wan-latest.json is always the standard testbed.
  const varied = opts.link !== "netns" || opts.mtu !== undefined || opts.pin !== null || !opts.scratch || Object.keys(opts.tuning).length > 0;
  const saved = saveResults(varied ? "wan-variation" : "wan", report.when, report);
  process.stdout.write(`${formatTargets(report.targets)}wrote ${saved}\n`);
  return 0;
}

process.exitCode = await main();
