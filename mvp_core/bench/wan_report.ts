/** `bench:wan`'s numbers: samples → rows (medians, min–max, ratios), the printed table and the issue's targets. */
import { median } from "./timed_run.ts";
import { OPENSSH_TOOLS } from "./wan_methods.ts";
import type { ResumeResult } from "./wan_resume.ts";

/** One timed run of one method. */
export interface WanSample {
  dataset: string;
  rttMs: number;
  method: string;
  round: number;
  seconds: number | null;
  peakRssMiB: number | null;
  /** CPU seconds (user + system) on LAB (the command and its children) and on SRVTRF (sshd's sessions). */
  labCpuS?: number | null;
  srvtrfCpuS?: number | null;
  note?: string;
  ketter?: unknown;
}

/** One line of the table. */
export interface WanRow {
  dataset: string;
  rttMs: number;
  method: string;
  runs: number;
  medianS: number | null;
  minS: number | null;
  maxS: number | null;
  /** Against the fastest of scp, rsync and tar | ssh at the same RTT, and against rsync -a. */
  vsBestOpenSsh: number | null;
  vsRsync: number | null;
  peakRssMiB: number | null;
  /** Median CPU seconds on each side: unlike wall time, hardly moved by what else the machine runs. */
  labCpuS: number | null;
  srvtrfCpuS: number | null;
  note?: string;
}

/** Medians over rounds; a method with any failed or stopped round has no median (its note says why). */
export function summarise(samples: readonly WanSample[], datasets: readonly string[], rtts: readonly number[], methods: readonly string[]): WanRow[] {
  const rows: WanRow[] = [];
  for (const rttMs of rtts) {
    for (const dataset of datasets) {
      const of = (method: string): WanSample[] => samples.filter((s) => s.dataset === dataset && s.rttMs === rttMs && s.method === method);
      const times = (method: string): number[] | null => {
        const xs = of(method).map((s) => s.seconds);
        return xs.length > 0 && xs.every((x) => x !== null) ? (xs as number[]) : null;
      };
      const med = (method: string): number | null => {
        const xs = times(method);
        return xs ? median(xs) : null;
      };
      const rsync = med("rsync -a");
      const tools = OPENSSH_TOOLS.map(med).filter((x): x is number => x !== null);
      const best = tools.length ? Math.min(...tools) : null;
      for (const method of methods) {
        const xs = times(method);
        const medianS = xs ? median(xs) : null;
        const rss = of(method).map((s) => s.peakRssMiB).filter((x): x is number => x !== null);
        const note = of(method).find((s) => s.note)?.note;
        const cpu = (side: "labCpuS" | "srvtrfCpuS"): number | null => {
          const ys = of(method).map((s) => s[side]).filter((y): y is number => typeof y === "number");
          return ys.length ? median(ys) : null;
        };
        rows.push({
          dataset, rttMs, method, runs: of(method).length, medianS,
          minS: xs ? Math.min(...xs) : null, maxS: xs ? Math.max(...xs) : null,
          vsBestOpenSsh: medianS !== null && best ? medianS / best : null,
          vsRsync: medianS !== null && rsync ? medianS / rsync : null,
          peakRssMiB: rss.length ? Math.max(...rss) : null,
          labCpuS: cpu("labCpuS"), srvtrfCpuS: cpu("srvtrfCpuS"),
          ...(note ? { note } : {}),
        });
      }
    }
  }
  return rows;
}

const f = (x: number | null | undefined, digits: number): string => (x === null || x === undefined ? "—" : x.toFixed(digits));

