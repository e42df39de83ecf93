/**
 * The progress journal: `.ketter-<id>.journal` next to the staging entry, telling a later attempt
 * with the same id which files (and which byte ranges of big files) this one finished, so that
 * after a fault — the worker killed, the link dropped, sshd restarted, the disk full — only the
 * rest travels (steps/resume.ts).
 *
 * It is a hint, never a proof: a resumed attempt re-hashes every byte it keeps, at the source and
 * at the destination, and the whole-file verification runs as always. What it records per file:
 * the source's size, mtime and change stamp (a file changed since starts over), the extents the
 * destination confirmed with their CRC-32, and the ranges in flight (a resume also probes just
 * past what was confirmed: bytes written but not yet reported).
 *
 * Written through the target endpoint as a new file renamed over the old one (never half a
 * journal), at most once per `journalIntervalMs`, one write at a time; a file the destination
 * finished is recorded as one extent covering it.
 */
import * as z from "zod/mini";
import type { Entry } from "../endpoints/endpoint.ts";
import { fromSystemError } from "../errors.ts";
import { crc32Hex } from "../hash.ts";
import type { Run } from "../run.ts";
import { type Extent, coalesce } from "./extents.ts";
import { writeBytes } from "./write_bytes.ts";

const fileSchema = z.object({
  size: z.number(),
  mtimeMs: z.number(),
  change: z.optional(z.string()),
  /** [offset, length, CRC-32 as 8 hex digits] the destination confirmed. */
  extents: z.array(z.tuple([z.number(), z.number(), z.string().check(z.regex(/^[0-9a-f]{8}$/))])),
  /** [offset, length] of ranges started and not finished. */
  inflight: z.array(z.tuple([z.number(), z.number()])),
});

const journalSchema = z.object({
  version: z.literal(1),
  sourcePath: z.string(),
  /** Keyed by path relative to the source ("" for a single file). */
  files: z.record(z.string(), fileSchema),
});

/** A journal as read back. */
export type JournalData = z.output<typeof journalSchema>;
/** One file's record in a journal. */
export type JournalFile = z.output<typeof fileSchema>;

/** The largest journal read back (a folder of 10,000 finished files is ~1 MiB). */
const MAX_JOURNAL_BYTES = 64 << 20;

interface Tracked {
  entry: Entry;
  /** Keyed by offset: a range's progress replaces its earlier report. */
  extents: Map<number, Extent>;
  inflight: Map<number, number>;
}

/** The journal of one attempt; see the file comment. */
export class Journal {
  private files = new Map<string, Tracked>();
  private dirty = false;
  private timer: ReturnType<typeof setTimeout> | null = null;
  private writing: Promise<void> | null = null;
  private lastWriteAt = 0;
  private stopped = false;
  private warned = false;

  constructor(private readonly run: Run) {}

  /** True once anything was recorded (nothing to resume from otherwise). */
  get recorded(): boolean {
    return this.files.size > 0;
  }

  /** Extents a resume kept (source-verified), as this attempt's starting point. */
  keep(entry: Entry, extents: readonly Extent[]): void {
    const t = this.track(entry);
    for (const e of coalesce(extents)) t.extents.set(e.offset, e);
    this.touch();
  }

  /** A range started: a resume probes it even if nothing of it was confirmed yet. */
  started(entry: Entry, offset: number, length: number): void {
    this.track(entry).inflight.set(offset, length);
    this.touch();
  }

  /** The destination confirmed `bytes` of the range at `offset` (cumulative), with their CRC-32. */
  written(entry: Entry, offset: number, bytes: number, crc: number): void {
    if (bytes > 0) this.track(entry).extents.set(offset, { offset, length: bytes, crc });
    this.touch();
  }

  /** The range at `offset` arrived whole and checked. */
  finished(entry: Entry, offset: number): void {
    this.track(entry).inflight.delete(offset);
    this.touch();
  }

