/**
 * The transfer operation: scan → plan → transfer → verify → commit → clean up, each a named step
 * in its own file. Everything is written under `.ketter-<id>.partial` next to the target and renamed
 * into place only after verification; a failure or cancellation removes the staging entry and
 * leaves the target and the source as they were.
 */
import type { Endpoint } from "./endpoints/endpoint.ts";
import { cancelledError, throwIfCancelled } from "./cancel.ts";
import { fromSystemError, isTransferError } from "./errors.ts";
import { createThrottle } from "./rate_limit.ts";
import { checkPaths, createParentFolders, locatePaths, probeTargetInsideSource } from "./steps/check.ts";
import { copyFiles } from "./steps/copy_direct.ts";
import { recheckSource } from "./steps/recheck.ts";
import { cleanupPhase, markerMeansCommitted, resumeMove, writeCommitMarker } from "./steps/cleanup.ts";
import { commit, discardStaging, recoverStaging, settleStaging } from "./steps/commit.ts";
import { type EngineOptions, resolveOptions } from "./options.ts";
import { joinRel, normalizeRel, parentRel, showPath } from "./paths.ts";
import { type Plan, plan, streamsFor, warmStreams } from "./steps/plan.ts";
import { StatPrefetch } from "./steps/prefetch.ts";
import { moveByRename } from "./steps/rename.ts";
import { ProgressTracker, type Run, type StagingNames } from "./run.ts";
import { type Manifest, scan } from "./steps/scan.ts";
import { type EngineEvent, type FileOutcome, type Phase, type Progress, type TransferResult, type TransferSpecInput, parseSpec } from "./spec.ts";
import { FileLedger } from "./file_ledger.ts";
import { type Comparison, type TargetListing, compareWithTarget, startTargetListing } from "./steps/compare.ts";
import { completeMerge, conflicts, mergeInto, refuseConflicts } from "./steps/merge.ts";
import { TransferError } from "./errors.ts";
import type { Entry } from "./endpoints/endpoint.ts";
import { applyAttributes, createDirs, createLinks } from "./steps/tree.ts";
import { assertMhlOptions, checkBeforeSending, checkSentHashes, historyToSend, readCustody } from "./steps/mhl_source.ts";
import { type PreparedGeneration, type WrittenGeneration, prepareGeneration, writeGeneration } from "./steps/mhl_write.ts";
import { Journal } from "./steps/journal.ts";
import { type Resumed, resumeStaging, resumedHashes, travelling } from "./steps/resume.ts";
import { verify } from "./steps/verify.ts";
import { transferZip } from "./steps/copy_zip.ts";

/** The steps a caller may guard: the commit (which may replace a target) and a move's source removal. */
export type GuardedStep = "commit" | "remove_source";

/**
 * Fencing and durability, implemented by the worker (the CLI passes none). A step the engine must
 * not take without still holding its job's lease is preceded by beforeStep, which throws to stop it;
 * committed() records, durably, that the data arrived, so a later attempt only finishes the rest.
 */
export interface TransferHooks {
  beforeStep?(step: GuardedStep): Promise<void>;
  committed?(): Promise<void>;
}

/** Everything transfer() needs besides the spec. */
export interface TransferContext {
  source: Endpoint;
  target: Endpoint;
  signal?: AbortSignal;
  onProgress?: (p: Progress) => void;
  onEvent?: (e: EngineEvent) => void;
  options?: Partial<EngineOptions>;
  hooks?: TransferHooks;
  /** What the caller knows of earlier attempts with this id: `committed`, only finish what follows the commit. */
  resume?: { committed: boolean };
  /** A retry of the files that failed (skipFileErrors): only these paths, relative to the source, travel into the existing target. */
  only?: readonly string[];
  /** Every file's outcome, in batches (skipped, verified, failed). */
  onFiles?: (batch: FileOutcome[]) => void;
}

