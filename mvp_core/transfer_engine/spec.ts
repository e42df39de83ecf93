/**
 * The transfer spec (zod-validated plain data) and the shapes the engine reports back. zod/mini
 * (same core, functional checks) instead of "zod": the engine CLI starts ~10 ms sooner because the
 * classic API's method-chaining layer is never loaded; English messages are loaded explicitly
 * because mini ships without a locale.
 */
import * as z from "zod/mini";
import en from "zod/v4/locales/en.js";
import { HASH_ALGORITHMS, type HashAlgorithm } from "./endpoints/endpoint.ts";
import { TransferError } from "./errors.ts";
import type { MhlRecord } from "./steps/mhl_write.ts";

z.config(en());

/** What a transfer does with its source. */
export const TRANSFER_MODES = ["copy", "move"] as const;
/** How the data may travel (`auto` lets the plan choose). */
export const STRATEGIES = ["auto", "direct", "zip"] as const;
/** How the copy is proven. */
export const VERIFY_MODES = ["size", "checksum"] as const;
/**
 * Sync levels (Globus's meanings): which files of an existing target count as already there —
 * `exists` any file of that name, `size` the same size, `mtime` the same size and modification
 * time (to the second), `checksum` the same content hash.
 */
export const SYNC_LEVELS = ["exists", "size", "mtime", "checksum"] as const;
export type SyncLevel = (typeof SYNC_LEVELS)[number];

/** `schema` with a description for generated documentation (OpenAPI, --help). */
function described<T extends z.ZodMiniType>(schema: T, description: string): T {
  z.globalRegistry.add(schema, { description });
  return schema;
}

/**
 * The options a caller chooses for a transfer, with their defaults: the one definition that the
 * job API (app/jobs/schemas.ts), the stored job (jobs/types.ts), the worker and the CLI derive
 * theirs from, so a new option or value cannot drift between them.
 */
export const transferOptionsShape = {
  strategy: described(z._default(z.enum(STRATEGIES), "auto"), "auto picks zip for folders with many small files, direct otherwise (and a rename for a move within one file system)"),
  verify: described(z._default(z.enum(VERIFY_MODES), "checksum"), "checksum compares content hashes of every file; size compares sizes only"),
  overwrite: described(z._default(z.boolean(), false), "replace an existing target as a whole, after the copy is verified"),
  createParents: described(z._default(z.boolean(), false), "create the target's missing parent folders (never the endpoint's root) once the checks passed; off by default, so a mistyped path fails instead of creating folders"),
  sync: described(z._default(z.enum([...SYNC_LEVELS, "off"]), "off"), "update an existing target in place: only files that differ at this level travel (exists, size, mtime = size and modification time, checksum = content), each renamed into place once verified; off: an existing target is refused, or replaced whole with overwrite"),
  mirror: described(z._default(z.boolean(), false), "with sync: remove target entries that are not in the source, once everything else is verified and committed (never when a file failed)"),
  hash: described(z._default(z.enum(["auto", ...HASH_ALGORITHMS]), "auto"), "the content hash that verifies the copy (and, with mhl, that the manifest records): auto picks xxh3 where both ends compute it next to the data (else crc32; with mhl an MHL format: xxh3, xxh128, xxh64, sha1, md5), or the format a source's ASC MHL history already records; an algorithm the target cannot compute is read back and hashed by Ketter"),
  mhl: described(z.optional(z.boolean()), "write an ASC MHL generation (ascmhl/ folder, process transfer) for the transferred folder at the target, appended to the history the source carries after its files are verified against it; absent: the target portal's default (`mhl`); needs verify checksum"),
  skipFileErrors: described(z._default(z.boolean(), false), "a file that cannot be read, vanished or changed while copied is recorded as failed and the rest completes (DONE_WITH_ERRORS); a move keeps that file's source, and a retry sends only the failed files"),
};

/** The transfer options alone (strict). */
export const transferOptionsSchema = z.strictObject(transferOptionsShape);
/** Transfer options with their defaults filled in. */
export type TransferOptions = z.output<typeof transferOptionsSchema>;

/** Zod schema of a transfer request; paths are relative to each endpoint's root. */
export const transferSpecSchema = z.strictObject({
  /** Names the staging entries (`.ketter-<id>.partial`), so a retried job finds its crashed attempt. */
  id: z.optional(z.string().check(z.regex(/^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$/, "id must be 1-100 letters, digits, '.', '_' or '-' (e.g. a job id)"))),
  sourcePath: z.string(),
  targetPath: z.string().check(z.minLength(1, "targetPath must name the file or folder to create (it cannot be the endpoint root)")),
  mode: z.enum(TRANSFER_MODES),
  ...transferOptionsShape,
});

