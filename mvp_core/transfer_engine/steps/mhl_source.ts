/**
 * Chain of custody, before and while sending (docs/mhl.md): with `mhl`, the source folder's ASC MHL
 * history is read, refused when damaged, and every file it records is checked against it — in the
 * same read that sends the file when the job hashes in the recorded format (the plan prefers it),
 * else by hashing the source in that format before sending. A mismatch fails the job naming the
 * files (with skipFileErrors, those files fail alone). Nothing lands before that check: files
 * checked during the read are checked before the destination is verified, and a failed job
 * commits nothing.
 *
 * For a sync into an existing target, the target's own history counts too: the new generation
 * appends to whichever of the two histories extends the other; two that diverged are refused.
 */
import type { KnownFile, MhlHashFormat, MhlHistory } from "../../mhl/index.ts";
import type { Entry, HashAlgorithm } from "../endpoints/endpoint.ts";
import { EndpointMhlFs } from "../endpoints/mhl_fs.ts";
import { TransferError } from "../errors.ts";
import { isMhlHash } from "../hash.ts";
import { showPath } from "../paths.ts";
import { runPool } from "../pool.ts";
import type { Run } from "../run.ts";
import type { TransferSpec } from "../spec.ts";
import type { Manifest } from "./scan.ts";

/** The folder of a history (mhl/naming.ts ASCMHL_DIR; the library is loaded only with mhl). */
const ASCMHL_DIR = "ascmhl";

/** What the engine knows of the histories of one transfer. */
export interface Custody {
  /** The source folder's history; null when it carries none. */
  source: MhlHistory | null;
  /** The history the new generation appends to: the source's, or an existing target's that extends it; null: a new one. */
  base: MhlHistory | null;
  /** Where `base` comes from. */
  baseFrom: "source" | "target" | "new";
  /** What the source history records per file (paths relative to the source folder). */
  known: Map<string, KnownFile>;
  /** The format most recorded files verify in, when the engine can hash it: `hash: auto` then uses it. */
  recorded: HashAlgorithm | null;
  /** Source digests in recorded formats other than the job's hash (computed before sending), by path. */
  extra: Map<string, Partial<Record<MhlHashFormat, string>>>;
  /** Files checked against the source history. */
  checked: number;
}

/** Refuses options an ASC MHL cannot go with (INVALID_SPEC), before anything is read. */
export function assertMhlOptions(spec: TransferSpec): void {
  if (spec.mhl !== true) return;
  if (spec.verify !== "checksum") throw new TransferError("INVALID_SPEC", "mhl records every file's content hash: it needs verify checksum (or leave mhl off)");
  if (spec.hash !== "auto" && !isMhlHash(spec.hash)) {
    throw new TransferError("INVALID_SPEC", `hash ${spec.hash} cannot be recorded in an ASC MHL manifest: choose xxh3, xxh128, xxh64, sha1 or md5 (or auto), or leave mhl off`);
  }
}

/**
 * Reads the source's history (and, for a sync, the existing target's) and decides what the new
 * generation appends to. `send`: the files that will travel; `targetTree`: the listing of an
 * existing target being updated in place (a sync), else null.
 */
export async function readCustody(run: Run, m: Manifest, send: Manifest, sourcePath: string, targetPath: string, targetTree: ReadonlyMap<string, Entry> | null): Promise<Custody> {
  const mhl = await import("../../mhl/index.ts");
  const signal = run.signal;
  // A retry of failed files scanned only those: the history's own files need a walk then.
  const srcFs = new EndpointMhlFs(run.source, sourcePath, { signal, ...(run.only === null ? { entries: [...m.files, ...m.dirs, ...m.links] } : {}) });
  const source = await readHistory(srcFs, "source", showPath(run.source, run.spec.sourcePath));
  const known = source === null ? new Map<string, KnownFile>() : mhl.knownFiles(source);
  if (run.only === null && source !== null) {
    const present = new Set(m.files.map((f) => f.path));
    const missing = [...known.keys()].filter((p) => !present.has(p)).sort();
    if (missing.length > 0) {
      throw mismatch(`${missing.length} file(s) recorded in the source's ASC MHL history are missing from the source ${showPath(run.source, run.spec.sourcePath)} (${list(missing)}); the copy would not match its history — restore them, or record their removal with a new generation first`, { missing: missing.slice(0, 50) });
    }
  }
  let base = source;
  let baseFrom: Custody["baseFrom"] = source === null ? "new" : "source";
  if (targetTree !== null) {
    const dstFs = new EndpointMhlFs(run.target, targetPath, { signal, entries: targetTree.values() });
    const existing = await readHistory(dstFs, "target", showPath(run.target, run.spec.targetPath));
    if (existing !== null) {
      if (source === null || extendsHistory(existing, source)) [base, baseFrom] = [existing, "target"];
      else if (!extendsHistory(source, existing)) {
        throw mismatch(`the source's and the target's ASC MHL histories have diverged (neither continues the other): Ketter does not merge two histories of one folder — copy to a new target, or replace this one (overwrite)`);
      }
    }
  }
  return { source, base, baseFrom, known, recorded: recordedFormat(send, known), extra: new Map(), checked: 0 };
}