/** Staging names next to the target, derived from the spec id so a retry finds them. */
export function stagingNames(targetPath: string, id: string): StagingNames {
  const dir = parentRel(targetPath);
  const name = (suffix: string): string => joinRel(dir, `.ketter-${id}.${suffix}`);
  return { staging: name("partial"), old: name("old"), zips: name("zips"), moved: name("moved"), journal: name("journal"), journalNew: name("journal.new") };
}

/** Copies or moves `spec.sourcePath` (on ctx.source) to exactly `spec.targetPath` (on ctx.target); see docs/engine.md. */
export async function transfer(specInput: TransferSpecInput, ctx: TransferContext): Promise<TransferResult> {
  const durations: Record<Phase, number> = { scan: 0, plan: 0, transfer: 0, verify: 0, commit: 0, cleanup: 0 };
  try {
    const spec = parseSpec(specInput);
    assertMhlOptions(spec);
    const opts = resolveOptions(ctx.options);
    const run: Run = {
      spec,
      source: ctx.source,
      target: ctx.target,
      opts,
      names: stagingNames(normalizeRel(spec.targetPath), spec.id),
      signal: ctx.signal,
      progress: new ProgressTracker(ctx.onProgress, opts.progressIntervalMs),
      emit: (e) => ctx.onEvent?.(e),
      hooks: ctx.hooks ?? {},
      throttle: createThrottle(opts.maxBytesPerSec, ctx.signal),
      relation: "unknown",
      locations: null,
      ledger: new FileLedger(ctx.onFiles, spec.skipFileErrors),
      only: ctx.only === undefined ? null : new Set(ctx.only.map(normalizeRel)),
      custody: null,
    };
    if (ctx.resume?.committed) return await resume(run, durations, timedInto(durations));
    return await runSteps(run, durations);
  } catch (err) {
    if (ctx.signal?.aborted && !(isTransferError(err) && err.code === "CANCELLED")) throw cancelledError(err);
    throw fromSystemError(err, "", "transfer");
  }
}

function timedInto(durations: Record<Phase, number>): Timed {
  return async <T>(phase: Phase, fn: () => Promise<T>): Promise<T> => {
    const t0 = performance.now();
    try {
      return await fn();
    } finally {
      durations[phase] += performance.now() - t0;
    }
  };
}

async function runSteps(run: Run, durations: Record<Phase, number>): Promise<TransferResult> {
  const timed = timedInto(durations);
  const journal = new Journal(run);
  // A move by rename commits inside prepare(): after that, nothing it wrote is discarded.
  const renamed = { committed: false };
  try {
    let ready: Prepared | { finish: () => Promise<TransferResult> };
    try {
      ready = await prepare(run, journal, durations, timed, renamed);
    } catch (caught) {
      await settleStaging(run, journal, caught, renamed.committed);
      throw caught;
    }
    // Finishing an earlier attempt's commit, or a sync with nothing to send, writes no staging:
    // their failures leave the commit marker and anything an earlier attempt kept as they are.
    if ("finish" in ready) return await ready.finish();
    return await transferVerifyCommit(run, journal, ready, durations, timed);
  } finally {
    await journal.stop();
  }
}

/** Everything decided before the first byte travels. */
interface Prepared {
  sourcePath: string;
  targetPath: string;
  /** The source as scanned, what must be in the staging entry, and what a resume already has there. */
  m: Manifest;
  send: Manifest;
  resumed: Resumed | null;
  cmp: Comparison | null;
  targetExists: Entry | null;
  p: Plan;
}

