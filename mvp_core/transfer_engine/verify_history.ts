/**
 * The verify operation (ASC MHL spec 5.6.4; CLI `--mode verify`, API verify jobs): a folder on any
 * endpoint checked against its own ASC MHL history — every recorded file hashed in a recorded
 * format (the cheapest one the endpoint computes next to the data) and compared, files the history
 * does not know reported as new, recorded files not there as missing, a damaged history as such.
 * With `record`, the verification is appended as an in-place generation (new files original,
 * mismatches failed), each file written under a staging name and renamed into place, manifest
 * first; a damaged history is only reported, never appended to.
 */
import os from "node:os";
import pkg from "../../package.json" with { type: "json" };
import type { FolderVerification, KnownFile, MhlFs, MhlHashFormat } from "../mhl/index.ts";
import { throwIfCancelled } from "./cancel.ts";
import type { Endpoint, HashAlgorithm } from "./endpoints/endpoint.ts";
import { EndpointMhlFs } from "./endpoints/mhl_fs.ts";
import { TransferError, fromSystemError } from "./errors.ts";
import { MHL_HASH_PREFERENCE, isMhlHash } from "./hash.ts";
import { baseRel, joinRel, normalizeRel, parentRel, showPath } from "./paths.ts";
import { ProgressTracker } from "./run.ts";
import type { EngineEvent, Progress } from "./spec.ts";

/** What to verify: a folder (relative to the endpoint's root), and whether to record the verification. */
export interface VerifySpec {
  /** Names a staging file when recording, like a transfer's id. */
  id?: string;
  path: string;
  /** The format a recorded generation uses (auto: the one most files are recorded in, else xxh3). */
  hash?: "auto" | HashAlgorithm;
  /** Append an in-place generation recording this verification. */
  record?: boolean;
}

/** What verifying found; `ok` only when every recorded file matched, none is missing or new, and the history is intact. */
export interface HistoryVerification {
  ok: boolean;
  /** Files whose recorded hash matched. */
  verified: number;
  mismatched: { path: string; format: string; expected: string; actual: string }[];
  missing: string[];
  new: string[];
  historyProblems: { kind: string; file: string; message: string }[];
  /** With record: the manifests appended (relative to the folder). */
  recorded?: { format: HashAlgorithm; manifests: { path: string; sequence: number }[] };
  durationMs: number;
}

/** Everything verifyHistory needs besides the spec. */
export interface VerifyContext {
  endpoint: Endpoint;
  signal?: AbortSignal;
  onProgress?: (p: Progress) => void;
  onEvent?: (e: EngineEvent) => void;
}

/** Verifies `spec.path` on ctx.endpoint against its ASC MHL history; see the file comment. */
export async function verifyHistory(spec: VerifySpec, ctx: VerifyContext): Promise<HistoryVerification> {
  const t0 = performance.now();
  try {
    return await run(spec, ctx, t0);
  } catch (err) {
    throw fromSystemError(err, spec.path, "verify");
  }
}

async function run(spec: VerifySpec, ctx: VerifyContext, t0: number): Promise<HistoryVerification> {
  const mhl = await import("../mhl/index.ts");
  const path = normalizeRel(spec.path);
  const { endpoint, signal } = ctx;
  const root = await endpoint.stat(path, { signal });
  if (root === null) throw new TransferError("SOURCE_NOT_FOUND", `${showPath(endpoint, path)} does not exist on ${endpoint.label}; check the path`);
  if (root.type !== "dir") throw new TransferError("UNSUPPORTED", `${showPath(endpoint, path)} is not a folder: an ASC MHL history belongs to a folder (its ascmhl/ inside it)`);
  const fs = new EndpointMhlFs(endpoint, path, { signal });
  const progress = new ProgressTracker(ctx.onProgress, 100);
  const scan = await mhl.scanTree(fs, "/");
  let history;
  try {
    history = await mhl.readHistory(fs, "/", scan);
  } catch (err) {
    if (err instanceof mhl.MhlError) throw new TransferError("MHL_MISMATCH", `the ASC MHL history in ${showPath(endpoint, path)} cannot be read: ${err.message}`);
    throw err;
  }
  if (history === null) throw new TransferError("MHL_MISMATCH", `${showPath(endpoint, path)} has no ASC MHL history (no ascmhl folder): there is nothing to verify it against`);
  progress.phase("verify", scan.files.length, scan.files.reduce((n, f) => n + f.size, 0));
  const caps = await endpoint.capabilities({ signal });
  // Formats the endpoint computes next to the data first: a remote then hashes in one command per batch.
  const nearby = mhl.VERIFY_PREFERENCE.filter((f) => f !== "c4" && caps.hashes.includes(f));
  const preference = [...nearby, ...mhl.VERIFY_PREFERENCE.filter((f) => !nearby.includes(f))];
  const format = spec.record ? recordFormat(spec.hash ?? "auto", mhl.knownFiles(history), caps.hashes) : undefined;
  const sizes = new Map(scan.files.map((f) => [`/${f.path}`, f.size]));
  const counted: MhlFs = {
    list: (dir) => fs.list(dir),
    readFile: (p) => fs.readFile(p),
    hashFile: async (p, formats) => {
      throwIfCancelled(signal);
      const out = await fs.hashFile(p, formats);
      progress.add(1, sizes.get(p) ?? 0);
      return out;
    },
  };
  const v = await mhl.verifyFolder(counted, "/", { history, preference, concurrency: 256, ...(format ? { hashFormat: format } : {}) });
  progress.flush();
  const out: HistoryVerification = {
    ok: v.ok,
    verified: v.verified.length,
    mismatched: v.mismatched,
    missing: v.missing,
    new: v.new,
    historyProblems: v.historyProblems,
    durationMs: 0,
  };
  if (format !== undefined && v.historyProblems.length === 0) out.recorded = await record(spec, ctx, path, format, v, scan.dirs);
  out.durationMs = Math.round(performance.now() - t0);
  ctx.onEvent?.({ kind: "verified", message: verdict(out), data: summaryData(out) });
  return out;
}

