/**
 * The root guard for SFTP requests: proves that the folders a path passes through resolve inside
 * the portal's root before a request names the path.
 *
 * SFTP names every file by its full path, which sftp-server resolves following links; there is no
 * request relative to a folder handle. So this is check-then-use: a folder is `realpath`ed once,
 * must resolve inside the root, and is then remembered for the connection; a link swapped in after
 * the check is not seen (docs/ssh.md, "Root confinement"). The remote programs (remote_shell.ts)
 * do not depend on it: they open every component relative to the one before, refusing links.
 */
import { TransferError } from "../../errors.ts";
import { normalizeRel, parentRel } from "../../paths.ts";
import { FX_NO_SUCH_FILE, sftpStatus } from "./sftp_calls.ts";

/** Which folders below one root are proven inside it, and the path arithmetic around the root. */
export class RootGuard {
  /** Absolute folders already proven (by realpath) to lie inside the root. */
  private safeDirs = new Set<string>();

  constructor(
    /** Canonical absolute root on the remote (after realpath). */
    readonly root: string,
    /** realpath over SFTP (rejects with the SFTP status when the path does not exist). */
    private readonly realpath: (abs: string) => Promise<string>,
  ) {
    this.safeDirs.add(root);
  }

  /** The absolute remote path of `rel`. */
  abs(rel: string): string {
    return rel === "" ? this.root : this.root === "/" ? `/${rel}` : `${this.root}/${rel}`;
  }

  /** `abs` relative to the root (it must lie inside). */
  rel(abs: string): string {
    return abs === this.root ? "" : abs.slice(this.root === "/" ? 1 : this.root.length + 1);
  }

  /** True when the absolute path `absPath` is the root or below it. */
  inside(absPath: string): boolean {
    return absPath === this.root || absPath.startsWith(this.root === "/" ? "/" : `${this.root}/`);
  }

  /** PATH_ESCAPE for `rel`, which resolves to `resolved` (outside the root). */
  escape(rel: string, resolved: string, what = "resolves through a symbolic link to"): TransferError {
    return new TransferError("PATH_ESCAPE", `${JSON.stringify(rel)} ${what} ${JSON.stringify(resolved)}, outside the portal's root`, { details: { path: rel } });
  }

  /** Proves `absDir` (or its nearest existing ancestor) resolves inside the root; links pointing out are refused. */
  async ensureSafeDir(absDir: string, rel: string): Promise<void> {
    if (this.safeDirs.has(absDir)) return;
    let resolved: string;
    try {
      resolved = await this.realpath(absDir);
    } catch (err) {
      if (sftpStatus(err) !== FX_NO_SUCH_FILE) throw err;
      // Missing: nothing to follow here, but an ancestor may still be a link pointing out.
      const up = absDir.slice(0, absDir.lastIndexOf("/")) || "/";
      if (!this.inside(up)) throw new TransferError("PATH_ESCAPE", `${JSON.stringify(rel)} leaves the portal's root`, { details: { path: rel } });
      return this.ensureSafeDir(up, rel);
    }
    if (!this.inside(resolved)) throw this.escape(rel, resolved);
    this.safeDirs.add(absDir);
  }

  /** ensureSafeDir for many folders at once: one round trip for all of them, not one each. */
  async ensureSafeDirs(rels: Iterable<string>): Promise<void> {
    await Promise.all([...new Set(rels)].map((r) => this.ensureSafeDir(this.abs(r), r)));
  }

  /** Normalises `path` and proves its parent folder is inside the root. */
  async prepare(path: string): Promise<{ rel: string; abs: string }> {
    const rel = normalizeRel(path);
    if (rel !== "") await this.ensureSafeDir(this.abs(parentRel(rel)), rel);
    return { rel, abs: this.abs(rel) };
  }

  /** Remembers a folder this endpoint just created: a real folder, not a link. */
  remember(absDir: string): void {
    this.safeDirs.add(absDir);
  }

  /** Forgets proven folders at or below `abs` (they moved or vanished). */
  forget(abs: string): void {
    for (const d of this.safeDirs) if (d === abs || d.startsWith(`${abs}/`)) this.safeDirs.delete(d);
    this.safeDirs.add(this.root);
  }
}