/** check, scan, compare, resume, plan — or what finishes the transfer without a staging entry (a rename, a committed attempt, nothing to send). */
async function prepare(run: Run, journal: Journal, durations: Record<Phase, number>, timed: Timed, renamed: { committed: boolean }): Promise<Prepared | { finish: () => Promise<TransferResult> }> {
  run.progress.phase("scan", 0, 0);
  throwIfCancelled(run.signal);
  const tp = normalizeRel(run.spec.targetPath);
  const n = run.names;
  const early = new StatPrefetch(run.target, [n.moved, n.old, n.staging, n.zips, n.journal, n.journalNew, parentRel(tp), tp], run.signal, parentRel(tp));
  // A sync compares with the target's listing: it travels while the checks and the scan run.
  const listing: TargetListing | null = run.spec.sync !== "off" || run.only !== null ? startTargetListing(run, tp) : null;
  let checked: Awaited<ReturnType<typeof checkAndScan>>;
  try {
    checked = await checkAndScan(run, tp, early, timed);
  } catch (err) {
    listing?.stop();
    throw err;
  }
  if (checked === "resume") {
    listing?.stop();
    return { finish: () => resume(run, durations, timed) };
  }
  const { sourcePath, targetPath, m, targetExists } = checked;

  // An existing target is updated in place (sync, or the retry of failed files): only what differs travels.
  const merging = targetExists !== null && (run.spec.sync !== "off" || run.only !== null);
  let send = m;
  let cmp: Comparison | null = null;
  if (!merging) listing?.stop();
  if (merging) {
    if ((m.kind === "dir") !== (targetExists.type === "dir")) {
      throw new TransferError("TARGET_EXISTS", `target ${showPath(run.target, run.spec.targetPath)} is a ${targetExists.type} and the source a ${m.kind}: sync updates a folder with a folder and a file with a file; choose another target`);
    }
    cmp = await timed("plan", () => compareWithTarget(run, m, sourcePath, targetPath, run.only !== null || run.spec.sync === "off" ? "all" : run.spec.sync, listing ?? undefined));
    refuseConflicts(run, conflicts(m, cmp.targetTree));
    send = cmp.send;
    run.ledger.skipped(cmp.skipped);
    run.emit({ kind: "compared", message: `${send.files.length} of ${m.files.length} files differ from the target and travel; ${cmp.skipped.length} are already there (${run.only !== null ? "retry of failed files" : `sync ${run.spec.sync}`})`, data: { send: send.files.length, skipped: cmp.skipped.length, bytes: send.bytes, level: run.spec.sync } });
  }

  if (run.spec.mhl === true) {
    if (m.kind === "dir") {
      run.custody = await timed("plan", () => readCustody(run, m, send, sourcePath, targetPath, cmp?.targetTree ?? null));
      send = historyToSend(run, run.custody, send);
    }
    else run.emit({ kind: "fallback", message: "mhl: an ASC MHL history belongs to a folder, and the source is a single file; it is copied without one" });
  }

  if (cmp !== null && run.custody === null && send.files.length + send.links.length + send.dirs.length === 0) {
    const c = cmp;
    if (checked.resume) await discardStaging(run); // an earlier attempt's partial copy of files that are at the target now
    return { finish: () => unchanged(run, m, c, sourcePath, targetPath, targetExists as Entry, durations, timed) };
  }

  // What an earlier attempt left (its staging entry and journal) is re-checked; complete files stay out of the plan.
  const resumed = checked.resume ? await timed("plan", () => resumeStaging(run, send, sourcePath, run.names.staging, journal)) : null;
  const alreadyThere = resumed?.stagedBytes ?? 0;
  run.progress.phase("plan", send.files.length, send.bytes);
  let t = travelling(m, send, resumed, alreadyThere);
  let p = await timed("plan", () => plan(run, t.list, sourcePath, targetPath, { early, allowRename: !merging, ...t.opts }));
  if (run.custody !== null && p.hash !== null) {
    // Files the history records in another format than the job's hash are checked before they travel.
    const checked = await timed("plan", () => checkBeforeSending(run, run.custody!, send, sourcePath, p.hash!));
    if (checked !== send) {
      send = checked;
      t = travelling(m, send, resumed, alreadyThere);
      p = await timed("plan", () => plan(run, t.list, sourcePath, targetPath, { allowRename: false, ...t.opts }));
    }
  }
  if (p.strategy === "rename") {
    const done = await renameInstead(run, p, m, sourcePath, targetPath, durations, timed, renamed);
    if (done !== null) {
      // The source itself moved: a partial copy an earlier attempt left is of no use now.
      if (resumed !== null) {
        await journal.stop();
        const left = await discardStaging(run);
        if (left.length > 0) throw afterCommit(left[0]);
      }
      return { finish: async () => done };
    }
    p = await timed("plan", () => plan(run, t.list, sourcePath, targetPath, { allowRename: false, ...t.opts }));
  }
  emitChosen(run, p, send);
  return { sourcePath, targetPath, m, send, resumed, cmp, targetExists, p };
}

