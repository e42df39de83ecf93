/**
 * The field test's report: the comparison table (Ketter beside rsync and scp), every job with its
 * checks, the faults, what failed and why — as JSON (docs/bench/field-*.json) and as the generated
 * docs/field-test.md. Rendering is pure; only writeReport touches the disk.
 */
import { mkdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import type { JobOutcome } from "./jobs.ts";
import type { Direction, ReferenceRun } from "./measure.ts";
import type { SitesReport } from "./sites.ts";

/** One row of the comparison: a dataset copied one way at one round-trip time. */
export interface TableRow {
  dataset: string;
  direction: Direction;
  rttMs: number;
  status: string;
  ketterS: number | null;
  engineS: number | null;
  ketterMBps: number | null;
  rsyncS: number | null;
  scpS: number | null;
  /** Set when the tool was stopped (or skipped) for taking longer than this many seconds. */
  rsyncOverS: number | null;
  scpOverS: number | null;
  /** Ketter's time divided by the tool's (below 1: Ketter was faster); an upper bound when the tool was stopped. */
  vsRsync: number | null;
  vsScp: number | null;
}

/** Everything a run produced; also the JSON written under docs/bench/. */
export interface FieldReport {
  when: string;
  runId: string;
  quick: boolean;
  command: string;
  passed: boolean;
  durationS: number;
  machine: { host: string; nproc: number; memGiB: number; cpu: string; kernel: string; bun: string; os: string; loadAvgStart: number[]; loadAvgEnd: number[] };
  stack: { apiUrl: string; version: string | null; workers: string[] };
  srvtrf: {
    address: string; port: number | null; user: string | null; root: string | null; hostKeyFingerprint: string | null;
    /** "netns": the WAN testbed (own network namespace, veth, packet-level delay line); "loopback": a loopback address and stream relays. Absent in reports older than the testbed. */
    link?: "netns" | "loopback";
    portals: Array<{ name: string; id: string; rttMs: number; host?: string; port: number }>;
  } | null;
  datasets: Array<{ name: string; describe: string }>;
  rttsMs: number[];
  table: TableRow[];
  jobs: JobOutcome[];
  references: ReferenceRun[];
  /** The second site's checks; null when not run (--no-sites). Absent in reports older than sites. */
  sites?: SitesReport | null;
  notes: string[];
  /** Problems outside a job (setup, a step that threw, cleanup). */
  errors: string[];
}

const MB = 1_000_000;

/** How the field test is built and why; printed in every report so a reader can judge the numbers. */
const DECISIONS = [
  "**One stack, driven from outside.** Jobs go through the running API (`POST /jobs`, polled with `GET /jobs/{id}`, events from `GET /jobs/{id}/events`) to the stack's queue and worker(s); nothing is called in-process. Files are checked on disk (LAB and SRVTRF share this machine), independently of Ketter's own verification.",
  "**SRVTRF is a second host:** a real OpenSSH sshd of its own (`mvp_core/testing/sshd.ts`) with a throw-away user (when run as root), keys and root folder. As root it runs on the WAN testbed (`mvp_core/testing/testbed/`): in a network namespace of its own, reached from LAB — the root namespace, where the stack's worker and the reference tools run — over a veth pair on 198.18.0.0/15, so two network stacks talk over a link device; otherwise (or with --loopback) on a loopback address of its own. The portals use key auth; the host key is pinned from what `POST /portals/{id}/check` saw, after comparing it with the key sshd was started with.",
  "**Data paths:** copies read LAB's pristine `src/` (so the source can be re-hashed afterwards); a move consumes a fresh copy of it. The copy back from SRVTRF reads what Ketter's copy out wrote (after it was verified), and the move back consumes what the move out wrote, so every SRVTRF-side file was written by SRVTRF's user, as in production. Every destination is removed once judged.",
  "**Worker kill:** the command starts one extra worker with the stack worker's exact environment (read from /proc), so two workers compete for the job; whichever claims it (from its `started` event) gets `kill -9`. If that was the stack's worker, it is started again at once the way dev_up.sh does (same command, environment, log and pid file). The job must come back by lease expiry and the reaper (`reclaimed`), i.e. after up to WORKER_LEASE_MS. The extra worker uses the stack's lease on purpose: a worker with a shorter lease would take the other workers' slower heartbeats for deaths.",
  "**sshd restart:** SRVTRF's sshd and every session are SIGKILLed mid-transfer and started again 1 s later on the same port and keys; the job must fail the attempt as retryable and finish on a later one (max attempts raised to 5 for fault jobs so the outcome is about recovery, not the budget).",
  "**Latency:** on the WAN testbed, each round-trip time is an address of SRVTRF whose packets wait half the round trip at each end's ingress in a packet-level delay line (iptables NFQUEUE and a small C program; this kernel has no netem): TCP's windows, ACK clocking and slow start see the real delay. On loopback, a user-space TCP relay in a child process delays every chunk by half the round trip in each direction: application data (SSH packets, SFTP requests and replies), not TCP ACKs.",
  "**Timing:** one run per cell, interleaved (Ketter, rsync, scp on the same data back to back, page cache equally warm). These 2-CPU machines drift between minutes, so differences under ~20 % are noise; the structure of the table (who wins where, and how time grows with latency) is what to read. rsync and scp verify nothing after copying; Ketter's time includes its SHA-256 verification on both ends.",
  "**Second site:** the stack's worker is the first site (its KETTER_SITE); the command starts a second worker with `KETTER_SITE=site-2` and the stack worker's environment otherwise. As root on the WAN testbed, site-2 is a host of its own: a network namespace with its own veth to LAB, routed through LAB to SRVTRF (so its jobs cross the same delay lines); the stack's Postgres, Redis and API listen on LAB's loopback, which another namespace cannot reach, so a TCP relay per service (in LAB, on LAB's address of site-2's link) carries them and site-2's DATABASE_URL, REDIS_URL and KETTER_API_URL point there, as a real site's point at the facility's servers. Otherwise (not root, or --loopback) site-2 is a plain second process. Site-2 gets a local portal of its own (`site: site-2`); LAB's portal names the first site. Where a job ran is read from the API: the job's `site` and each `started` event's worker and site. Site-2's worker is killed with `kill -9` mid-job; the job must come back by lease expiry and a LAB worker's reaper to site-2's queue and wait there (`waitingFor`), never run at LAB. At the end site-2's worker stops (SIGTERM), its portal is deleted and the site retired (`DELETE /sites/site-2`), so the stack is left with one site as found.",
  "**Budget:** a reference tool is stopped after --max-tool-seconds, and not started at a higher latency when it was already stopped at a lower one or its two lower-latency times extrapolate past the limit (scp -r pays several round trips per file).",
];

/** Ketter's copies next to the reference tools' runs of the same dataset, direction and latency. */
export function buildTable(jobs: readonly JobOutcome[], refs: readonly ReferenceRun[]): TableRow[] {
  return mainJobs(jobs)
    .filter((j) => j.type === "copy" && j.fault === "none")
    .map((j) => {
      const ref = (tool: string) => refs.find((r) => r.tool === tool && r.dataset === j.dataset && r.direction === j.direction && r.rttMs === j.rttMs);
      const ok = j.status === "DONE" && j.problems.length === 0;
      const ketterS = ok ? j.seconds : null;
      const rsync = ref("rsync");
      const scp = ref("scp");
      const vs = (r: ReferenceRun | undefined) => {
        const toolS = r?.seconds ?? r?.stoppedAfter ?? null;
        return ketterS && toolS ? ketterS / toolS : null;
      };
      return {
        dataset: j.dataset, direction: j.direction, rttMs: j.rttMs, status: ok ? "DONE, verified" : j.status,
        ketterS, engineS: ok ? j.engineSeconds : null,
        ketterMBps: ketterS ? j.bytes / MB / ketterS : null,
        rsyncS: rsync?.seconds ?? null, scpS: scp?.seconds ?? null,
        rsyncOverS: rsync?.seconds == null ? (rsync?.stoppedAfter ?? null) : null,
        scpOverS: scp?.seconds == null ? (scp?.stoppedAfter ?? null) : null,
        vsRsync: vs(rsync), vsScp: vs(scp),
      };
    });
}

/** The transfers and faults between LAB and SRVTRF (not the sites checks' jobs). */
function mainJobs(jobs: readonly JobOutcome[]): Array<JobOutcome & { direction: Direction }> {
  return jobs.filter((j): j is JobOutcome & { direction: Direction } => j.scenario === "main" && j.direction !== "srvtrf-to-srvtrf");
}

/** Every job problem, every failed sites check, and every error outside a job, one line each. */
export function failures(r: Pick<FieldReport, "jobs" | "errors" | "sites">): string[] {
  return [
    ...r.jobs.flatMap((j) => j.problems.map((p) => `${j.label} (${j.jobId ?? "not submitted"}): ${p}`)),
    ...(r.sites?.checks ?? []).flatMap((c) => c.problems.map((p) => `sites: ${c.name}: ${p}`)),
    ...r.errors,
  ];
}

/** Where a job was routed and where its attempts ran, e.g. "vm", "any → site-2", "site-2 (ran at vm, site-2)". */
export function siteCell(j: Pick<JobOutcome, "site" | "ranOn">): string {
  const ran = [...new Set(j.ranOn.map((r) => r.site))];
  if (j.site === null) return ran.length ? `any → ${ran.join(", ")}` : "any";
  return ran.length === 0 || (ran.length === 1 && ran[0] === j.site) ? j.site : `${j.site} (ran at ${ran.join(", ")})`;
}

const f2 = (n: number | null) => (n === null ? "—" : n.toFixed(2));
const f1 = (n: number | null) => (n === null ? "—" : n.toFixed(1));
const ratio = (n: number | null, over: number | null = null) => (n === null ? "—" : `${over === null ? "" : "< "}${n.toFixed(2)}×`);
const tool = (s: number | null, over: number | null) => (s !== null ? s.toFixed(2) : over !== null ? `> ${over}` : "—");
const dir = (d: Direction) => (d === "push" ? "LAB → SRVTRF" : "SRVTRF → LAB");
const yes = (problems: readonly string[]) => (problems.length ? `FAIL: ${problems.join("; ")}` : "ok");
const cell = (s: string) => s.replaceAll("|", "\\|").replaceAll("\n", " ");

function mdTable(head: string[], rows: string[][]): string {
  return [`| ${head.join(" | ")} |`, `|${head.map(() => "---").join("|")}|`, ...rows.map((r) => `| ${r.map(cell).join(" | ")} |`)].join("\n");
}

/** The comparison table as aligned plain text, for the terminal. */
export function renderTerminalTable(rows: readonly TableRow[]): string {
  const head = ["dataset", "direction", "RTT", "Ketter s", "engine s", "MB/s", "rsync s", "scp s", "÷rsync", "÷scp", "status"];
  const body = rows.map((r) => [r.dataset, dir(r.direction), `${r.rttMs} ms`, f2(r.ketterS), f2(r.engineS), f1(r.ketterMBps), tool(r.rsyncS, r.rsyncOverS), tool(r.scpS, r.scpOverS), ratio(r.vsRsync, r.rsyncOverS), ratio(r.vsScp, r.scpOverS), r.status]);
  const widths = head.map((h, i) => Math.max(h.length, ...body.map((b) => b[i]!.length)));
  return [head, ...body].map((row) => row.map((c, i) => c.padEnd(widths[i]!)).join("  ")).join("\n");
}

function eventSummary(j: JobOutcome): string {
  return j.events.filter((e) => e.kind !== "progress").map((e) => (e.count > 1 ? `${e.kind}×${e.count}` : e.kind)).join(", ");
}

/** docs/field-test.md, generated. */
export function renderMarkdown(r: FieldReport): string {
  const fails = failures(r);
  const done = r.jobs.filter((j) => j.status === "DONE" && j.problems.length === 0).length;
  const refFails = r.references.filter((x) => x.seconds === null);
  const out: string[] = [];
  out.push(
    "# Field test: LAB → SRVTRF",
    "",
    `> Generated by \`${r.command}\` on ${r.when} (run ${r.runId}, ${r.durationS.toFixed(0)} s). Do not edit by hand: run the command again.`,
    "",
    `**Result: ${r.passed ? "PASS" : "FAIL"}** — ${done} of ${r.jobs.length} jobs DONE with every byte verified, the source as expected and a complete event log${r.sites ? `; ${r.sites.checks.filter((c) => c.problems.length === 0).length} of ${r.sites.checks.length} sites checks passed` : ""}${fails.length ? `; ${fails.length} problem(s) listed under "What failed and why"` : ""}.${r.quick ? " This was a `--quick` run (smaller datasets)." : ""}`,
    "",
    "## What ran, on what",
    "",
    `- **Machine:** ${r.machine.host}, ${r.machine.nproc} CPUs (${r.machine.cpu}), ${r.machine.memGiB} GiB RAM, ${r.machine.os} kernel ${r.machine.kernel}, Bun ${r.machine.bun}; load average ${r.machine.loadAvgStart.map((x) => x.toFixed(2)).join(" ")} at the start, ${r.machine.loadAvgEnd.map((x) => x.toFixed(2)).join(" ")} at the end (anything else running shares the CPUs with the measurements).`,
    `- **Stack (LAB):** the running API at ${r.stack.apiUrl} (version ${r.stack.version ?? "?"}), its queue and worker(s) ${r.stack.workers.join(", ") || "—"}; every job went API → queue → worker → engine.`,
  );
  if (r.sites) out.push(`- **Second site:** \`${r.sites.second}\` beside LAB's \`${r.sites.lab}\`, ${r.sites.kind === "netns" ? "a host of its own in a network namespace" : "a second worker process on this host"} with a local folder of its own (see "Sites").`);
  if (r.srvtrf) {
    out.push(
      `- **SRVTRF:** a second host on this machine${r.srvtrf.link === "netns" ? " in a network namespace of its own, joined to LAB (the root namespace) by a veth pair" : ""}: its own OpenSSH \`sshd\` on ${r.srvtrf.address}:${r.srvtrf.port ?? "?"}, its own user \`${r.srvtrf.user ?? "?"}\`, client key, host key ${r.srvtrf.hostKeyFingerprint ?? "?"} and root folder \`${r.srvtrf.root ?? "?"}\`.`,
      `- **Portals** (created through the API; SRVTRF's host key read with \`POST /portals/{id}/check\`, compared with the key sshd was started with, pinned with \`PATCH\`, checked again): ${r.srvtrf.portals.map((p) => `\`${p.name}\` (${p.rttMs} ms, ${p.host ? `${p.host}:` : "port "}${p.port})`).join(", ")}, and a local LAB portal on a fresh temporary folder.`,
    );
  }
  out.push(
    `- **Datasets** (random, incompressible content; SHA-256 of every file taken while writing): ${r.datasets.map((d) => `**${d.name}** ${d.describe}`).join("; ")}.`,
    r.srvtrf?.link === "netns"
      ? `- **Latency:** ${r.rttsMs.map((x) => `${x} ms`).join(", ")} round trip; above 0 each RTT is an address of SRVTRF whose packets, both ways, wait half the round trip in a packet-level delay line (\`mvp_core/testing/testbed/\`, NFQUEUE), so TCP itself sees the delay; for Ketter, rsync and scp alike.`
      : `- **Latency:** ${r.rttsMs.map((x) => `${x} ms`).join(", ")} round trip; above 0 through a TCP relay (\`mvp_core/testing/latency_relay.ts\`, a child process) that delays each direction by half the round trip, for Ketter, rsync and scp alike.`,
    "- **Checks after every job:** status DONE; every destination file's size and SHA-256 and every folder equal to the dataset, nothing extra, no staging left; after a copy the source re-hashed unchanged, after a move the source gone; the event log starts with `created`, has `queued`, `started` (one per attempt), `verified`, `committed`, `source_removed` for moves, no `failed`/`cancelled`/`source_kept`, and ends with exactly one `done`.",
    "- **Timing:** Ketter = job created → finished (Postgres clock: what a user waits, queueing included); engine = first attempt started → finished. rsync (`rsync -a -e ssh`) and scp (`scp -r`) = wall-clock of the command, same data, same direction, same link, same cipher (aes128-gcm@openssh.com, Ketter's first choice), host key pinned (StrictHostKeyChecking=yes); their output is verified the same way. MB/s = 10^6 bytes per second of Ketter's time.",
    "",
    "## Ketter beside rsync and scp (copies)",
    "",
    mdTable(
      ["dataset", "direction", "RTT", "Ketter s", "engine s", "Ketter MB/s", "rsync -a s", "scp -r s", "Ketter ÷ rsync", "Ketter ÷ scp", "status"],
      r.table.map((t) => [t.dataset, dir(t.direction), `${t.rttMs} ms`, f2(t.ketterS), f2(t.engineS), f1(t.ketterMBps), tool(t.rsyncS, t.rsyncOverS), tool(t.scpS, t.scpOverS), ratio(t.vsRsync, t.rsyncOverS), ratio(t.vsScp, t.scpOverS), t.status]),
    ),
    "",
    "Ratios above 1 mean Ketter took longer; \"> N\" means the tool was stopped after N s, or not run because it was already over N s at a lower latency or its times at the two lower latencies extrapolate past N s (the reason is listed below the table); the ratio is then an upper bound. Ketter's time includes what rsync and scp do not do: queueing, a SHA-256 of every file on both sides, staging and an atomic rename.",
    "",
  );
  if (refFails.length) out.push("Reference runs without a time: " + refFails.map((x) => `${x.tool} ${x.direction} ${x.dataset} ${x.rttMs} ms (${x.problems.join("; ")})`).join("; ") + ".", "");
  const moves = mainJobs(r.jobs).filter((j) => j.type === "move" && j.fault === "none");
  if (moves.length) {
    out.push("## Moves (0 ms)", "", mdTable(["dataset", "direction", "Ketter s", "engine s", "MB/s", "strategy", "status"], moves.map((j) => [j.dataset, dir(j.direction), f2(j.seconds), f2(j.engineSeconds), f1(j.seconds ? j.bytes / MB / j.seconds : null), j.strategy ?? "—", j.problems.length ? j.status : "DONE, verified, source gone"])), "");
  }
  const faults = mainJobs(r.jobs).filter((j) => j.fault !== "none");
  if (faults.length) {
    out.push(
      "## Faults",
      "",
      mdTable(["job", "fault", "RTT", "what was done", "status", "attempts", "s", "events"], faults.map((j) => [j.label, j.fault, `${j.rttMs} ms`, j.faultNote ?? "—", j.problems.length ? `${j.status} (${j.problems.length} problem(s))` : "DONE, verified", String(j.attempts), f2(j.seconds), eventSummary(j)])),
      "",
      "The faults run over the slowest link (as a WAN transfer would; it also gives the injector time to strike mid-transfer). A killed worker's job comes back through lease expiry (the worker's lease, WORKER_LEASE_MS) and the reaper of a surviving worker (`reclaimed`), then runs again; sshd's restart fails the running attempt with a retryable error (`retry_scheduled`) and the next attempt runs after the backoff. Both must end with exactly one `done` and every byte verified.",
      "",
    );
  }
  if (r.sites) out.push(...renderSites(r.sites));
  out.push(
    "## Every job",
    "",
    mdTable(["job", "id", "type", "status", "site", "attempts", "strategy", "files", "bytes", "s", "events"], r.jobs.map((j) => [j.label, j.jobId ?? "—", j.type, j.status, siteCell(j), String(j.attempts), j.strategy ?? "—", String(j.files), String(j.bytes), f2(j.seconds), eventSummary(j)])),
    "",
    "## What failed and why",
    "",
    ...(fails.length ? fails.map((x) => `- ${x}`) : ["Nothing: every job ended DONE, every byte was verified, every source was as expected."]),
    "",
  );
  if (r.notes.length) out.push("## Notes", "", ...r.notes.map((n) => `- ${n}`), "");
  out.push("## Method and decisions", "", ...DECISIONS.map((d) => `- ${d}`), "");
  return out.join("\n");
}

/** The "Sites" section: how site-2 was made, each check, and what its DKU said. */
export function renderSites(s: SitesReport): string[] {
  const out = [
    "## Sites",
    "",
    `LAB's site is \`${s.lab}\` (the stack's worker); the second site \`${s.second}\` is ${s.kind === "netns" ? "a host of its own" : "a second process on this host"}: ${s.describe}. Site-2's worker(s): ${s.workers.join(", ") || "—"}.`,
    "",
    mdTable(["check", "expected", "seen", "result"], s.checks.map((c) => [c.job ? `${c.name} (\`${c.job}\`)` : c.name, c.expected, c.seen, yes(c.problems)])),
    "",
  ];
  if (s.dku) {
    out.push(
      `DKU at ${s.second} (\`KETTER_SITE=${s.second} bun run dku --json\`${s.kind === "netns" ? ", in site-2's namespace" : ""}): exit ${s.dku.exitCode ?? "by a signal"}${s.dku.summary ? `, ${s.dku.summary.ok} ok, ${s.dku.summary.warn} warn, ${s.dku.summary.fail} fail` : ""}.`,
      "",
      mdTable(["DKU check", "status", "value"], s.dku.checks.map((c) => [c.name, c.status, c.hint ? `${c.value} (hint: ${c.hint})` : c.value])),
      "",
    );
  }
  return out;
}

/** Writes docs/field-test.md, docs/bench/field-<time>.json and docs/bench/field-latest.json under `docsDir`. */
export async function writeReport(docsDir: string, r: FieldReport): Promise<string[]> {
  const bench = join(docsDir, "bench");
  await mkdir(bench, { recursive: true });
  const json = JSON.stringify(r, null, 2) + "\n";
  const paths = [join(docsDir, "field-test.md"), join(bench, `field-${r.when.replaceAll(":", "-").replace(/\.\d+Z$/, "Z")}.json`), join(bench, "field-latest.json")];
  await writeFile(paths[0]!, renderMarkdown(r));
  await writeFile(paths[1]!, json);
  await writeFile(paths[2]!, json);
  return paths;
}