  /** A whole file arrived (and was closed with its attributes): one extent covers it. */
  fileDone(entry: Entry, crc: number): void {
    const t = this.track(entry);
    t.inflight.clear();
    t.extents.clear();
    if (entry.size > 0) t.extents.set(0, { offset: 0, length: entry.size, crc });
    this.touch();
  }

  /** A file that failed on its own (skipFileErrors): nothing of it is worth keeping. */
  forget(path: string): void {
    if (this.files.delete(path)) this.touch();
  }

  /** Writes what is not written yet and waits for it; failures are reported once as an event, never thrown. */
  async flush(): Promise<void> {
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = null;
    await this.writing;
    if (this.dirty && !this.stopped) await this.writeNow();
  }

  /** No more writes; resolves once a write under way has finished (so the journal can be removed after). */
  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = null;
    await this.writing;
  }

  private track(entry: Entry): Tracked {
    let t = this.files.get(entry.path);
    if (t === undefined) this.files.set(entry.path, (t = { entry, extents: new Map(), inflight: new Map() }));
    return t;
  }

  private touch(): void {
    this.dirty = true;
    if (this.stopped || this.timer !== null || this.writing !== null) return;
    const wait = Math.max(0, this.lastWriteAt + this.run.opts.journalIntervalMs - performance.now());
    this.timer = setTimeout(() => {
      this.timer = null;
      void this.writeNow();
    }, wait);
  }

  private writeNow(): Promise<void> {
    this.writing ??= (async () => {
      this.dirty = false;
      this.lastWriteAt = performance.now();
      try {
        await writeJournal(this.run, this.serialize());
      } catch (err) {
        this.dirty = true;
        if (!this.warned) {
          this.warned = true;
          this.run.emit({ kind: "fallback", message: `the progress journal could not be written (${fromSystemError(err, this.run.names.journal, "write").message}); a retry after a failure may resend more than it must`, data: { journal: this.run.names.journal } });
        }
      } finally {
        this.writing = null;
      }
      if (this.dirty) this.touch();
    })();
    return this.writing;
  }

  private serialize(): JournalData {
    const files: Record<string, JournalFile> = {};
    for (const [path, t] of this.files) {
      files[path] = {
        size: t.entry.size,
        mtimeMs: t.entry.mtimeMs,
        ...(t.entry.change !== undefined ? { change: t.entry.change } : {}),
        extents: coalesce([...t.extents.values()]).map((e) => [e.offset, e.length, crc32Hex(e.crc)]),
        inflight: [...t.inflight].map(([o, l]) => [o, l]),
      };
    }
    return { version: 1, sourcePath: this.run.spec.sourcePath, files };
  }
}

/** Writes `data` as the journal: a new file renamed over the old one. */
async function writeJournal(run: Run, data: JournalData): Promise<void> {
  await writeBytes(run.target, run.names.journalNew, new TextEncoder().encode(JSON.stringify(data)), { mode: 0o600 });
  await run.target.rename(run.names.journalNew, run.names.journal, { replace: true });
}

/** The journal an earlier attempt left, or null (none, unreadable, or of another source). */
export async function readJournal(run: Run): Promise<JournalData | null> {
  const st = await run.target.stat(run.names.journal, { signal: run.signal });
  if (st === null || st.type !== "file" || st.size > MAX_JOURNAL_BYTES) return null;
  const parts: Uint8Array[] = [];
  for await (const chunk of run.target.openRead(run.names.journal, { signal: run.signal })) parts.push(new Uint8Array(chunk));
  let parsed: unknown;
  try {
    parsed = JSON.parse(new TextDecoder().decode(Buffer.concat(parts)));
  } catch {
    return null; // a journal cut short (never expected: it is renamed into place) is no journal
  }
  const r = journalSchema.safeParse(parsed);
  return r.success && r.data.sourcePath === run.spec.sourcePath ? r.data : null;
}