/** A move by one rename; null (nothing moved) when the rename is impossible and the transfer copies instead. */
async function renameInstead(run: Run, p: Plan, m: Manifest, sourcePath: string, targetPath: string, durations: Record<Phase, number>, timed: Timed, renamed: { committed: boolean }): Promise<TransferResult | null> {
  run.progress.phase("commit", m.files.length, m.bytes);
  // The marker again: a process that dies between the rename and its record is finished by the next attempt.
  await writeCommitMarker(run, { rename: true });
  await run.hooks.beforeStep?.("commit");
  const moved = await timed("commit", () => moveByRename(run, sourcePath, targetPath)).catch(async (err: unknown) => {
    await run.target.remove(run.names.moved).catch(() => undefined);
    throw err;
  });
  if (!moved) {
    await run.target.remove(run.names.moved);
    run.emit({ kind: "fallback", message: "a rename cannot move the source there (another file system or kind of endpoint); copying instead" });
    return null;
  }
  renamed.committed = true;
  await run.hooks.committed?.();
  await run.target.remove(run.names.moved);
  emitChosen(run, p, m);
  run.emit({ kind: "committed", message: `moved ${showPath(run.source, run.spec.sourcePath)} to ${showPath(run.target, run.spec.targetPath)} by renaming it` });
  run.ledger.verified(m.files, null, new Map());
  run.ledger.flush();
  return result(run, "rename", m, durations, { mode: run.spec.verify, files: 0 });
}

