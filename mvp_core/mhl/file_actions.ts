/**
 * The action of each hash in a new generation (spec 6.5.1): original for a file its history has no
 * record of; verified when it equals the first usable hash recorded in that format; failed when
 * not. A format the history never recorded is verified only if another format of the same file
 * verified in this generation, and left out if one failed (as the reference implementation does).
 */
import { MhlError } from "./errors.ts";
import { MHL_HASH_FORMATS, type MhlHashFormat } from "./hash_format.ts";
import type { KnownFile } from "./known_files.ts";
import type { HashAction } from "./model.ts";

/** A hash that did not match the history. */
export interface FailedHash {
  path: string;
  format: MhlHashFormat;
  expected: string;
  actual: string;
}

/** The formats to compute for `file` so its new hashes can be labelled: one it was recorded in. */
export function formatsToVerify(file: KnownFile | undefined): MhlHashFormat[] {
  if (file === undefined || !file.hasOriginal) return [];
  return MHL_HASH_FORMATS.filter((f) => file.first[f] !== undefined);
}

/** Each given hash with its action; failures are added to `failed`. Throws BAD_INPUT when no given format can be checked. */
export function decideActions(path: string, hashes: Partial<Record<MhlHashFormat, string>>, known: KnownFile | undefined, failed: FailedHash[]): [MhlHashFormat, string, HashAction][] {
  const given = Object.entries(hashes) as [MhlHashFormat, string][];
  if (known === undefined || !known.hasOriginal) return given.map(([f, v]) => [f, v, "original"]);
  const out: [MhlHashFormat, string, HashAction][] = [];
  const unrecorded: [MhlHashFormat, string][] = [];
  let anyFailed = false;
  for (const [f, v] of given) {
    const rec = known.first[f];
    if (rec === undefined) unrecorded.push([f, v]);
    else if (rec.value === v) out.push([f, v, "verified"]);
    else {
      anyFailed = true;
      failed.push({ path, format: f, expected: rec.value, actual: v });
      out.push([f, v, "failed"]);
    }
  }
  if (unrecorded.length > 0 && !anyFailed) {
    if (out.length === 0) {
      throw new MhlError("BAD_INPUT", `${JSON.stringify(path)} is recorded in its history only as ${formatsToVerify(known).join(", ")}: compute one of those too, so the new hash can be verified`, { path });
    }
    for (const [f, v] of unrecorded) out.push([f, v, "verified"]);
  }
  return out;
}
