/**
 * A fresh, journaled ext4 on a loop device: the destination every benchmark method writes to.
 *
 * This machine's root file system is ext4 without a journal. There, every inode allocation skips
 * inodes freed in the last 60 s (360 s while their inode-table block is still dirty), reading each
 * one's deletion time: after one method's 10,000-file tree was deleted, each file the next method
 * created cost ~1 ms instead of ~10 µs, for minutes (perf: `recently_deleted` under
 * `find_inode_bit`), and small-file figures swung 1–5 s with no change in the tools. With a journal
 * ext4 does not do that — a real SRVTRF has one — and on the scratch disk the same 10,000 creates
 * took 0.2 s right after a delete. Every method gets the same realistic destination.
 *
 * Only root can mount; elsewhere `mountScratchDisk` returns null and the caller says so. The
 * field test (mvp_core/field/) mounts one for LAB and one for SRVTRF for the same reason.
 */
import fs from "node:fs";
import path from "node:path";

/** A mounted scratch file system. */
export interface ScratchDisk {
  /** Where it is mounted. */
  path: string;
  /** One line for the report, e.g. "ext4 (journaled) on /dev/loop0, 8 GiB". */
  describe: string;
  /** Unmounts it and deletes the image. */
  stop(): void;
}

function run(argv: string[]): string {
  const p = Bun.spawnSync(argv, { stdout: "pipe", stderr: "pipe" });
  if (p.exitCode !== 0) throw new Error(`${argv.join(" ")} failed (${p.exitCode}): ${p.stderr.toString().trim()}`);
  return p.stdout.toString().trim();
}

/**
 * Creates a `bytes`-sized sparse image in `imageDir`, formats it, and mounts it at `at` (created,
 * owned by `owner` when given). Null when not root or when the tools are missing.
 */
export function mountScratchDisk(opts: { imageDir: string; at: string; bytes: number; owner?: string }): ScratchDisk | null {
  if (process.getuid?.() !== 0 || !Bun.which("mkfs.ext4") || !Bun.which("losetup")) return null;
  const image = path.join(opts.imageDir, `scratch-ext4-${crypto.randomUUID().slice(0, 8)}.img`);
  let device: string | null = null;
  let mounted = false;
  const stop = (): void => {
    if (mounted) Bun.spawnSync(["umount", opts.at]);
    if (device) Bun.spawnSync(["losetup", "-d", device]);
    fs.rmSync(image, { force: true });
  };
  try {
    fs.writeFileSync(image, "");
    fs.truncateSync(image, opts.bytes);
    // Inode tables and journal written now, not by a background thread during the measurements.
    run(["mkfs.ext4", "-q", "-F", "-E", "lazy_itable_init=0,lazy_journal_init=0", image]);
    // Direct I/O: the image's pages are not cached a second time on the host file system.
    device = run(["losetup", "-f", "--show", "--direct-io=on", image]);
    fs.mkdirSync(opts.at, { recursive: true });
    run(["mount", device, opts.at]);
    mounted = true;
    fs.rmSync(path.join(opts.at, "lost+found"), { recursive: true, force: true });
    if (opts.owner) run(["chown", `${opts.owner}:`, opts.at]);
    return { path: opts.at, describe: `ext4 (journaled) on ${device}, ${(opts.bytes / 1024 ** 3).toFixed(0)} GiB`, stop };
  } catch (err) {
    stop();
    throw err;
  }
}