/** transfer → verify → commit → clean up. */
async function transferVerifyCommit(run: Run, journal: Journal, ready: Prepared, durations: Record<Phase, number>, timed: Timed): Promise<TransferResult> {
  const { sourcePath, targetPath, m, resumed, cmp, targetExists, p } = ready;
  const { send } = ready;
  const staging = run.names.staging;
  const hashes = new Map<string, string>();
  let committed = false;
  let archives = 0;
  let folderAttributes: Promise<void> = Promise.resolve();
  try {
    run.progress.phase("transfer", send.files.length, send.bytes);
    if (resumed !== null) run.progress.resumed(resumed.whole.size, resumed.bytes);
    await timed("transfer", async () => {
      // Zip streams open their remote unpackers while the folders are made (a round trip or two
      // each over a WAN); nothing is written into the staging tree before it exists.
      const dirsMade = createDirs(run, send, staging, resumed?.dirs);
      dirsMade.catch(() => undefined); // awaited by transferZip and below
      let zippedAttributesSet = false;
      if (p.strategy === "zip") ({ archives, attributesSet: zippedAttributesSet } = await transferZip(run, p.archives, sourcePath, staging, p.hash, hashes, { packedBySource: p.packedBySource, dirsMade, journal, streams: p.zipStreams }));
      await dirsMade;
      await copyFiles(run, p.directFiles, { sourcePath, stagingPath: staging }, p.hash, hashes, { streams: p.streams, journal, kept: resumed?.partial ?? new Map() });
      if (resumed !== null) await resumedHashes(run, resumed, sourcePath, p.hash, hashes);
      await createLinks(run, send, staging);
      // Files a resume found complete get their mode and mtime again: an attempt may have stopped
      // between a file's last byte (journaled) and its attributes.
      const resumedWhole = resumed === null ? [] : send.files.filter((f) => resumed.whole.has(f.path));
      const fileAttributes = [...(p.strategy === "zip" && !zippedAttributesSet ? p.archives.flat() : []), ...resumedWhole];
      folderAttributes = applyAttributes(run, send, staging, fileAttributes);
      folderAttributes.catch(() => undefined); // awaited before the commit
      if (fileAttributes.length > 0) await folderAttributes; // files' modes matter to hashing them
    });
    run.progress.flush();
    await reportStreams(run, p);
    throwIfCancelled(run.signal);
    // A source file rewritten while it was read fails as SOURCE_CHANGED (retryable) first, rather
    // than as a mismatch with its history below (not retryable): the history check skips it then.
    await timed("transfer", () => recheckSource(run, send.files, sourcePath));
    // The hashes taken while sending, against the source's history, before anything is verified or committed.
    if (run.custody !== null && p.hash !== null) checkSentHashes(run, run.custody, send, p.hash, hashes);
    // Files that failed on their own (skipFileErrors) leave the staging tree before it is verified.
    let sent = await dropFailed(run, send, staging);

    // The verification reads neither folders' modes and mtimes nor the commit marker: both go out
    // beside it (a round trip or three less over a WAN), and must land before the commit.
    // A sync's copy needs no marker: each file lands by its own atomic rename, and a retry of a merge
    // that died compares again (two round trips less). A move keeps it (its retry must know to only
    // finish the removal), and so does a sync where a file failed (its retry must resume, so the
    // recorded failure stands, rather than compare again).
    const withMarker = cmp === null || run.spec.mode === "move" || run.ledger.counts.failed > 0;
    const marker = withMarker ? writeCommitMarker(run) : undefined;
    const beside = Promise.all([folderAttributes, marker]);
    beside.catch(() => undefined);
    // The generation is built beside the verification, from the source hashes it then proves.
    const prepare = (files: Manifest): Promise<PreparedGeneration | null> | null => run.custody === null || p.hash === null ? null
      : prepareGeneration(run, run.custody, m, files, targetPath, p.hash, hashes, cmp === null && run.only === null && run.ledger.counts.failed === 0);
    let preparing = prepare(sent);
    preparing?.catch(() => undefined); // awaited below unless the verification fails first
    run.progress.phase("verify", sent.files.length, sent.bytes);
    const verified = await timed("verify", () => verify(run, sent, staging, p, hashes, { listedOnly: cmp !== null }));
    const verifiedAll = sent;
    sent = await dropFailed(run, sent, staging);
    if (sent !== verifiedAll) preparing = prepare(sent); // files failed their verification: they are not recorded
    run.emit({ kind: "verified", message: `${verified.files} files verified (${verified.algorithm ?? "size"})`, data: { files: verified.files, ...(verified.algorithm ? { algorithm: verified.algorithm } : {}) } });
    let generation: WrittenGeneration | null = null;
    const prepared = await timed("verify", async () => preparing);
    if (prepared !== null && run.custody !== null && p.hash !== null) {
      const [custody, alg] = [run.custody, p.hash];
      await beside; // folder attributes first: writing the generation changes its folder
      generation = await timed("verify", () => writeGeneration(run, custody, prepared, sent, staging, alg));
    }
    throwIfCancelled(run.signal);

    run.progress.phase("commit", sent.files.length, sent.bytes);
    const replaced = await timed("commit", async () => {
      await beside;
      // What is known before the commit (skipped, failed) reaches the caller before it: an attempt
      // that dies after the commit must not take a failed file's outcome with it.
      run.ledger.flush();
      await run.hooks.beforeStep?.("commit");
      // A sync renames the generation's files last, manifests before the chain that lists them.
      if (cmp !== null) await mergeInto(run, generation === null ? sent : withGeneration(sent, generation), staging, targetPath, cmp.targetTree);
      // A single file that failed on its own (skipFileErrors) leaves nothing to commit (and has no
      // generation: an ASC MHL history belongs to a folder).
      const nothing = sent.kind === "file" && sent.files.length === 0;
      const replaced = cmp === null && !nothing ? await commit(run, staging, targetPath) : cmp !== null;
      committed = true;
      return replaced;
    });
    await journal.stop();
    run.ledger.verified(sent.files, p.hash, hashes);
    run.ledger.flush();
    await run.hooks.committed?.();
    // The journal described the staging entry, which is the target now.
    for (const j of [run.names.journal, run.names.journalNew]) await run.target.remove(j);
    const recorded = generation === null ? "" : `; ASC MHL generation ${generation.record.manifests.map((g) => g.sequence).join(", ")} (${generation.record.format}, ${generation.record.files} files) recorded`;
    run.emit({ kind: "committed", message: `${showPath(run.target, run.spec.targetPath)} ${cmp !== null ? "updated" : replaced ? "replaced" : "created"}${recorded}`, data: { replaced, ...(generation === null ? {} : { mhl: generation.record }) } });
    if (run.ledger.counts.failed > 0) {
      run.emit({ kind: "files_failed", message: `${run.ledger.counts.failed} files failed and were left out (${run.ledger.failures.slice(0, 3).map((f) => `${JSON.stringify(f.path)}: ${f.code}`).join("; ")}); the rest is verified and committed`, data: { failed: run.ledger.counts.failed, failures: run.ledger.failures.slice(0, 20) } });
    }
    const mirrored = cmp !== null ? await completeMerge(run, m, sent, targetPath, cmp.targetTree, targetExists as Entry) : 0;
    const r = result(run, p.strategy === "zip" ? "zip" : "direct", sent, durations, { mode: run.spec.verify, files: verified.files, ...(verified.algorithm ? { algorithm: verified.algorithm } : {}) });
    if (p.strategy === "zip") Object.assign(r, { archives, directFiles: p.directFiles.length });
    await finishSources(run, m, sent, cmp, sourcePath, timed, r);
    if (mirrored > 0) r.mirrored = mirrored;
    if (generation !== null) r.mhl = generation.record;
    return r;
  } catch (caught) {
    // Committed data is never discarded. A failure after the commit is retryable whatever it was:
    // the marker stays, and the next attempt only finishes what is left. Before it, what the
    // attempt wrote stays for the next one when the fault was one a retry gets past (settleStaging).
    run.ledger.flush();
    const err = committed && !run.signal?.aborted ? afterCommit(caught) : caught;
    await settleStaging(run, journal, err, committed);
    throw err;
  }
}

