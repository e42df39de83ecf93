/**
 * Folders and attributes: mkdir and setAttributes, and their batch forms for whole trees (Endpoint
 * mkdirMany, setAttributesMany), which keep many SFTP requests in flight on one channel — or, for
 * many attributes on a host with perl, hand them all to one rooted program.
 */
import type { SFTPWrapper, Stats } from "ssh2";
import type { OpOptions } from "../endpoint.ts";
import { TransferError } from "../../errors.ts";
import { normalizeRel, parentRel } from "../../paths.ts";
import { runPool } from "../../pool.ts";
import type { RemoteHost } from "./remote_host.ts";
import { commandError, perlSetAttrs, rooted } from "./remote_shell.ts";
import { FX_FAILURE, FX_NO_SUCH_FILE, FX_OP_UNSUPPORTED, S_IFDIR, S_IFLNK, S_IFMT, hasExtension, sftpStatus } from "./sftp_calls.ts";

/**
 * Up to this many entries setAttributesMany uses SFTP requests (all in flight, about one round
 * trip); above it one perl process (an exec costs ~3 round trips but no per-entry CPU here).
 */
const SET_ATTRS_VIA_SFTP_MAX = 500;
/** Requests kept in flight by the batch operations (mkdirMany, setAttributesMany). */
const BATCH_IN_FLIGHT = 128;

type Done = (e: Error | null | undefined) => void;

/** Creates the folder `path` (with `recursive`, its missing parents too; an existing folder is then fine). */
export function mkdir(host: RemoteHost, path: string, opts: OpOptions & { mode?: number; recursive?: boolean } = {}): Promise<void> {
  return host.op(path, "create folder", opts.signal, async () => {
    const rel = normalizeRel(path);
    if (rel === "") {
      if (!opts.recursive) throw new TransferError("TARGET_EXISTS", "the portal's root already exists");
      return;
    }
    await host.guard.ensureSafeDir(host.guard.abs(parentRel(rel)), rel);
    await mkdirAt(host, await host.conn.sftp(), rel, opts.mode, opts.recursive ?? false);
  });
}

/** `ownerOnlyNoChmod`: an owner-only mode (0700) survives any sane umask, so the chmod round trip is skipped. */
async function mkdirAt(host: RemoteHost, sftp: SFTPWrapper, rel: string, mode: number | undefined, recursive: boolean, ownerOnlyNoChmod = false): Promise<void> {
  const abs = host.guard.abs(rel);
  try {
    await host.call<void>((cb) => sftp.mkdir(abs, mode === undefined ? {} : { mode }, cb as Done));
  } catch (err) {
    const status = sftpStatus(err);
    if (status === FX_NO_SUCH_FILE && recursive && rel.includes("/")) {
      await mkdirAt(host, sftp, parentRel(rel), undefined, true);
      return mkdirAt(host, sftp, rel, mode, false);
    }
    if (status !== FX_FAILURE) throw err;
    // sftp-server reports EEXIST as a bare FAILURE: look at what is there.
    const st = await host.call<Stats>((cb) => sftp.lstat(abs, cb)).catch(() => null); // unknown: report the original failure below
    if (!st) throw err;
    if ((st.mode & S_IFMT) === S_IFDIR && recursive) return;
    throw new TransferError("TARGET_EXISTS", `create folder ${JSON.stringify(rel)}: already exists`, { details: { path: rel } });
  }
  host.guard.remember(abs);
  if (mode !== undefined && !(ownerOnlyNoChmod && (mode & 0o7077) === 0)) {
    await host.call<void>((cb) => sftp.chmod(abs, mode & 0o7777, cb as Done)); // the server's umask applied to mkdir
  }
}