/** The format an in-place generation records: as asked, else the one most files are recorded in (if the endpoint computes it), else xxh3. */
function recordFormat(hash: "auto" | HashAlgorithm, known: ReadonlyMap<string, KnownFile>, nearby: readonly HashAlgorithm[]): MhlHashFormat {
  if (hash !== "auto") {
    if (!isMhlHash(hash)) throw new TransferError("INVALID_SPEC", `hash ${hash} cannot be recorded in an ASC MHL manifest: choose xxh3, xxh128, xxh64, sha1 or md5 (or auto)`);
    return hash as MhlHashFormat;
  }
  const counts = new Map<HashAlgorithm, number>();
  for (const k of known.values()) {
    const f = MHL_HASH_PREFERENCE.find((a) => k.first[a as MhlHashFormat] !== undefined);
    if (f !== undefined) counts.set(f, (counts.get(f) ?? 0) + 1);
  }
  const best = [...counts.entries()].sort((a, b) => b[1] - a[1])[0]?.[0];
  return (best !== undefined && nearby.includes(best) ? best : "xxh3") as MhlHashFormat;
}

/** Appends the in-place generation: each file under a staging name, then renamed (manifest before chain). */
async function record(spec: VerifySpec, ctx: VerifyContext, path: string, format: MhlHashFormat, v: FolderVerification, dirs: readonly { path: string; mtimeMs: number }[]): Promise<HistoryVerification["recorded"]> {
  const mhl = await import("../mhl/index.ts");
  const { endpoint, signal } = ctx;
  const gen = await mhl.buildGeneration({
    rootName: baseRel(path) || "root",
    createdAt: new Date(),
    creator: { tool: { name: "Ketter", version: pkg.version }, hostName: os.hostname(), comment: `Ketter verify${spec.id ? ` ${spec.id}` : ""}` },
    process: "in-place",
    hashFormat: format,
    files: v.files.map((f) => ({ path: f.path, size: f.size, lastModified: new Date(f.mtimeMs), hashes: f.hashes })),
    directories: dirs.map((d) => ({ path: d.path, lastModified: new Date(d.mtimeMs) })),
  }, v.history);
  const staging = `.ketter-${spec.id ?? crypto.randomUUID()}.partial`;
  for (const w of gen.writes) {
    const dir = joinRel(path, parentRel(w.path));
    if ((await endpoint.stat(dir, { signal })) === null) await endpoint.mkdir(dir, { mode: 0o755, signal });
    const tmp = joinRel(dir, staging);
    const file = await endpoint.openWrite(tmp, { mode: 0o644, size: w.bytes.length, signal });
    try {
      await file.write(w.bytes);
      await file.close();
    } catch (err) {
      await file.abort();
      throw err;
    }
    await endpoint.rename(tmp, joinRel(path, w.path), { replace: true, signal });
  }
  return { format: format as HashAlgorithm, manifests: gen.manifests.map((m) => ({ path: joinRel(joinRel(m.historyPath, mhl.ASCMHL_DIR), m.fileName), sequence: m.sequence })) };
}

/** One line saying what verifying found. */
export function verdict(r: HistoryVerification): string {
  if (r.ok) return `${r.verified} files match their ASC MHL history${r.recorded ? `; generation ${r.recorded.manifests.map((m) => m.sequence).join(", ")} recorded` : ""}`;
  const parts = [
    r.mismatched.length > 0 ? `${r.mismatched.length} mismatched (${r.mismatched.slice(0, 3).map((m) => JSON.stringify(m.path)).join(", ")}${r.mismatched.length > 3 ? ", …" : ""})` : "",
    r.missing.length > 0 ? `${r.missing.length} missing (${r.missing.slice(0, 3).map((p) => JSON.stringify(p)).join(", ")}${r.missing.length > 3 ? ", …" : ""})` : "",
    r.new.length > 0 ? `${r.new.length} not in the history (${r.new.slice(0, 3).map((p) => JSON.stringify(p)).join(", ")}${r.new.length > 3 ? ", …" : ""})` : "",
    r.historyProblems.length > 0 ? `the history is damaged (${r.historyProblems.slice(0, 2).map((p) => p.message).join("; ")})` : "",
  ].filter((s) => s !== "");
  return `${r.verified} files match their ASC MHL history, but ${parts.join("; ")}`;
}

/** The result for an event log: counts, and the first entries of each list. */
export function summaryData(r: HistoryVerification): Record<string, unknown> {
  return {
    ok: r.ok, verified: r.verified,
    mismatched: r.mismatched.slice(0, 100), missing: r.missing.slice(0, 100), new: r.new.slice(0, 100), historyProblems: r.historyProblems.slice(0, 100),
    counts: { mismatched: r.mismatched.length, missing: r.missing.length, new: r.new.length, historyProblems: r.historyProblems.length },
    ...(r.recorded ? { recorded: r.recorded } : {}),
  };
}

/** A verification that found problems, as the error a job fails with (MHL_MISMATCH, not retryable: the data is as it is). */
export function mismatchError(r: HistoryVerification): TransferError {
  return new TransferError("MHL_MISMATCH", verdict(r), { details: summaryData(r) });
}