/**
 * The cleanup step: a move removes only what is proven at the target — sent and verified, or found
 * equal by content — and reports the rest as kept (in `r`).
 */
async function finishSources(run: Run, m: Manifest, sent: Manifest, cmp: Comparison | null, sourcePath: string, timed: Timed, r: TransferResult): Promise<void> {
  const removable = removableSources(m, sent, cmp);
  const move = run.spec.mode === "move";
  run.progress.phase("cleanup", move ? removable.files.length + removable.links.length : 0, move ? removable.bytes : 0);
  if (move) await run.hooks.beforeStep?.("remove_source");
  // A sync's copy wrote no commit marker unless a file failed (see runSteps).
  const kept = await timed("cleanup", () => cleanupPhase(run, removable, sourcePath, { marker: cmp === null || move || run.ledger.counts.failed > 0 }));
  run.progress.flush();
  const notRemoved = move ? m.files.filter((f) => !removable.files.includes(f)).map((f) => joinRel(sourcePath, f.path)) : [];
  if (kept.length + notRemoved.length > 0) r.sourceKept = [...kept, ...notRemoved];
}

/**
 * A sync that finds everything already at the target: nothing is staged, verified or committed
 * (each a few round trips over a WAN); only what follows — the mirror, the folders' attributes
 * where they differ, a move's removal of sources proven equal.
 */
async function unchanged(run: Run, m: Manifest, cmp: Comparison, sourcePath: string, targetPath: string, targetRoot: Entry, durations: Record<Phase, number>, timed: Timed): Promise<TransferResult> {
  run.ledger.flush();
  const none: Manifest = { ...m, files: [], links: [], dirs: [], bytes: 0 };
  const mirrored = await timed("commit", () => completeMerge(run, m, none, targetPath, cmp.targetTree, targetRoot));
  const r = result(run, "direct", none, durations, { mode: run.spec.verify, files: 0 });
  await finishSources(run, m, none, cmp, sourcePath, timed, r);
  if (mirrored > 0) r.mirrored = mirrored;
  return r;
}