/**
 * What travels of the source's own history files. Appending to the target's history (it continues
 * the source's), the source has nothing it lacks: its shorter chain file must not replace the
 * target's, so no ascmhl file travels (they count as already there). Otherwise they travel like any
 * file, and the new generation's chain file replaces the copied one in the staging tree.
 */
export function historyToSend(run: Run, custody: Custody, send: Manifest): Manifest {
  if (custody.baseFrom !== "target") return send;
  const inHistory = (f: Entry): boolean => f.path.split("/").includes(ASCMHL_DIR);
  const kept = send.files.filter((f) => inHistory(f));
  if (kept.length === 0) return send;
  run.ledger.skipped(kept);
  const files = send.files.filter((f) => !inHistory(f));
  return { ...send, files, bytes: files.reduce((n, f) => n + f.size, 0) };
}

/**
 * Before sending: the files the source history records in a format other than `alg` are hashed
 * in that format now (a read of each) and checked. Failing files are recorded in the ledger
 * (skipFileErrors) and left out of what travels, or fail the transfer.
 */
export async function checkBeforeSending(run: Run, custody: Custody, send: Manifest, sourcePath: string, alg: HashAlgorithm): Promise<Manifest> {
  const todo = send.files.map((f) => ({ f, want: expectation(custody, f.path, alg) })).filter(({ want }) => want !== null && want.format !== alg);
  if (todo.length === 0) return send;
  const fs = new EndpointMhlFs(run.source, sourcePath, { signal: run.signal, entries: [] });
  const bad: { f: Entry; why: string }[] = [];
  await runPool(todo, 64, async ({ f, want }) => {
    const w = want as NonNullable<typeof want>;
    const got = await fs.hashFile(`/${f.path}`, [w.format]);
    const digest = got[w.format];
    custody.checked++;
    if (digest === w.value) custody.extra.set(f.path, { [w.format]: digest });
    else bad.push({ f, why: `${w.format} ${digest ?? "missing"} now, ${w.value} recorded in generation ${w.sequence}` });
  });
  const failed = refuse(run, bad);
  if (failed.size === 0) return send;
  const files = send.files.filter((f) => !failed.has(f.path));
  return { ...send, files, bytes: files.reduce((n, f) => n + f.size, 0) };
}

/**
 * After the transfer step: the source hashes taken while sending, in the recorded format, against
 * the history. Failing files are recorded (skipFileErrors; the caller drops their copies) or fail
 * the transfer before anything is committed.
 */
export function checkSentHashes(run: Run, custody: Custody, sent: Manifest, alg: HashAlgorithm, hashes: ReadonlyMap<string, string>): void {
  const bad: { f: Entry; why: string }[] = [];
  for (const f of sent.files) {
    if (run.ledger.failed.has(f.path)) continue;
    const want = expectation(custody, f.path, alg);
    if (want === null || want.format !== alg) continue;
    custody.checked++;
    const got = hashes.get(f.path);
    if (got !== want.value) bad.push({ f, why: `${alg} ${got ?? "missing"} now, ${want.value} recorded in generation ${want.sequence}` });
  }
  refuse(run, bad);
}

