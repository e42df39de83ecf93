/**
 * The MHL library's file system (mvp_core/mhl MhlFs) over any Endpoint, so histories are read,
 * verified and hashed the same way on a local folder and on an SSH host, as a source or a target.
 *
 * The library names paths absolutely; here "/" is the folder `base` on the endpoint. Listings come
 * from one walk (or from entries the engine already scanned), never one round trip per folder.
 * Hashes are computed next to the data where the endpoint can (a remote's one command per batch:
 * the library's concurrent hashFile calls are gathered into hashFiles batches); a format it cannot
 * compute there (c4, or several at once) is read once through openRead and hashed here.
 */
import type { MhlDirEntry, MhlFs, MhlHashFormat } from "../../mhl/index.ts";
import type { Endpoint, Entry, HashAlgorithm } from "./endpoint.ts";
import { joinRel, parentRel, baseRel } from "../paths.ts";

/** Files per hashFiles call: a few hundred keep a remote's command line and answer small. */
const HASH_BATCH = 512;

/** The endpoint's relative path for the library's absolute one. */
function relOf(base: string, abs: string): string {
  const rel = abs.replace(/^\/+/, "").replace(/\/+$/, "");
  return joinRel(base, rel);
}

interface Pending {
  rel: string;
  resolve: (digest: string | undefined) => void;
  reject: (err: unknown) => void;
}

/** MhlFs over `endpoint`, rooted at its folder `base`; `entries` (paths relative to base) saves the walk. */
export class EndpointMhlFs implements MhlFs {
  private children: Map<string, MhlDirEntry[]> | null = null;
  private readonly queues = new Map<HashAlgorithm, Pending[]>();
  private hashesNextToData: Promise<readonly HashAlgorithm[]> | null = null;

  constructor(
    private readonly endpoint: Endpoint,
    private readonly base: string,
    private readonly opts: { signal?: AbortSignal; entries?: Iterable<Entry> } = {},
  ) {
    if (opts.entries !== undefined) this.children = childrenOf(opts.entries);
  }

  async list(dir: string): Promise<MhlDirEntry[]> {
    this.children ??= childrenOf(await this.walkAll());
    const rel = dir.replace(/^\/+/, "").replace(/\/+$/, "");
    return this.children.get(rel) ?? [];
  }

  async readFile(path: string): Promise<Uint8Array | null> {
    const rel = relOf(this.base, path);
    const st = await this.endpoint.stat(rel, { signal: this.opts.signal });
    if (st === null || st.type !== "file") return null;
    const parts: Uint8Array[] = [];
    for await (const chunk of this.endpoint.openRead(rel, { signal: this.opts.signal })) parts.push(chunk);
    return new Uint8Array(Buffer.concat(parts));
  }

  async hashFile(path: string, formats: readonly MhlHashFormat[]): Promise<Partial<Record<MhlHashFormat, string>>> {
    const rel = relOf(this.base, path);
    const only = formats.length === 1 && formats[0] !== "c4" ? (formats[0] as Exclude<MhlHashFormat, "c4">) : null;
    if (only !== null && (await this.nextToData()).includes(only)) {
      const digest = await this.queued(only, rel);
      if (digest !== undefined) return { [only]: digest };
    }
    return this.readAndHash(rel, formats);
  }

  /** Entries below base, walked once. */
  private async walkAll(): Promise<Entry[]> {
    const out: Entry[] = [];
    for await (const e of this.endpoint.walk(this.base, { signal: this.opts.signal })) out.push(e);
    return out;
  }

  private nextToData(): Promise<readonly HashAlgorithm[]> {
    this.hashesNextToData ??= this.endpoint.capabilities({ signal: this.opts.signal }).then((c) => c.hashes);
    return this.hashesNextToData;
  }

  /** One file's digest from the next hashFiles batch of `alg`. */
  private queued(alg: HashAlgorithm, rel: string): Promise<string | undefined> {
    return new Promise((resolve, reject) => {
      let q = this.queues.get(alg);
      if (q === undefined) {
        this.queues.set(alg, (q = []));
        // Every caller that asks in this turn of the event loop joins the batch.
        setImmediate(() => this.flush(alg));
      }
      q.push({ rel, resolve, reject });
      if (q.length >= HASH_BATCH) this.flush(alg);
    });
  }

  private flush(alg: HashAlgorithm): void {
    const batch = this.queues.get(alg);
    if (batch === undefined || batch.length === 0) return;
    this.queues.delete(alg);
    this.endpoint.hashFiles(batch.map((p) => p.rel), alg, { signal: this.opts.signal }).then(
      (got) => batch.forEach((p) => p.resolve(got.get(p.rel))),
      (err: unknown) => batch.forEach((p) => p.reject(err)),
    );
  }

  /** Every format from one read through the endpoint (implementation guidelines 2.3). */
  private async readAndHash(rel: string, formats: readonly MhlHashFormat[]): Promise<Partial<Record<MhlHashFormat, string>>> {
    const { createFormatHasher } = await import("../../mhl/index.ts");
    const hashers = await Promise.all(formats.map((f) => createFormatHasher(f)));
    for await (const chunk of this.endpoint.openRead(rel, { signal: this.opts.signal, reuseBuffer: true })) for (const h of hashers) h.update(chunk);
    return Object.fromEntries(formats.map((f, i) => [f, hashers[i]?.digest()]));
  }
}

/** Children of every folder, keyed by path relative to base ("" the base itself). */
function childrenOf(entries: Iterable<Entry>): Map<string, MhlDirEntry[]> {
  const out = new Map<string, MhlDirEntry[]>([["", []]]);
  for (const e of entries) {
    const dir = parentRel(e.path);
    let list = out.get(dir);
    if (list === undefined) out.set(dir, (list = []));
    list.push({ name: baseRel(e.path), type: e.type === "file" ? "file" : e.type === "dir" ? "dir" : "other", size: e.size, mtimeMs: e.mtimeMs });
  }
  return out;
}