/** `sent` with the generation's files (and new folders) after every data file, for a sync's renames. */
function withGeneration(sent: Manifest, g: WrittenGeneration): Manifest {
  return { ...sent, files: [...sent.files, ...g.files], dirs: [...sent.dirs, ...g.dirs] };
}

/** A server that refused streams (sessions, connections) during the transfer says so once, in the event log. */
async function reportStreams(run: Run, p: Plan): Promise<void> {
  if (p.streams <= 1) return;
  const now = await streamsFor(run);
  if (now.streams < p.streams) run.emit({ kind: "fallback", message: `fewer streams than planned: ${now.why}`, data: { planned: p.streams, streams: now.streams } });
}

/** A failure after the commit: the data arrived, so it is retryable, and says so. */
function afterCommit(caught: unknown): TransferError {
  const e = fromSystemError(caught, "", "finish");
  return new TransferError(e.code, `the copy is committed at the target, but finishing failed: ${e.message}; a retry only finishes what is left`, { retryable: true, cause: e, details: { ...e.details, committed: true } });
}

/** `send` without the files the ledger recorded as failed; their copies leave the staging tree. */
async function dropFailed(run: Run, send: Manifest, staging: string): Promise<Manifest> {
  if (run.ledger.failed.size === 0) return send;
  const files = send.files.filter((f) => !run.ledger.failed.has(f.path));
  if (files.length === send.files.length) return send;
  for (const f of send.files) if (run.ledger.failed.has(f.path)) await run.target.remove(joinRel(staging, f.path));
  return { ...send, files, bytes: files.reduce((n, f) => n + f.size, 0) };
}

/** The source entries a move may remove: what was sent and verified, and (sync) what was found equal by content; never a failed file. */
function removableSources(m: Manifest, sent: Manifest, cmp: Comparison | null): Manifest {
  const ok = new Set(sent.files.map((f) => f.path));
  for (const p of cmp?.provenEqual ?? []) ok.add(p);
  const files = m.files.filter((f) => ok.has(f.path));
  return { ...m, files, bytes: files.reduce((n, f) => n + f.size, 0) };
}

type Timed = <T>(phase: Phase, fn: () => Promise<T>) => Promise<T>;

/**
 * The target checks and the source listing side by side: listing is read-only, so it starts while
 * the target's answers travel (a round trip each over a WAN); the checks still decide first, and
 * a failed one stops the listing. "resume" when an earlier attempt of this move already committed.
 */
async function checkAndScan(run: Run, tp: string, early: StatPrefetch, timed: Timed): Promise<"resume" | { sourcePath: string; targetPath: string; m: Manifest; targetExists: Entry | null; resume: boolean }> {
  const stop = new AbortController();
  const signal = run.signal ? AbortSignal.any([run.signal, stop.signal]) : stop.signal;
  const scanning = scan({ ...run, signal }, normalizeRel(run.spec.sourcePath));
  scanning.then((m) => warmStreams(run, m), () => undefined); // (and awaited below unless a check fails first)
  // Over SSH each location is a remote command (one exec's round trip): asked beside the scan and
  // the staging's recovery rather than after them.
  const locating = locatePaths(run, signal);
  locating.catch(() => undefined);
  try {
    if ((await early.stat(run.names.moved)) !== null) {
      // Every transfer writes its marker just before committing: it means "committed" once the
      // staging entry is gone and the target is there (a crash or a connection lost during the
      // commit or the source removal lands here); otherwise that attempt never committed.
      const wasCommitted = await markerMeansCommitted(run, normalizeRel(run.spec.sourcePath), (await early.stat(run.names.staging)) === null, (await early.stat(tp)) !== null);
      if (wasCommitted) return "resume";
      await run.target.remove(run.names.moved);
    }
    return await timed("scan", async () => {
      const recovered = await recoverStaging(run, tp, early);
      if (recovered.found) early.forget();
      // A recovery that found an earlier attempt's entries may have put the target back: ask again.
      const checked = await checkPaths(run, early, recovered.found ? undefined : locating);
      run.relation = checked.relation;
      run.locations = checked.locations;
      const m = onlyThese(run, await scanning);
      // Unproven geometry is allowed only for a copy that replaces nothing; it still must not land
      // inside its own source, which a probe through the source shows whatever the endpoints are.
      // Nothing is written before this point; the parents first, so the staging has a folder to go in.
      await createParentFolders(run, checked.missingParents);
      if (checked.relation === "unknown" && m.kind === "dir") await probeTargetInsideSource(run, checked.sourcePath, checked.targetPath);
      return { sourcePath: checked.sourcePath, targetPath: checked.targetPath, m, targetExists: checked.targetExists, resume: recovered.resume };
    });
  } finally {
    stop.abort();
  }
}

