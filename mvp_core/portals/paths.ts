/**
 * Job paths are relative to a portal's root. A person may paste an absolute path that lies inside
 * the root (it is made relative); anything that could leave the root is refused before a job exists.
 */
import path from "node:path";

/** A path a person gave that cannot name something inside the portal; `message` says what to fix. */
export class PortalPathError extends Error {
  override readonly name = "PortalPathError";
  constructor(message: string, readonly path: string) {
    super(message);
  }
}

const MAX_PATH_LENGTH = 4096;

/** Returns `input` as a normalised path relative to `root`, or throws PortalPathError. The root itself ("") is refused. */
export function resolvePortalPath(root: string, input: string): string {
  const shown = JSON.stringify(input);
  if (input.includes("\0")) throw new PortalPathError(`path ${shown} contains a NUL byte; remove it`, input);
  if (/[\x01-\x1f\x7f]/.test(input)) throw new PortalPathError(`path ${shown} contains a control character (newline, tab…); remove it`, input);
  if (input.length > MAX_PATH_LENGTH) throw new PortalPathError(`path is ${input.length} characters long; the limit is ${MAX_PATH_LENGTH}`, input);
  let rel = input;
  if (input.startsWith("/")) {
    const rootNorm = path.posix.normalize(root).replace(/\/+$/, "");
    const abs = path.posix.normalize(input);
    if (input.split("/").includes("..") || !abs.startsWith(`${rootNorm}/`)) {
      throw new PortalPathError(`absolute path ${shown} is outside the portal root ${JSON.stringify(root)}; give a path relative to the root`, input);
    }
    rel = abs.slice(rootNorm.length + 1);
  }
  // A ".." segment is refused outright, even when it would stay inside lexically: through a
  // symlinked folder the kernel would resolve it somewhere else.
  if (rel.split("/").includes("..")) {
    throw new PortalPathError(`path ${shown} contains "..", which could leave the portal root; give a path below the root`, input);
  }
  const norm = path.posix.normalize(rel === "" ? "." : rel).replace(/\/+$/, "");
  if (norm === "." || norm === "") {
    throw new PortalPathError(`path ${shown} names the portal root itself; give a file or folder inside it, e.g. "shoot_01"`, input);
  }
  return norm.replace(/^\.\//, "");
}

/** True when relative path `inner` is `outer` or lies below it. */
export function isSameOrInside(outer: string, inner: string): boolean {
  return inner === outer || inner.startsWith(`${outer}/`);
}
