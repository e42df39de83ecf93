/**
 * The reference measurements: `rsync -a` and `scp -r` over ssh on the same data, same direction and
 * same link (latency relay or not) as Ketter's jobs, timed as wall-clock seconds of the whole
 * command, and their output verified like Ketter's (a fast copy that is wrong would not count).
 */
import { rm } from "node:fs/promises";
import { verifyFolder, type Manifest } from "./datasets.ts";
import { sshOptions, type Srvtrf } from "./setup.ts";

/** Both reference tools use the cipher Ketter negotiates first (transfer_engine/endpoints/sftp/connection.ts). */
export const CIPHER = "aes128-gcm@openssh.com";

/** The two reference tools. */
export const TOOLS = ["rsync", "scp"] as const;
/** One of the reference tools. */
export type Tool = (typeof TOOLS)[number];

/** LAB → SRVTRF (push) or SRVTRF → LAB (pull). */
export type Direction = "push" | "pull";

/** One reference run and what it measured. */
export interface ReferenceRun {
  tool: Tool;
  dataset: string;
  direction: Direction;
  rttMs: number;
  /** Wall-clock seconds, null when it failed or was stopped. */
  seconds: number | null;
  /** Set when it was stopped for taking longer than this many seconds (the table shows "> N"). */
  stoppedAfter: number | null;
  /** Why `seconds` is null, or differences found in its output. */
  problems: string[];
  command: string;
}

/** Where a reference run reads and writes: absolute paths on LAB and on SRVTRF (both on this machine). */
export interface ReferencePaths {
  /** Source folder (LAB path for push, SRVTRF path for pull). */
  source: string;
  /** Destination folder to create (SRVTRF path for push, LAB path for pull); must not exist. */
  target: string;
}

/** The argv of `tool` copying `paths` in `direction` through `port`. */
export function referenceArgv(tool: Tool, direction: Direction, paths: ReferencePaths, srv: Srvtrf, port: number): string[] {
  const remote = (p: string) => `${srv.sshd.username}@${srv.sshd.host}:${p}`;
  const ssh = sshOptions(srv, CIPHER);
  if (tool === "rsync") {
    // Trailing slashes: copy the folder's contents into the new folder, as Ketter's target path names it.
    const shell = ["ssh", "-p", String(port), ...ssh].join(" ");
    const from = direction === "push" ? `${paths.source}/` : remote(`${paths.source}/`);
    const to = direction === "push" ? remote(`${paths.target}/`) : `${paths.target}/`;
    return ["rsync", "-a", "-e", shell, from, to];
  }
  const from = direction === "push" ? paths.source : remote(paths.source);
  const to = direction === "push" ? remote(paths.target) : paths.target;
  return ["scp", "-r", "-q", "-P", String(port), ...ssh, from, to];
}

/** Runs one reference copy (stopped after `maxSeconds`), verifies its output against `expected`, and removes it. */
export async function runReference(
  opts: { tool: Tool; dataset: string; direction: Direction; rttMs: number; port: number; maxSeconds: number },
  paths: ReferencePaths,
  srv: Srvtrf,
  expected: Manifest,
): Promise<ReferenceRun> {
  const argv = referenceArgv(opts.tool, opts.direction, paths, srv, opts.port);
  const base = { tool: opts.tool, dataset: opts.dataset, direction: opts.direction, rttMs: opts.rttMs, command: argv.join(" ") };
  const started = performance.now();
  const proc = Bun.spawn(argv, { stdin: "ignore", stdout: "pipe", stderr: "pipe" });
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    proc.kill("SIGKILL");
  }, opts.maxSeconds * 1000);
  const [code, stderr] = await Promise.all([proc.exited, new Response(proc.stderr).text(), new Response(proc.stdout).text()]);
  clearTimeout(timer);
  const seconds = (performance.now() - started) / 1000;
  try {
    if (timedOut) return { ...base, seconds: null, stoppedAfter: opts.maxSeconds, problems: [`stopped after ${opts.maxSeconds} s (--max-tool-seconds)`] };
    if (code !== 0) return { ...base, seconds: null, stoppedAfter: null, problems: [`exited ${code}: ${stderr.trim().slice(0, 300)}`] };
    const problems = await verifyFolder(paths.target, expected);
    return { ...base, seconds: problems.length === 0 ? seconds : null, stoppedAfter: null, problems };
  } finally {
    await rm(paths.target, { recursive: true, force: true });
  }
}

/**
 * Why `tool` should not run at `rttMs`, from its earlier runs of the same data and direction at lower
 * latencies: it was stopped there already, or a straight line through its two latest times passes
 * `maxSeconds` at this latency (per-file round trips make time grow linearly with RTT). null: run it.
 */
export function skipReason(history: readonly ReferenceRun[], tool: Tool, dataset: string, direction: Direction, rttMs: number, maxSeconds: number): string | null {
  const prior = history.filter((r) => r.tool === tool && r.dataset === dataset && r.direction === direction && r.rttMs < rttMs).sort((a, b) => a.rttMs - b.rttMs);
  const stopped = prior.find((r) => r.stoppedAfter !== null);
  if (stopped) return `not run: already over ${maxSeconds} s at ${stopped.rttMs} ms`;
  const timed = prior.filter((r): r is ReferenceRun & { seconds: number } => r.seconds !== null).slice(-2);
  if (timed.length < 2) return null;
  const [a, b] = timed as [ReferenceRun & { seconds: number }, ReferenceRun & { seconds: number }];
  const expected = b.seconds + ((b.seconds - a.seconds) / (b.rttMs - a.rttMs)) * (rttMs - b.rttMs);
  if (expected <= maxSeconds) return null;
  return `not run: ~${Math.round(expected)} s expected (${a.seconds.toFixed(1)} s at ${a.rttMs} ms, ${b.seconds.toFixed(1)} s at ${b.rttMs} ms), over --max-tool-seconds ${maxSeconds}`;
}
