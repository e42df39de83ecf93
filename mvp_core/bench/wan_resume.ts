/**
 * The resume scenario of `bench:wan`: a push of the big file is killed (SIGKILL to its process
 * group, like a crash) once half of the file's bytes crossed the wire, then the same command runs
 * again. What counts is the second run: its bytes on the wire (the veth's counters, both ways) and
 * its time. Ketter runs both times with the same `--id`; rsync with `--partial --append-verify`,
 * which keeps the partial file and sends only the rest, checking the whole file after.
 */
import fs from "node:fs";
import path from "node:path";
import type { Testbed } from "../testing/testbed/testbed.ts";
import { type KetterOptions, ketterArgv, rsyncArgv, type WanLink } from "./wan_methods.ts";
import { runTimed } from "./timed_run.ts";

/** What one tool's kill-and-rerun measured. */
export interface ResumeResult {
  tool: string;
  rttMs: number;
  round: number;
  fileBytes: number;
  /** Wire bytes LAB → SRVTRF when the first run was killed. */
  killedAtWireBytes: number | null;
  /** Bytes of files under the target's folder on SRVTRF after the kill (what a resume could reuse). */
  leftOnSrvtrf: number;
  secondSeconds: number | null;
  /** Wire bytes of the second run, both directions. */
  secondWireBytes: number | null;
  /** secondWireBytes ÷ fileBytes. */
  secondWireFraction: number | null;
  /** The copy after the second run is byte-identical to the source. */
  identical: boolean;
  note?: string;
}

/** The resumable tools: their command line for one push of `src` into `dst` (Ketter's with bench:wan's stream tuning). */
function tools(tuning: KetterOptions): Array<{ name: string; argv: (src: string, dst: string, link: WanLink, id: string) => string[] }> {
  return [
    { name: "ketter", argv: (src, dst, link, id) => ketterArgv(src, dst, link, { ...tuning, id }) },
    { name: "rsync --partial --append-verify", argv: (src, dst, link) => rsyncArgv(src, dst, link, ["--partial", "--append-verify"]) },
  ];
}

/** Names of the tools the scenario runs, in order. */
export const RESUME_TOOLS = tools({}).map((t) => t.name);

