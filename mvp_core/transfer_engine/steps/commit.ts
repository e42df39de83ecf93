/**
 * Step 5, commit: the verified staging entry is renamed onto the target. Without overwrite the
 * rename refuses an existing target (someone may have created it meanwhile). With overwrite a file
 * replaces a file atomically; otherwise the old target is first renamed to `.ketter-<id>.old`, the
 * staging entry takes its name, then the old one is removed. A crash between those two renames
 * leaves the old target under `.old`: recoverStaging() puts it back before a retry starts.
 *
 * Moving the old target aside is also the last check that it does not hold the source: whatever
 * check.ts could prove, if the source's path is gone once the old target moved, the source was
 * inside it — the old target goes back and nothing is replaced.
 *
 * The staging entry's life around it lives here too: repaired or resumed from before a transfer
 * (recoverStaging), kept or removed after a failure (settleStaging, discardStaging).
 */
import type { Entry } from "../endpoints/endpoint.ts";
import { TransferError, isTransferError } from "../errors.ts";
import { normalizeRel, showPath } from "../paths.ts";
import type { StatPrefetch } from "./prefetch.ts";
import type { Run } from "../run.ts";
import type { Journal } from "./journal.ts";

/** Renames staging onto `targetPath`; returns whether an existing target was replaced. */
export async function commit(run: Run, stagingPath: string, targetPath: string): Promise<boolean> {
  const { target } = run;
  // Past this point cancellation is not honoured: a half-done commit is worse than a finished one.
  if (!run.spec.overwrite) {
    // One step: a rename without replace refuses a target that appeared meanwhile.
    try {
      await target.rename(stagingPath, targetPath);
    } catch (err) {
      if (isTransferError(err) && err.code === "TARGET_EXISTS") {
        throw new TransferError("TARGET_EXISTS", `target ${showPath(run.target, run.spec.targetPath)} appeared while the transfer ran; nothing was replaced — allow overwrite to replace it`, { cause: err });
      }
      throw err;
    }
    return false;
  }
  const existing = await target.stat(targetPath);
  if (existing === null) {
    await target.rename(stagingPath, targetPath);
    return false;
  }
  const staged = await target.stat(stagingPath);
  if (existing.type === "file" && staged?.type === "file") {
    await target.rename(stagingPath, targetPath, { replace: true });
    return true;
  }
  await swapIn(run, stagingPath, targetPath, existing);
  return true;
}

async function swapIn(run: Run, stagingPath: string, targetPath: string, existing: Entry): Promise<void> {
  const { target, names } = run;
  await target.remove(names.old, { recursive: true });
  await moveAside(run, targetPath);
  try {
    await target.rename(stagingPath, targetPath);
  } catch (err) {
    await target.rename(names.old, targetPath);
    throw err;
  }
  await target.remove(names.old, { recursive: existing.type === "dir" });
}

/**
 * Renames the existing target to `.old`, then proves the source's path still names something: if
 * it does not, the source was inside the old target (or is it), so the target goes back and
 * SOURCE_INSIDE_TARGET is raised. Not cancellable: the target is never left aside by a cancel.
 */
export async function moveAside(run: Run, targetPath: string): Promise<void> {
  const { target, names } = run;
  await target.rename(targetPath, names.old);
  let there: boolean;
  try {
    there = (await run.source.stat(normalizeRel(run.spec.sourcePath))) !== null;
  } catch (err) {
    await target.rename(names.old, targetPath);
    throw err;
  }
  if (!there) {
    await target.rename(names.old, targetPath);
    throw new TransferError("SOURCE_INSIDE_TARGET", `the source ${showPath(run.source, run.spec.sourcePath)} lies inside the target ${showPath(run.target, run.spec.targetPath)} (it vanished when the target was moved aside): replacing the target would delete the source; nothing was replaced — choose another target`);
  }
}

/**
 * Run before every transfer: finishes or undoes what a crashed attempt with the same id left next
 * to the target. Archives in flight are only ever copies, so they are deleted; so is a staging
 * entry without a journal. A staging entry with its journal stays for steps/resume.ts (`resumable`
 * says so), unless `resumable` is false (a committed attempt being finished: nothing to resume). An
 * `.old` entry without a target is the previous target mid-swap, so it is put back.
 */