/** Creates folders (parents listed first) with every request in flight: a round trip or two for thousands of folders. */
export function mkdirMany(host: RemoteHost, dirs: readonly { path: string; mode?: number }[], opts: OpOptions = {}): Promise<void> {
  return host.op("", "create folder", opts.signal, async () => {
    const items = dirs.map((d) => ({ rel: normalizeRel(d.path), mode: d.mode }));
    const depth = new Map<string, number>();
    const levels: (typeof items)[] = [];
    for (const it of items) {
      if (it.rel === "") continue;
      const parent = parentRel(it.rel);
      const level = depth.has(parent) ? depth.get(parent)! + 1 : 0;
      depth.set(it.rel, level);
      (levels[level] ??= []).push(it);
    }
    await host.guard.ensureSafeDirs((levels[0] ?? []).map((it) => parentRel(it.rel)));
    // One channel, whose requests sftp-server serves in order: a child's mkdir may be sent before
    // its parent's answer arrived, so the whole tree costs about one round trip, not one per level.
    const sftp = await host.conn.sftp();
    await runPool(levels.flat(), BATCH_IN_FLIGHT, async (it) => {
      try {
        await mkdirAt(host, sftp, it.rel, it.mode, false, true);
      } catch (err) {
        throw host.fail(err, it.rel, "create folder", opts.signal);
      }
    });
  });
}

/** Sets mode and mtime of one entry (a link keeps its mode). */
export function setAttributes(host: RemoteHost, path: string, attrs: { mtimeMs?: number; mode?: number }, opts: OpOptions = {}): Promise<void> {
  return host.op(path, "set attributes", opts.signal, async () => {
    const { rel } = await host.guard.prepare(path);
    await setAttrs(host, await host.conn.sftp(), rel, attrs);
  });
}

/** Sets attributes on many files and folders with all requests in flight; links are skipped. */
export function setAttributesMany(host: RemoteHost, items: readonly { path: string; mtimeMs?: number; mode?: number }[], opts: OpOptions = {}): Promise<void> {
  return host.op("", "set attributes", opts.signal, async () => {
    const list = items.map((i) => ({ ...i, rel: normalizeRel(i.path) }));
    await host.guard.ensureSafeDirs(list.map((i) => parentRel(i.rel)));
    const t = await host.tools(opts.signal);
    if (rooted(t) && list.length > SET_ATTRS_VIA_SFTP_MAX) {
      // One process for all of them: 10,000 SFTP requests cost ~0.5 s of this process's CPU.
      const { command, stdin } = perlSetAttrs(host.root, list);
      const r = await host.run(command, { stdin, signal: opts.signal });
      if (r.code !== 0) throw commandError("set attributes", list[0]?.rel ?? "", r.code, r.stderr);
      return;
    }
    const sftp = await host.conn.sftp();
    await runPool(list, BATCH_IN_FLIGHT, async (i) => {
      try {
        await setAttrs(host, sftp, i.rel, i);
      } catch (err) {
        throw host.fail(err, i.rel, "set attributes", opts.signal);
      }
    });
  });
}

/** One entry's mode and mtime, never following a link (lsetstat@openssh.com, else lstat first). */
async function setAttrs(host: RemoteHost, sftp: SFTPWrapper, rel: string, attrs: { mtimeMs?: number; mode?: number }): Promise<void> {
  const abs = host.guard.abs(rel);
  const set: { mode?: number; atime?: number; mtime?: number } = {};
  if (attrs.mode !== undefined) set.mode = attrs.mode & 0o7777;
  // SFTP v3 carries whole seconds only.
  if (attrs.mtimeMs !== undefined) set.atime = set.mtime = Math.floor(attrs.mtimeMs / 1000);
  if (set.mode === undefined && set.mtime === undefined) return;
  const lsetstat = hasExtension(sftp, "lsetstat@openssh.com");
  if (lsetstat) {
    try {
      await host.call<void>((cb) => sftp.ext_openssh_lsetstat(abs, set, cb as Done));
      return;
    } catch (err) {
      // Linux cannot chmod a link itself: fall through and look at what is there.
      if (sftpStatus(err) !== FX_FAILURE && sftpStatus(err) !== FX_OP_UNSUPPORTED) throw err;
    }
  }
  const st = await host.call<Stats>((cb) => sftp.lstat(abs, cb));
  if ((st.mode & S_IFMT) === S_IFLNK) {
    // Link metadata beyond its mtime is not portable; the link text is what matters.
    if (set.mtime !== undefined && lsetstat) await host.call<void>((cb) => sftp.ext_openssh_lsetstat(abs, { atime: set.atime!, mtime: set.mtime! }, cb as Done));
    return;
  }
  await host.call<void>((cb) => sftp.setstat(abs, set, cb as Done));
}
