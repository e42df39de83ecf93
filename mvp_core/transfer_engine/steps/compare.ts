/**
 * Step 2a (sync): which files of the source are already at the target. One walk of the target
 * (sizes and modification times), and at the `checksum` level the hashes of same-size files,
 * computed next to the data on both sides in batches (a remote's one command per batch). What
 * differs travels; the rest is reported `skipped`. Links travel when their text differs.
 */
import type { Entry, HashAlgorithm } from "../endpoints/endpoint.ts";
import { LOCAL_HASHES } from "../hash.ts";
import { joinRel } from "../paths.ts";
import { runPool } from "../pool.ts";
import type { Run } from "../run.ts";
import type { SyncLevel } from "../spec.ts";
import type { Manifest } from "./scan.ts";

const HASH_BATCH = 1000;
const HASH_BATCHES_IN_FLIGHT = 4;
/**
 * Hashes for deciding that two files hold the same content — which may let a move delete a
 * source — strongest first: a 32-bit CRC is enough to catch transport damage, not to call two
 * files equal. sha1 (~2 GB/s here) is 160 bits.
 */
const COMPARE_PREFERENCE: readonly HashAlgorithm[] = ["sha1", "sha256", "blake2b512", "md5", "xxh128", "xxh64", "xxh3", "crc32"];

/** What travels, what is already there, and the target as it was (for mirror). */
export interface Comparison {
  /** The source manifest reduced to what travels (every folder kept: files need somewhere to go). */
  send: Manifest;
  skipped: Entry[];
  /** Every entry below the target before anything was written, by path relative to the target. */
  targetTree: Map<string, Entry>;
  /** Skipped files proven to hold the same content (checksum level): a move may remove their source. */
  provenEqual: Set<string>;
  /** The hash the comparison used, when it hashed. */
  hash: HashAlgorithm | null;
}

/** The target's listing, started early (read-only) beside the checks and the source's scan. */
export interface TargetListing {
  /** The entries below the target folder; null when it is not a folder (or not there). */
  tree: Promise<Map<string, Entry> | null>;
  /** Stops the walk (a check failed, or the listing was not needed). */
  stop(): void;
}

/**
 * Starts listing the target folder: a sync needs it, and over a WAN the walk is a few round trips
 * that can travel while the checks and the source's scan run.
 */
export function startTargetListing(run: Run, targetPath: string): TargetListing {
  const stop = new AbortController();
  const signal = run.signal ? AbortSignal.any([run.signal, stop.signal]) : stop.signal;
  const tree = (async () => {
    const out = new Map<string, Entry>();
    for await (const e of run.target.walk(targetPath, { signal })) out.set(e.path, e);
    return out;
  })().catch(() => null); // not there, not a folder, or stopped: compareWithTarget asks again
  return { tree, stop: () => stop.abort() };
}

/** Compares the source manifest with the existing target folder `targetPath` at `level` ("all": everything travels). */
export async function compareWithTarget(run: Run, m: Manifest, sourcePath: string, targetPath: string, level: SyncLevel | "all", listing?: TargetListing): Promise<Comparison> {
  let targetTree = new Map<string, Entry>();
  if (m.kind === "file") {
    const t = await run.target.stat(targetPath, { signal: run.signal });
    if (t !== null) targetTree.set("", { ...t, path: "" });
  } else {
    const early = await listing?.tree;
    if (early) targetTree = early;
    else for await (const e of run.target.walk(targetPath, { signal: run.signal })) targetTree.set(e.path, e);
  }
  const maybeSame: Entry[] = [];
  const send: Entry[] = [];
  for (const f of m.files) {
    const t = targetTree.get(f.path);
    if (t === undefined || t.type !== "file" || level === "all") send.push(f);
    else if (level === "exists") maybeSame.push(f);
    else if (t.size !== f.size) send.push(f);
    else if (level === "size" || (level === "mtime" && sameSecond(t.mtimeMs, f.mtimeMs))) maybeSame.push(f);
    else if (level === "checksum") maybeSame.push(f);
    else send.push(f);
  }
  const provenEqual = new Set<string>();
  let hash: HashAlgorithm | null = null;
  let skipped = maybeSame;
  if (level === "checksum" && maybeSame.length > 0) {
    const [srcCaps, dstCaps] = await Promise.all([run.source.capabilities({ signal: run.signal }), run.target.capabilities({ signal: run.signal })]);
    const alg = COMPARE_PREFERENCE.find((h) => srcCaps.hashes.includes(h) && dstCaps.hashes.includes(h)) ?? (COMPARE_PREFERENCE.find((h) => LOCAL_HASHES.includes(h)) as HashAlgorithm);
    hash = alg;
    skipped = [];
    const batches: Entry[][] = [];
    for (let i = 0; i < maybeSame.length; i += HASH_BATCH) batches.push(maybeSame.slice(i, i + HASH_BATCH));
    // A few batches in flight on both sides: each is one remote command, which waits on its disk.
    await runPool(batches, HASH_BATCHES_IN_FLIGHT, async (batch) => {
      const srcPaths = batch.map((f) => joinRel(sourcePath, f.path));
      const dstPaths = batch.map((f) => joinRel(targetPath, f.path));
      const [a, b] = await Promise.all([run.source.hashFiles(srcPaths, alg, { signal: run.signal }), run.target.hashFiles(dstPaths, alg, { signal: run.signal })]);
      for (const [j, f] of batch.entries()) {
        const x = a.get(srcPaths[j] as string);
        if (x !== undefined && x === b.get(dstPaths[j] as string)) {
          skipped.push(f);
          provenEqual.add(f.path);
        } else send.push(f);
      }
    });
  }
  const links = m.links.filter((l) => {
    const t = targetTree.get(l.path);
    return t === undefined || t.type !== "symlink" || t.linkTarget !== l.linkTarget;
  });
  const sendSet = new Set(send.map((f) => f.path));
  const files = m.files.filter((f) => sendSet.has(f.path)); // scan order, which the plan and zip rely on
  return {
    send: { ...m, files, links, dirs: foldersToStage(m, files, links, targetTree), bytes: files.reduce((n, f) => n + f.size, 0) },
    skipped,
    targetTree,
    provenEqual,
    hash,
  };
}

/**
 * The folders a merge needs in its staging tree: those the target lacks (made there at the merge)
 * and those holding something that travels. 10 changed files in a tree of 100 folders stage a few
 * folders, not all of them (each one a request to make, to list when verifying, and to remove).
 */
function foldersToStage(m: Manifest, files: readonly Entry[], links: readonly Entry[], targetTree: ReadonlyMap<string, Entry>): Entry[] {
  const needed = new Set<string>();
  for (const e of [...files, ...links]) {
    for (let p = parentOf(e.path); p !== "" && !needed.has(p); p = parentOf(p)) needed.add(p);
  }
  return m.dirs.filter((d) => needed.has(d.path) || targetTree.get(d.path)?.type !== "dir");
}

function parentOf(p: string): string {
  const i = p.lastIndexOf("/");
  return i < 0 ? "" : p.slice(0, i);
}

/** Modification times equal to the second: SFTP (and `find`) keep whole seconds. */
export function sameSecond(a: number, b: number): boolean {
  return Math.floor(a / 1000) === Math.floor(b / 1000);
}
