/**
 * Locating hash records (spec 5.3.3): every file a history (and the histories nested in it) has a
 * record of, with the hashes usable for verification — never one labelled failed (implementation
 * guidelines 2.7.1) — following renames recorded with previousPath.
 */
import type { MhlHashFormat } from "./hash_format.ts";
import { type MhlHistory, closestHistory } from "./history.ts";
import type { HashAction } from "./model.ts";
import { joinPath } from "./relative_path.ts";

/** A recorded hash with the generation it was recorded in. */
export interface KnownHash {
  format: MhlHashFormat;
  value: string;
  action: HashAction;
  sequence: number;
}

/** What a history knows of one file. */
export interface KnownFile {
  /** Path relative to the top scope. */
  path: string;
  /** The scope of the history holding the records ("" for the top). */
  historyPath: string;
  /** Whether some generation recorded an original hash (the file belongs to the history). */
  hasOriginal: boolean;
  /** The first usable hash per format: what verification compares against. */
  first: Partial<Record<MhlHashFormat, KnownHash>>;
  /** The most recent usable hash, any format. */
  latest: KnownHash | null;
  /** Every hash in generation order, failed ones included (for reports). */
  all: KnownHash[];
}

function indexOne(h: MhlHistory): Map<string, KnownHash[]> {
  const byPath = new Map<string, KnownHash[]>();
  for (const g of h.generations) {
    for (const r of g.manifest.hashes) {
      if (r.kind !== "file") continue;
      let list = byPath.get(r.path);
      if (r.previousPath !== undefined && r.previousPath !== r.path) {
        list = [...(byPath.get(r.previousPath) ?? []), ...(list ?? [])];
        byPath.delete(r.previousPath);
      }
      list ??= [];
      for (const v of r.hashes) list.push({ format: v.format, value: v.value, action: v.action ?? "original", sequence: g.sequence });
      byPath.set(r.path, list);
    }
  }
  return byPath;
}

function summarise(path: string, historyPath: string, all: KnownHash[]): KnownFile {
  const usable = all.filter((x) => x.action !== "failed");
  const first: Partial<Record<MhlHashFormat, KnownHash>> = {};
  for (const x of usable) first[x.format] ??= x;
  return { path, historyPath, hasOriginal: all.some((x) => x.action === "original"), first, latest: usable.at(-1) ?? null, all };
}

/** Every file known to `top` and its nested histories, keyed by path relative to the top scope. */
export function knownFiles(top: MhlHistory): Map<string, KnownFile> {
  const out = new Map<string, KnownFile>();
  const visit = (h: MhlHistory) => {
    for (const [p, all] of indexOne(h)) {
      const path = joinPath(h.path, p);
      // A record in an outer history for a path a nested history now owns is not the closest one.
      if (closestHistory(top, path).history === h) out.set(path, summarise(path, h.path, all));
    }
    for (const c of h.children) visit(c);
  };
  visit(top);
  return out;
}

/**
 * The format verification uses when a file has several: cheapest first on every backend (xxh128
 * is as cheap as xxh3 with the system library but far slower without it; docs/mhl.md).
 */
export const VERIFY_PREFERENCE: readonly MhlHashFormat[] = ["xxh3", "xxh64", "xxh128", "sha1", "md5", "c4"];

/** The recorded hash to verify `file` against: the first usable one in the preferred format available. */
export function expectedHash(file: KnownFile, preference: readonly MhlHashFormat[] = VERIFY_PREFERENCE): KnownHash | null {
  for (const f of preference) {
    const h = file.first[f];
    if (h !== undefined) return h;
  }
  return null;
}