/** Runs the scenario for each resumable tool in turn (order rotated by round); needs the netns testbed's counters. */
export async function resumeScenario(opts: {
  tb: Testbed;
  link: WanLink;
  rttMs: number;
  round: number;
  /** Folder holding the big file, and the file's size. */
  src: string;
  fileBytes: number;
  /** A folder on SRVTRF (absolute) to work in; emptied before each tool. */
  workDir: string;
  timeFile: string;
  maxSeconds: number;
  log: (line: string) => void;
  /** Ketter's stream tuning (bench:wan --streams/--max-connections). */
  tuning?: Pick<KetterOptions, "streams" | "maxConnections">;
}): Promise<ResumeResult[]> {
  const results: ResumeResult[] = [];
  const sourceHash = await sha256Files(opts.src);
  const all = tools(opts.tuning ?? {});
  const order = all.map((_, i) => all[(i + opts.round) % all.length]!);
  for (const tool of order) {
    fs.rmSync(opts.workDir, { recursive: true, force: true });
    fs.mkdirSync(opts.workDir, { recursive: true });
    fs.chownSync(opts.workDir, fs.statSync(opts.tb.sshd.root).uid, fs.statSync(opts.tb.sshd.root).gid);
    const dst = path.join(opts.workDir, "big");
    const argv = tool.argv(opts.src, dst, opts.link, `bench-wan-resume-${process.pid}-${opts.round}-${opts.rttMs}`);
    const base = { tool: tool.name, rttMs: opts.rttMs, round: opts.round, fileBytes: opts.fileBytes };
    // First run: killed once half the file crossed the wire.
    const start = opts.tb.wireBytes().labToSrvtrf;
    const kill: { at: number | null } = { at: null };
    const half = watchUntil(() => {
      const sent = opts.tb.wireBytes().labToSrvtrf - start;
      if (sent < opts.fileBytes / 2) return false;
      kill.at = sent;
      return true;
    });
    const first = await runTimed(argv, { timeFile: opts.timeFile, maxSeconds: opts.maxSeconds, stop: half.reached }).catch((err: unknown) => ({ seconds: null, note: String((err as Error).message ?? err) }));
    half.cancel();
    const killedAt = kill.at;
    if (killedAt === null) {
      results.push({ ...base, killedAtWireBytes: null, leftOnSrvtrf: 0, secondSeconds: null, secondWireBytes: null, secondWireFraction: null, identical: false, note: `first run ended before 50 %: ${first.note ?? "finished"}` });
      continue;
    }
    const leftOnSrvtrf = bytesUnder(opts.workDir);
    // Second run: timed, with the wire counted both ways.
    const before = opts.tb.wireBytes();
    const second = await runTimed(argv, { timeFile: opts.timeFile, maxSeconds: opts.maxSeconds }).catch((err: unknown) => ({ seconds: null, note: String((err as Error).message ?? err).slice(0, 300) }));
    const after = opts.tb.wireBytes();
    const wire = after.labToSrvtrf - before.labToSrvtrf + (after.srvtrfToLab - before.srvtrfToLab);
    // A copy that is missing or unreadable is simply not identical; the table says so.
    const identical = second.seconds !== null && (await sha256Files(dst).catch(() => "")) === sourceHash;
    const r: ResumeResult = {
      ...base, killedAtWireBytes: killedAt, leftOnSrvtrf, secondSeconds: second.seconds,
      secondWireBytes: second.seconds === null ? null : wire, secondWireFraction: second.seconds === null ? null : wire / opts.fileBytes, identical,
      ...(second.note ? { note: second.note } : {}),
    };
    results.push(r);
    opts.log(`resume ${String(opts.rttMs).padStart(3)} ms  ${tool.name.padEnd(32)} killed at ${mib(killedAt)} MiB, ${mib(leftOnSrvtrf)} MiB left on SRVTRF; second run ${r.secondSeconds?.toFixed(1) ?? "—"} s, ${r.secondWireBytes === null ? "—" : mib(r.secondWireBytes)} MiB on the wire${identical ? "" : "  NOT IDENTICAL"}`);
  }
  fs.rmSync(opts.workDir, { recursive: true, force: true });
  return results;
}

function mib(bytes: number): string {
  return (bytes / 1024 ** 2).toFixed(0);
}

/** Polls `check` every 20 ms; `reached` resolves when it returns true. */
function watchUntil(check: () => boolean): { reached: Promise<void>; cancel(): void } {
  let timer: ReturnType<typeof setInterval> | null = null;
  const reached = new Promise<void>((resolve) => {
    timer = setInterval(() => {
      if (!check()) return;
      clearInterval(timer!);
      resolve();
    }, 20);
  });
  return { reached, cancel: () => timer && clearInterval(timer) };
}

/** Total size of the regular files under `dir` (staging and partial files included). */
function bytesUnder(dir: string): number {
  let total = 0;
  for (const e of fs.readdirSync(dir, { withFileTypes: true, recursive: true })) {
    if (e.isFile()) total += fs.statSync(path.join(e.parentPath, e.name)).size;
  }
  return total;
}

/** One hash over every file under `dir`, by sorted relative path (names and contents). */
async function sha256Files(dir: string): Promise<string> {
  const files = fs.readdirSync(dir, { withFileTypes: true, recursive: true }).filter((e) => e.isFile()).map((e) => path.relative(dir, path.join(e.parentPath, e.name))).sort();
  const h = new Bun.CryptoHasher("sha256");
  for (const f of files) {
    h.update(`${f}\0`);
    for await (const chunk of Bun.file(path.join(dir, f)).stream()) h.update(chunk);
  }
  return h.digest("hex");
}