/** With a retry of failed files, the manifest keeps only those (and every folder, for their paths). */
function onlyThese(run: Run, m: Manifest): Manifest {
  if (run.only === null) return m;
  const only = run.only;
  const files = m.files.filter((f) => only.has(f.path));
  return { ...m, files, links: m.links.filter((l) => only.has(l.path)), bytes: files.reduce((n, f) => n + f.size, 0) };
}

/** An earlier attempt committed its copy and stopped before finishing (a move: while removing the source): finish that. */
async function resume(run: Run, durations: Record<Phase, number>, timed: Timed): Promise<TransferResult> {
  const sourcePath = normalizeRel(run.spec.sourcePath);
  const targetPath = normalizeRel(run.spec.targetPath);
  // An overwrite that dropped between its two renames may have left the old target under `.old`.
  await recoverStaging(run, targetPath, undefined, { resumable: false });
  const move = run.spec.mode === "move";
  const m = !move ? null : await timed("scan", async () => ((await run.source.stat(sourcePath)) === null ? null : scan(run, sourcePath)));
  run.emit({ kind: "fallback", message: move ? "an earlier attempt committed this move; only finishing the source removal" : "an earlier attempt committed this copy; nothing left to do", data: { sourceLeft: m?.files.length ?? 0 } });
  run.progress.phase("cleanup", m?.files.length ?? 0, m?.bytes ?? 0);
  if (m !== null) await run.hooks.beforeStep?.("remove_source");
  const kept = m === null ? [] : await timed("cleanup", () => resumeMove(run, m, sourcePath, targetPath));
  await run.target.remove(run.names.moved);
  const empty: Manifest = { kind: "dir", root: { path: "", type: "dir", size: 0, mtimeMs: 0, mode: 0 }, files: [], dirs: [], links: [], bytes: 0 };
  const r = result(run, "resumed", m ?? empty, durations, { mode: run.spec.verify, files: 0 });
  if (kept.length > 0) r.sourceKept = kept;
  return r;
}

function emitChosen(run: Run, p: Plan, m: Manifest): void {
  run.emit({
    kind: "strategy_chosen",
    message: `${p.strategy}: ${p.reason}`,
    data: { strategy: p.strategy, reason: p.reason, files: m.files.length, bytes: m.bytes, hash: p.hash, archives: p.archives.length, directFiles: p.directFiles.length, streams: p.streams, streamsWhy: p.streamsWhy },
  });
}

/** `files`/`bytes`: what traveled (or moved by rename); the ledger's counts say what else happened to each file. */
function result(run: Run, strategy: TransferResult["strategy"], m: Manifest, durationsMs: Record<Phase, number>, verified: TransferResult["verified"]): TransferResult {
  const rounded = Object.fromEntries(Object.entries(durationsMs).map(([k, v]) => [k, Math.round(v * 10) / 10])) as Record<Phase, number>;
  const r: TransferResult = {
    id: run.spec.id, strategy, files: m.files.length, bytes: m.bytes, dirs: m.dirs.length, links: m.links.length, durationsMs: rounded, verified,
    fileCounts: { ...run.ledger.counts }, sentBytes: run.progress.sentBytes, resumedBytes: run.progress.resumedBytes,
  };
  if (run.ledger.failures.length > 0) r.failures = [...run.ledger.failures];
  return r;
}
