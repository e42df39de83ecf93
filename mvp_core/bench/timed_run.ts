/** How the transfer benchmarks time one command: wall time and peak RSS, the same way for every tool. */
import fs from "node:fs";

/** What one timed command measured (seconds null: stopped or failed, `note` says which). */
export interface TimedRun {
  seconds: number | null;
  peakRssMiB: number | null;
  /** User + system CPU of the command and the children it waited for (null: stopped). */
  cpuSeconds: number | null;
  stdout: string;
  note?: string;
}

/**
 * Runs `argv` under /usr/bin/time in a process group of its own (setsid), after a `sync` so that
 * the previous run's dirty pages are not written during this one. Stopped with SIGKILL to the whole
 * group after `maxSeconds` — an orphaned scp once kept writing into the target during the next
 * methods' runs — or when `stop` resolves first (the resume scenario's kill at 50 %).
 * A non-zero exit throws with the command's stderr.
 */
export async function runTimed(argv: string[], opts: { timeFile: string; maxSeconds: number; stop?: Promise<unknown> }): Promise<TimedRun> {
  Bun.spawnSync(["sync"]);
  const t0 = performance.now();
  const p = Bun.spawn(["setsid", "/usr/bin/time", "-f", "%M %U %S", "-o", opts.timeFile, ...argv], { stdout: "pipe", stderr: "pipe" });
  let stopped: string | null = null;
  const kill = (why: string): void => {
    if (p.exitCode !== null || p.signalCode !== null) return;
    stopped = why;
    process.kill(-p.pid, "SIGKILL");
  };
  const timer = setTimeout(() => kill(`stopped after ${opts.maxSeconds} s`), opts.maxSeconds * 1000);
  void opts.stop?.then(() => kill("killed on purpose"));
  const [out, err, code] = await Promise.all([new Response(p.stdout).text(), new Response(p.stderr).text(), p.exited]);
  clearTimeout(timer);
  const seconds = (performance.now() - t0) / 1000;
  if (stopped !== null) return { seconds: null, peakRssMiB: null, cpuSeconds: null, stdout: out, note: stopped };
  if (code !== 0) throw new Error(`${argv[0]} failed (${code}): ${err.trim()} ${out.trim()}`.trim());
  const [rssKiB, user, system] = (fs.readFileSync(opts.timeFile, "utf8").trim().split("\n").at(-1) ?? "").split(" ").map(Number);
  return { seconds, peakRssMiB: (rssKiB ?? NaN) / 1024, cpuSeconds: (user ?? NaN) + (system ?? NaN), stdout: out };
}

/** The median of a non-empty list. */
export function median(xs: readonly number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 ? (s[mid] as number) : ((s[mid - 1] as number) + (s[mid] as number)) / 2;
}

/** Quotes `s` for a POSIX shell. */
export function shq(s: string): string {
  return `'${s.replaceAll("'", `'\\''`)}'`;
}