/** What callers pass to transfer(). */
export type TransferSpecInput = z.input<typeof transferSpecSchema>;
/** A validated spec with defaults filled in. */
export type TransferSpec = Omit<z.output<typeof transferSpecSchema>, "id"> & { id: string };

/** Validates `input` (INVALID_SPEC listing every problem) and fills in defaults and a random id. */
export function parseSpec(input: unknown): TransferSpec {
  const parsed = transferSpecSchema.safeParse(input);
  if (!parsed.success) {
    const problems = parsed.error.issues.map((i) => `${i.path.join(".") || "spec"}: ${i.message}`);
    throw new TransferError("INVALID_SPEC", `invalid transfer spec: ${problems.join("; ")}`, { details: { problems } });
  }
  return { ...parsed.data, id: parsed.data.id ?? crypto.randomUUID() };
}

/** The named steps, in order. */
export type Phase = "scan" | "plan" | "transfer" | "verify" | "commit" | "cleanup";

/** Progress as reported to onProgress (throttled; always once at each phase change). */
export interface Progress {
  phase: Phase;
  filesDone: number;
  filesTotal: number;
  bytesDone: number;
  bytesTotal: number;
  /** Bytes an earlier attempt left at the destination that this one kept (counted in bytesDone of the transfer phase). */
  bytesResumed?: number;
}

/** Notable decisions and milestones, for the job event log. */
export interface EngineEvent {
  kind:
    | "staging_recovered"
    | "strategy_chosen"
    | "fallback"
    | "archive_done"
    | "verified"
    | "committed"
    | "source_removed"
    | "source_kept"
    /** sync: how many files travel and how many are already at the target. */
    | "compared"
    /** mirror: target entries the source does not have were removed. */
    | "mirrored"
    /** skipFileErrors: files recorded as failed while the rest completed. */
    | "files_failed"
    /** What an earlier attempt left was re-checked and kept: files, bytes. */
    | "resumed";
  message: string;
  data?: Record<string, unknown>;
}

/**
 * How the data actually moved; "resumed": an earlier attempt already committed the copy, this one
 * only finished what follows the commit (a move's source removal). The one list of these values:
 * the jobs table's strategy constraint is checked against it.
 */
export const STRATEGIES_USED = ["direct", "zip", "rename", "resumed"] as const;
export type StrategyUsed = (typeof STRATEGIES_USED)[number];

/** One file's outcome, as reported to TransferContext.onFiles (paths relative to the source). */
export interface FileOutcome {
  path: string;
  size: number;
  /** skipped: already at the target (sync); verified: sent and proven; failed: see error (skipFileErrors). */
  state: "skipped" | "verified" | "failed";
  hash?: { algorithm: HashAlgorithm; value: string };
  error?: { code: string; message: string };
}

/** Counts of files by outcome. */
export interface FileCounts {
  skipped: number;
  verified: number;
  failed: number;
}

/** What a successful transfer reports. */
export interface TransferResult {
  id: string;
  strategy: StrategyUsed;
  files: number;
  bytes: number;
  dirs: number;
  links: number;
  durationsMs: Record<Phase, number>;
  verified: { mode: "size" | "checksum"; algorithm?: HashAlgorithm; files: number };
  /** Zip strategy: archives sent, and files sent directly alongside them (≥ the entry size limit). */
  archives?: number;
  directFiles?: number;
  /** Move only: source entries left in place because they changed after being copied, failed, or were not proven equal. */
  sourceKept?: string[];
  /** Files by outcome; `failed` > 0 only with skipFileErrors (the job is then DONE_WITH_ERRORS). */
  fileCounts: FileCounts;
  /** The first failures (skipFileErrors), for the summary. */
  failures?: { path: string; code: string; message: string }[];
  /** With mirror: target entries removed because the source has no such entry. */
  mirrored?: number;
  /** With mhl: the ASC MHL generation written at the target. */
  mhl?: MhlRecord;
  /** Bytes that travelled in this attempt (file contents; a resumed transfer sends less than `bytes`). */
  sentBytes: number;
  /** Bytes kept from an earlier attempt with the same id (re-checked at both ends, not sent again). */
  resumedBytes: number;
}
