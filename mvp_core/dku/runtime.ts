/** Runtime checks: the Bun version against the one package.json pins, and free disk space. */
import { existsSync, statfsSync } from "node:fs";
import { readFile } from "node:fs/promises";
import { dirname, resolve } from "node:path";
import type { CheckOutcome } from "./check.ts";

const PACKAGE_JSON = new URL("../../package.json", import.meta.url);
const GiB = 1024 ** 3;
/** Below this a footage transfer is likely to run out of room. */
export const DISK_WARN_BYTES = 10 * GiB;
/** Below this even reports and small jobs are at risk. */
export const DISK_FAIL_BYTES = 1 * GiB;

/** The Bun version pinned by package.json (`engines.bun`, else `packageManager: bun@x`). */
export async function pinnedBunVersion(): Promise<string> {
  const pkg = JSON.parse(await readFile(PACKAGE_JSON, "utf8")) as { engines?: { bun?: string }; packageManager?: string };
  const pinned = pkg.engines?.bun ?? pkg.packageManager?.match(/^bun@(.+)$/)?.[1];
  if (!pinned) throw new Error("package.json pins no Bun version (engines.bun / packageManager)");
  return pinned.replace(/^[=v]+/, "");
}

/** Same version: ok; other patch release: warn; other major or minor: fail. */
export function compareBunVersion(running: string, pinned: string): CheckOutcome {
  const value = `bun ${running} (pinned ${pinned})`;
  const details = { running, pinned };
  if (running === pinned) return { status: "ok", value, details };
  const minor = (v: string) => v.split(".").slice(0, 2).join(".");
  const hint = `install the pinned runtime: curl -fsSL https://bun.sh/install | bash -s "bun-v${pinned}"`;
  if (minor(running) === minor(pinned)) return { status: "warn", value, hint, details };
  return { status: "fail", value, hint, details };
}

/** Checks the running Bun against the pinned version. */
export async function checkBunVersion(): Promise<CheckOutcome> {
  return compareBunVersion(Bun.version, await pinnedBunVersion());
}

/** A folder whose file system should have room, with what it is for. */
export interface DiskPlace {
  label: string;
  path: string;
  /** The folder must already exist (a portal root); the report folder is created on demand. */
  mustExist?: boolean;
}

/** Free bytes for an unprivileged user on the file system holding `path` (or its nearest existing parent). */
export function freeBytes(path: string): number {
  let p = resolve(path);
  while (!existsSync(p) && dirname(p) !== p) p = dirname(p);
  const st = statfsSync(p);
  return st.bavail * st.bsize;
}

/** Formats a byte count as "12.3 GiB". */
export function formatBytes(n: number): string {
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let v = n;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return `${i === 0 ? v : v.toFixed(1)} ${units[i]}`;
}

/** Measures free space at every place and judges it. */
export function checkDiskSpace(places: readonly DiskPlace[], note?: string): CheckOutcome {
  const missing = places.filter((p) => p.mustExist && !existsSync(p.path));
  const present = places.filter((p) => !missing.includes(p));
  return judgeDiskSpace(present.map((p) => ({ ...p, freeBytes: freeBytes(p.path) })), note, missing);
}

/** The tightest place decides: fail below DISK_FAIL_BYTES, warn below DISK_WARN_BYTES; a missing portal root warns. */
export function judgeDiskSpace(places: ReadonlyArray<DiskPlace & { freeBytes: number }>, note?: string, missing: readonly DiskPlace[] = []): CheckOutcome {
  const measured = [...places].sort((a, b) => a.freeBytes - b.freeBytes);
  const tightest = measured[0];
  if (!tightest) return { status: "warn", value: "nothing to measure", hint: "set KETTER_DKU_REPORT_DIR" };
  if (missing.length > 0) {
    const list = missing.map((p) => `${p.label} (${p.path})`).join(", ");
    return {
      status: "warn",
      value: `${formatBytes(tightest.freeBytes)} free at ${tightest.label}; missing on this machine: ${list}`,
      hint: "create those folders, or fix the portals' rootPath (PATCH /portals/{id}); jobs on them fail until then (ignore if the worker runs on another machine)",
      details: { places: measured, missing },
    };
  }
  const value = `${formatBytes(tightest.freeBytes)} free at ${tightest.label} (${tightest.path})${measured.length > 1 ? `, ${measured.length} places` : ""}${note ? `; ${note}` : ""}`;
  const details = { places: measured, warnBelowBytes: DISK_WARN_BYTES, failBelowBytes: DISK_FAIL_BYTES };
  const hint = `free space on the file system of ${tightest.path} (df -h ${tightest.path}), or move that portal's root`;
  if (tightest.freeBytes < DISK_FAIL_BYTES) return { status: "fail", value, hint, details };
  if (tightest.freeBytes < DISK_WARN_BYTES) return { status: "warn", value, hint, details };
  return { status: "ok", value, details };
}
