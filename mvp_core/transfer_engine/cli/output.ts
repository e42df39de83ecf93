/** What the engine CLI prints: a live progress line on a terminal, a summary, or JSON. */
import type { TransferError } from "../errors.ts";
import { fmtBytes } from "../steps/plan.ts";
import type { Progress, TransferResult } from "../spec.ts";
import { type HistoryVerification, verdict } from "../verify_history.ts";

/** Error codes that mean the request itself is wrong (exit 2) rather than the transfer failing (exit 1). */
export const USAGE_CODES: ReadonlySet<string> = new Set(["INVALID_SPEC", "SAME_PATH", "TARGET_INSIDE_SOURCE", "SOURCE_INSIDE_TARGET", "LOCATION_UNKNOWN"]);

/** Renders "transfer  120/10000 files  1.2 MiB/39.1 MiB  45.0 MiB/s  ETA 3s" lines, computing the rate per phase. */
export class ProgressLine {
  private phaseStart = performance.now();
  private phase = "";

  render(p: Progress): string {
    if (p.phase !== this.phase) {
      this.phase = p.phase;
      this.phaseStart = performance.now();
    }
    const secs = (performance.now() - this.phaseStart) / 1000;
    const rate = secs > 0.2 ? p.bytesDone / secs : 0;
    const eta = rate > 0 && p.bytesTotal > p.bytesDone ? `  ETA ${Math.ceil((p.bytesTotal - p.bytesDone) / rate)}s` : "";
    return `${p.phase.padEnd(8)} ${p.filesDone}/${p.filesTotal} files  ${fmtBytes(p.bytesDone)}/${fmtBytes(p.bytesTotal)}  ${fmtBytes(rate)}/s${eta}`;
  }
}

/** Human summary of a finished transfer. */
export function summary(r: TransferResult): string {
  const total = Object.values(r.durationsMs).reduce((a, b) => a + b, 0);
  const phases = Object.entries(r.durationsMs)
    .filter(([, ms]) => ms > 0)
    .map(([k, ms]) => `${k} ${(ms / 1000).toFixed(2)}s`)
    .join(", ");
  const verified = r.strategy === "rename" ? "nothing to verify (renamed in place)" : `${r.verified.files} files verified by ${r.verified.algorithm ?? "size"}`;
  const lines = [
    `done: ${r.files} files, ${r.dirs} folders, ${r.links} links, ${fmtBytes(r.bytes)} by ${r.strategy}${r.archives ? ` (${r.archives} archive${r.archives > 1 ? "s" : ""})` : ""} in ${(total / 1000).toFixed(2)}s`,
    `      ${verified}; ${phases}`,
  ];
  const c = r.fileCounts;
  if (c.skipped > 0 || c.failed > 0) lines.push(`      files: ${c.verified} sent and verified, ${c.skipped} already at the target, ${c.failed} failed${r.mirrored ? `; mirror removed ${r.mirrored}` : ""}`);
  for (const f of r.failures?.slice(0, 10) ?? []) lines.push(`      failed ${JSON.stringify(f.path)}: ${f.code} ${f.message}`);
  if (r.mhl) lines.push(`      ASC MHL: generation ${r.mhl.manifests.map((m) => `${m.sequence} (${m.path})`).join(", ")}, ${r.mhl.files} files in ${r.mhl.format}${r.mhl.sourceChecked > 0 ? `, ${r.mhl.sourceChecked} source files checked against their history` : ""}`);
  if (r.sourceKept?.length) lines.push(`      kept ${r.sourceKept.length} source entries (changed during the move, failed, or not proven at the target)`);
  return lines.join("\n");
}

/** Human message for a failure, with a hint where one helps. */
export function failureMessage(err: TransferError): string {
  // The engine's messages are neutral ("allow overwrite"); here they name the flag.
  const message = err.message.replace(/\ballow overwrite\b/g, "pass --overwrite").replace(/\bor allow createParents\b/g, "or create it");
  const hint = err.code === "TARGET_EXISTS" ? "\n  hint: --to names the copy itself; to copy into an existing folder use --to FOLDER/NAME" : "";
  return `error ${err.code}${err.retryable ? " (retryable)" : ""}: ${message}${hint}`;
}

/** Human summary of a verification against an ASC MHL history: the verdict, then every problem (up to 50 of each kind). */
export function verificationSummary(r: HistoryVerification): string {
  const lines = [`${r.ok ? "ok" : "FAILED"}: ${verdict(r)} (${(r.durationMs / 1000).toFixed(2)}s)`];
  for (const m of r.mismatched.slice(0, 50)) lines.push(`  mismatched ${JSON.stringify(m.path)}: ${m.format} ${m.actual}, recorded ${m.expected}`);
  for (const p of r.missing.slice(0, 50)) lines.push(`  missing    ${JSON.stringify(p)}`);
  for (const p of r.new.slice(0, 50)) lines.push(`  new        ${JSON.stringify(p)} (not in the history)`);
  for (const p of r.historyProblems.slice(0, 50)) lines.push(`  history    ${p.message}`);
  return lines.join("\n");
}
