/** Relative-path hygiene shared by endpoints and the engine. */
import path from "node:path";
import { TransferError } from "./errors.ts";

/**
 * Normalises an endpoint-relative POSIX path ("" = the root). Refuses absolute paths and any `..`
 * segment outright (PATH_ESCAPE): "a/../b" is harmless lexically, but through a symlinked `a` the
 * kernel would resolve it elsewhere, so rejecting is simpler than reasoning about it.
 */
export function normalizeRel(rel: string): string {
  if (rel.includes("\0")) throw new TransferError("INVALID_SPEC", `path ${JSON.stringify(rel)} contains a NUL byte`);
  if (rel.startsWith("/")) {
    throw new TransferError("PATH_ESCAPE", `path ${JSON.stringify(rel)} is absolute; give a path relative to the endpoint root`, { details: { path: rel } });
  }
  if (rel.split("/").includes("..")) {
    throw new TransferError("PATH_ESCAPE", `path ${JSON.stringify(rel)} contains "..", which could leave the endpoint root`, { details: { path: rel } });
  }
  let n = path.posix.normalize(rel === "" ? "." : rel);
  while (n.length > 1 && n.endsWith("/")) n = n.slice(0, -1);
  return n === "." ? "" : n;
}

/** Joins relative POSIX paths, treating "" as the root. */
export function joinRel(a: string, b: string): string {
  if (a === "") return b;
  if (b === "") return a;
  return `${a}/${b}`;
}

/** The parent of a relative path ("" for a top-level name). */
export function parentRel(rel: string): string {
  const i = rel.lastIndexOf("/");
  return i < 0 ? "" : rel.slice(0, i);
}

/** The last segment of a relative path. */
export function baseRel(rel: string): string {
  return rel.slice(rel.lastIndexOf("/") + 1);
}

/** How a path is shown in messages: the endpoint's label joined with the relative path. */
export function showPath(endpoint: { label: string }, rel: string): string {
  const label = endpoint.label.endsWith("/") ? endpoint.label.slice(0, -1) : endpoint.label;
  return JSON.stringify(rel === "" ? endpoint.label : `${label}/${rel}`);
}
