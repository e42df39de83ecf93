/** Per-transfer state shared by the steps: endpoints, options, cancellation, progress and events. */
import type { Endpoint, Location } from "./endpoints/endpoint.ts";
import type { Relation } from "./endpoints/location.ts";
import type { FileLedger } from "./file_ledger.ts";
import type { Custody } from "./steps/mhl_source.ts";
import type { EngineOptions } from "./options.ts";
import type { EngineEvent, Phase, Progress, TransferSpec } from "./spec.ts";
import type { TransferHooks } from "./transfer.ts";

/** Names of everything a transfer creates next to the target; all derived from spec.id. */
export interface StagingNames {
  /** The copy being built; renamed onto the target by commit. */
  staging: string;
  /** The replaced target, kept until the new one is in place (overwrite only). */
  old: string;
  /** Folder holding zip archives in flight. */
  zips: string;
  /** Marker written just before the commit: with the staging gone and the target there, the copy is committed (see cleanup.ts). */
  moved: string;
  /** The progress journal a later attempt resumes from (steps/journal.ts), and its next version before the rename. */
  journal: string;
  journalNew: string;
}

/** What every step receives. */
export interface Run {
  spec: TransferSpec;
  source: Endpoint;
  target: Endpoint;
  opts: EngineOptions;
  names: StagingNames;
  signal: AbortSignal | undefined;
  progress: ProgressTracker;
  emit: (e: EngineEvent) => void;
  hooks: TransferHooks;
  /** The read-rate limit (rate_limit.ts): awaited before reading that many bytes; absent without one. */
  throttle: ((bytes: number) => Promise<void>) | undefined;
  /** How the target relates to the source, and where each really is, once steps/check.ts decided it. */
  relation: Relation;
  locations: { source: Location; target: Location } | null;
  /** Every file's outcome (file_ledger.ts). */
  ledger: FileLedger;
  /** A retry of the files that failed: only these (paths relative to the source) travel; null: all. */
  only: ReadonlySet<string> | null;
  /** With an ASC MHL (spec.mhl, a folder): the histories and what the source was checked against (steps/mhl_source.ts). */
  custody: Custody | null;
}

/** Counts files and bytes per phase and calls onProgress at most every `intervalMs` (plus phase edges). */
export class ProgressTracker {
  private p: Progress = { phase: "scan", filesDone: 0, filesTotal: 0, bytesDone: 0, bytesTotal: 0 };
  private last = 0;
  /** Bytes the transfer phase moved (what travelled this attempt, resumed bytes not counted). */
  sentBytes = 0;
  /** Bytes an earlier attempt left that this one kept. */
  resumedBytes = 0;

  constructor(
    private readonly onProgress: ((p: Progress) => void) | undefined,
    private readonly intervalMs: number,
  ) {}

  /** Starts a phase with its totals and reports it at once. */
  phase(phase: Phase, filesTotal: number, bytesTotal: number): void {
    this.p = { phase, filesDone: 0, filesTotal, bytesDone: 0, bytesTotal, ...(this.resumedBytes > 0 ? { bytesResumed: this.resumedBytes } : {}) };
    this.report(true);
  }

  /** Adds finished files and/or bytes to the current phase. */
  add(files: number, bytes: number): void {
    this.p.filesDone += files;
    this.p.bytesDone += bytes;
    if (this.p.phase === "transfer") this.sentBytes += bytes;
    this.report(false);
  }

  /** Counts files and bytes kept from an earlier attempt as done in the transfer phase (not as sent). */
  resumed(files: number, bytes: number): void {
    this.resumedBytes = bytes;
    this.p.filesDone += files;
    this.p.bytesDone += bytes;
    this.p.bytesResumed = bytes;
    this.report(true);
  }

  /** Updates totals discovered while the phase runs (scan). */
  setTotals(filesTotal: number, bytesTotal: number): void {
    this.p.filesTotal = filesTotal;
    this.p.bytesTotal = bytesTotal;
    this.report(false);
  }

  /** Reports the current state regardless of the interval. */
  flush(): void {
    this.report(true);
  }

  private report(force: boolean): void {
    if (this.onProgress === undefined) return;
    const now = performance.now();
    if (!force && now - this.last < this.intervalMs) return;
    this.last = now;
    this.onProgress({ ...this.p });
  }
}