/** The table as printed (and pasted into docs). */
export function formatTable(rows: readonly WanRow[], resume: readonly ResumeResult[]): string {
  const lines = [`${"RTT".padStart(4)}  ${"dataset".padEnd(7)} ${"method".padEnd(12)} ${"median s".padStart(9)} ${"min–max".padStart(15)} ${"×best".padStart(6)} ${"×rsync".padStart(7)} ${"RSS MiB".padStart(8)} ${"CPU s LAB+SRVTRF".padStart(17)}`];
  for (const r of rows) {
    const range = r.minS === null ? "" : `${f(r.minS, 2)}–${f(r.maxS, 2)}`;
    const note = r.medianS === null && r.note ? `  (${r.note.slice(0, 60)})` : "";
    lines.push(`${String(r.rttMs).padStart(4)}  ${r.dataset.padEnd(7)} ${r.method.padEnd(12)} ${f(r.medianS, 2).padStart(9)} ${range.padStart(15)} ${f(r.vsBestOpenSsh, 2).padStart(6)} ${f(r.vsRsync, 2).padStart(7)} ${f(r.peakRssMiB, 0).padStart(8)} ${`${f(r.labCpuS, 2)}+${f(r.srvtrfCpuS, 2)}`.padStart(17)}${note}`);
  }
  if (resume.length) {
    lines.push("", `resume after a kill at 50 % (second run: time, bytes on the wire both ways ÷ file size)`);
    for (const r of resume) {
      lines.push(`${String(r.rttMs).padStart(4)}  ${r.tool.padEnd(32)} round ${r.round + 1}  ${f(r.secondSeconds, 2).padStart(7)} s  ${f(r.secondWireFraction === null ? null : r.secondWireFraction * 100, 0).padStart(4)} % of the file  left on SRVTRF after the kill ${(r.leftOnSrvtrf / 1024 ** 2).toFixed(0)} MiB${r.identical ? "" : "  NOT IDENTICAL"}${r.note ? `  (${r.note.slice(0, 80)})` : ""}`);
    }
  }
  return `${lines.join("\n")}\n`;
}

/** The issue's targets, for the datasets and RTTs that ran. */
export function checkTargets(rows: readonly WanRow[], resume: readonly ResumeResult[]): { what: string; ok: boolean; detail: string }[] {
  const out: { what: string; ok: boolean; detail: string }[] = [];
  const ketter = (dataset: string, rttMs: number): WanRow | undefined => rows.find((r) => r.method === "ketter" && r.dataset === dataset && r.rttMs === rttMs);
  const check = (what: string, row: WanRow | undefined, field: "vsBestOpenSsh" | "vsRsync", limit: number): void => {
    if (!row) return;
    const x = row[field];
    out.push({ what, ok: x !== null && x <= limit, detail: `${f(x, 2)}× ${field === "vsRsync" ? "rsync -a" : "the fastest OpenSSH tool"}` });
  };
  for (const dataset of ["big", "card"]) {
    check(`${dataset} @ 100 ms ≤ 0.33× fastest OpenSSH tool`, ketter(dataset, 100), "vsBestOpenSsh", 0.33);
    check(`${dataset} @ 20 ms ≤ 0.5× fastest OpenSSH tool`, ketter(dataset, 20), "vsBestOpenSsh", 0.5);
  }
  for (const dataset of ["big", "card", "seq", "small"]) check(`${dataset} @ 0 ms ≤ 1.0× fastest OpenSSH tool`, ketter(dataset, 0), "vsBestOpenSsh", 1.0);
  check("seq @ 100 ms ≤ 0.5× rsync", ketter("seq", 100), "vsRsync", 0.5);
  for (const rttMs of [...new Set(rows.map((r) => r.rttMs))]) check(`small @ ${rttMs} ms ≤ 1.0× rsync`, ketter("small", rttMs), "vsRsync", 1.0);
  for (const r of resume.filter((x) => x.tool === "ketter")) {
    out.push({ what: `resume @ ${r.rttMs} ms: second run sends ≤ 55 % of the file`, ok: r.secondWireFraction !== null && r.secondWireFraction <= 0.55 && r.identical, detail: `${f(r.secondWireFraction === null ? null : r.secondWireFraction * 100, 0)} %${r.identical ? "" : ", copy not identical"}` });
  }
  const rss = rows.filter((r) => r.method === "ketter" && r.peakRssMiB !== null).map((r) => r.peakRssMiB as number);
  if (rss.length) out.push({ what: "Ketter peak RSS < 512 MiB", ok: Math.max(...rss) < 512, detail: `max ${Math.max(...rss).toFixed(0)} MiB` });
  return out;
}