export async function recoverStaging(run: Run, targetPath: string, early?: StatPrefetch, { resumable = true }: { resumable?: boolean } = {}): Promise<{ found: boolean; resume: boolean }> {
  const { target, names } = run;
  const stat = (p: string): Promise<Entry | null> => (early ? early.stat(p) : target.stat(p));
  let found = false;
  const old = await stat(names.old);
  if (old !== null) {
    found = true;
    if ((await target.stat(targetPath)) === null) await target.rename(names.old, targetPath);
    else await target.remove(names.old, { recursive: true });
  }
  const [staging, journal, journalNew] = await Promise.all([stat(names.staging), stat(names.journal), stat(names.journalNew)]);
  const resume = resumable && staging !== null && journal !== null;
  const gone = resume ? [names.zips, names.journalNew] : [names.journal, names.journalNew, names.zips, names.staging];
  const seen = new Map<string, Entry | null>([[names.staging, staging], [names.journal, journal], [names.journalNew, journalNew]]);
  for (const p of gone) {
    if ((seen.has(p) ? seen.get(p) : await stat(p)) === null) continue;
    found = true;
    await target.remove(p, { recursive: true });
  }
  if (found && !resume) run.emit({ kind: "staging_recovered", message: "removed what an earlier attempt with this id left behind", data: { staging: names.staging } });
  return { found: found || resume, resume };
}

/**
 * Removes staging leftovers (and with `marker`, a move's marker) after a failure; never throws over
 * the original error. The journal goes first: a staging entry left behind without it is never
 * resumed from (a cancelled transfer's retry starts fresh).
 */
export async function discardStaging(run: Run, { marker = false }: { marker?: boolean } = {}): Promise<unknown[]> {
  const failures: unknown[] = [];
  const names = [run.names.journal, run.names.journalNew, run.names.staging, run.names.zips];
  for (const p of marker ? [...names, run.names.moved] : names) {
    try {
      await run.target.remove(p, { recursive: true });
    } catch (err) {
      failures.push(err);
    }
  }
  return failures;
}

/**
 * After a failure: the staging entry and its journal stay for the next attempt when it can get
 * past the fault (a retryable error, a full disk, the worker's shutdown or lost lease) and there is
 * something to resume; otherwise (a cancel, a refusal) they go, as archives in flight and an
 * uncommitted marker always do. A lost lease touches nothing: another worker may own the job now.
 * Never throws over the original error; what could not be removed is named in its details.
 */
export async function settleStaging(run: Run, journal: Journal, caught: unknown, committed: boolean): Promise<void> {
  const reason = run.signal?.aborted ? String(run.signal.reason) : null;
  if (reason === "lost") {
    await journal.stop();
    return;
  }
  const keep = !committed && journal.recorded && (reason !== null ? KEEP_ON_ABORT.has(reason) : isTransferError(caught) && (caught.retryable || caught.code === "NO_SPACE"));
  if (keep) await journal.flush();
  await journal.stop();
  const leftovers = keep ? await removeAll(run, [run.names.zips, run.names.moved]) : await discardStaging(run, { marker: !committed });
  if (isTransferError(caught)) {
    if (keep) caught.details.stagingKept = run.names.staging;
    // A full disk keeps what arrived, which is also what fills it: say so, and how to undo it.
    if (keep && caught.code === "NO_SPACE") caught.message += `; what arrived is kept (${run.names.staging}) for a retry to resume once space is freed — cancel the transfer to remove it`;
    if (leftovers.length > 0) caught.details.stagingNotRemoved = leftovers.map(String);
  }
}

/** Abort reasons (the worker's) after which the next attempt resumes: shutdown, and an error that escaped the job's code. */
const KEEP_ON_ABORT = new Set(["shutdown", "crashed"]);

/** Removes `paths` (recursively); the failures, never thrown. */
async function removeAll(run: Run, paths: readonly string[]): Promise<unknown[]> {
  const failures: unknown[] = [];
  for (const p of paths) await run.target.remove(p, { recursive: true }).catch((err: unknown) => failures.push(err));
  return failures;
}
