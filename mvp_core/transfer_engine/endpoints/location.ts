/**
 * Are two paths, each on its own endpoint, the same place, one inside the other, or apart? Decided
 * from what each endpoint says of where a path really is (Location), for any pair of endpoints:
 * two local roots that nest, two SSH portals on one host, a local and an SSH portal that reach the
 * same disk through localhost.
 *
 * Only proof counts as "apart": the same kernel with inode identities of both paths and their
 * ancestors (bind mounts, symlinks, chroots and two login names all resolve to the same inodes),
 * or two different kernels when neither path is on a network file system. Anything else that does
 * not prove a relation is "unknown", which the engine treats as "possibly the same" for every
 * destructive step (see steps/check.ts).
 */
import type { Location } from "./endpoint.ts";

/** How a target path relates to a source path. */
export type Relation = "same" | "target-inside" | "source-inside" | "apart" | "unknown";

/**
 * Relates the source `s` (an existing path) to the target `t` (which may not exist yet: its
 * `missing` part is below its nearest existing ancestor).
 */
export function relate(s: Location, t: Location): Relation {
  if (s.kernel !== null && s.kernel === t.kernel && s.chain !== null && t.chain !== null) return byInodes(s, s.chain, t, t.chain);
  if (s.scope === t.scope) {
    const byPath = byRealPath(s, t);
    // Same real path or one below the other is proof enough; different ones are not (a bind mount
    // can show one folder under two names), unless the inodes above say otherwise.
    if (byPath !== "apart") return byPath;
    return "unknown";
  }
  if (s.kernel !== null && t.kernel !== null && s.kernel !== t.kernel && s.shared === false && t.shared === false) return "apart";
  return "unknown";
}

function byInodes(s: Location, sChain: string[], t: Location, tChain: string[]): Relation {
  const sId = sChain[0];
  if (s.missing !== "" || sId === undefined) return "unknown"; // the source must exist to be related
  if (t.missing === "") {
    if (tChain[0] === sId) return "same";
    if (tChain.slice(1).includes(sId)) return "target-inside";
    if (sChain.slice(1).includes(tChain[0] as string)) return "source-inside";
    return "apart";
  }
  // The target does not exist yet: it will be created below its nearest existing ancestor.
  return tChain.includes(sId) ? "target-inside" : "apart";
}

function byRealPath(s: Location, t: Location): Relation {
  if (s.missing !== "") return "unknown";
  const sp = s.realPath;
  const tp = t.missing === "" ? t.realPath : joinAbs(t.realPath, t.missing);
  if (sp === tp) return "same";
  if (isBelow(tp, sp)) return "target-inside";
  if (isBelow(sp, tp)) return "source-inside";
  return "apart";
}

function joinAbs(base: string, rel: string): string {
  return base === "/" ? `/${rel}` : `${base}/${rel}`;
}

/** True when the absolute path `p` lies strictly below the absolute folder `dir`. */
function isBelow(p: string, dir: string): boolean {
  return p.startsWith(dir === "/" ? "/" : `${dir}/`) && p !== dir;
}