/** The recorded hash `path` is checked against: in `alg` when the history has it, else its cheapest recorded format. */
function expectation(custody: Custody, path: string, alg: HashAlgorithm): { format: MhlHashFormat; value: string; sequence: number } | null {
  const k = custody.known.get(path);
  if (k === undefined || !k.hasOriginal) return null;
  const same = isMhlHash(alg) ? k.first[alg as MhlHashFormat] : undefined;
  if (same !== undefined) return same;
  for (const f of ["xxh3", "xxh64", "xxh128", "sha1", "md5", "c4"] as const) if (k.first[f] !== undefined) return k.first[f] ?? null;
  return null;
}

/** Records each mismatch as its file's failure where skipFileErrors allows, else throws them all. Returns the paths recorded. */
function refuse(run: Run, bad: readonly { f: Entry; why: string }[]): Set<string> {
  const recorded = new Set<string>();
  const fatal: string[] = [];
  for (const { f, why } of [...bad].sort((a, b) => (a.f.path < b.f.path ? -1 : 1))) {
    const err = mismatch(`${JSON.stringify(f.path)} does not match the source's ASC MHL history (${why}); it was not sent`, { path: f.path });
    if (run.ledger.fail(f, err)) recorded.add(f.path);
    else fatal.push(`${JSON.stringify(f.path)} (${why})`);
  }
  if (fatal.length > 0) {
    throw mismatch(`${fatal.length} source file(s) do not match their ASC MHL history: ${fatal.slice(0, 5).join("; ")}${fatal.length > 5 ? "; …" : ""}; nothing was committed — the source changed since it was recorded (or is damaged)`, {
      files: bad.slice(0, 50).map(({ f, why }) => ({ path: f.path, why })),
    });
  }
  return recorded;
}

/** The format most of the travelling files can be verified in, when the engine hashes it. */
function recordedFormat(send: Manifest, known: ReadonlyMap<string, KnownFile>): HashAlgorithm | null {
  const counts = new Map<HashAlgorithm, number>();
  for (const f of send.files) {
    const k = known.get(f.path);
    if (k === undefined || !k.hasOriginal) continue;
    for (const alg of ["xxh3", "xxh64", "xxh128", "sha1", "md5"] as const) {
      if (k.first[alg] !== undefined) {
        counts.set(alg, (counts.get(alg) ?? 0) + 1);
        break;
      }
    }
  }
  let best: HashAlgorithm | null = null;
  for (const [alg, n] of counts) if (best === null || n > (counts.get(best) ?? 0)) best = alg;
  return best;
}

/** Whether history `a` continues `b`: every chain (nested ones too) of `b` is the start of `a`'s. */
export function extendsHistory(a: MhlHistory, b: MhlHistory): boolean {
  if (a.chain.length < b.chain.length) return false;
  if (!b.chain.every((e, i) => a.chain[i]?.c4 === e.c4 && a.chain[i]?.path === e.path)) return false;
  return b.children.every((bc) => {
    const ac = a.children.find((c) => c.path === bc.path);
    return ac !== undefined ? extendsHistory(ac, bc) : bc.chain.length === 0;
  });
}

/** Reads a history; a damaged or foreign one fails the transfer (MHL_MISMATCH) listing its problems. */
async function readHistory(fs: EndpointMhlFs, side: "source" | "target", shown: string): Promise<MhlHistory | null> {
  const mhl = await import("../../mhl/index.ts");
  let h: MhlHistory | null;
  try {
    h = await mhl.readHistory(fs, "/");
  } catch (err) {
    if (err instanceof mhl.MhlError) throw mismatch(`the ${side}'s ASC MHL history in ${shown} cannot be read: ${err.message}`, { side });
    throw err;
  }
  const problems = h === null ? [] : mhl.allProblems(h);
  if (problems.length > 0) {
    throw mismatch(`the ${side}'s ASC MHL history in ${shown} is damaged (${problems.slice(0, 3).map((p) => p.message).join("; ")}${problems.length > 3 ? "; …" : ""}); repair it (ascmhl verify shows it all) before transferring with mhl`, {
      side, problems: problems.slice(0, 50),
    });
  }
  return h;
}

function mismatch(message: string, details: Record<string, unknown> = {}): TransferError {
  return new TransferError("MHL_MISMATCH", message, { details });
}

function list(paths: readonly string[]): string {
  return `${paths.slice(0, 5).map((p) => JSON.stringify(p)).join(", ")}${paths.length > 5 ? ", …" : ""}`;
}
