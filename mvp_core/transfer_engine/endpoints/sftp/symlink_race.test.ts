/**
 * A folder replaced by a link to a folder outside the portal while files stream (issue 13, item 4),
 * on the remote side: in the source of a pull, and in the staging tree of a push, for both
 * strategies. The swap happens at a chosen point of the stream (after the first MiB moved), the
 * original folder set aside inside the root. Each transfer must fail (PATH_ESCAPE, or another clean
 * failure), nothing from outside may arrive, and the outside folder must be exactly as before.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import fs from "node:fs";
import path from "node:path";
import { isTransferError } from "../../errors.ts";
import { transfer, type TransferSpecInput } from "../../index.ts";
import { startSshd, type TestSshd } from "../../../testing/sshd.ts";
import { tempDir, writeTree } from "../../test_tree.ts";
import type { Endpoint } from "../endpoint.ts";
import { localEndpoint } from "../testing.ts";
import { connectSsh, type SftpEndpoint } from "./index.ts";
import { chownTree, exactSnapshot as snapshot, metered, targetOf } from "./test_support.ts";

const TIMEOUT_MS = 120_000;
const MiB = 1024 * 1024;
const SECRET = "SECRET outside the portal";

/** Every file below `root` whose bytes contain the outside folder's marker. */
function secretsBelow(root: string): string[] {
  return (fs.readdirSync(root, { recursive: true }) as string[]).filter((rel) => {
    const abs = path.join(root, rel);
    return fs.lstatSync(abs).isFile() && fs.readFileSync(abs).includes(SECRET);
  });
}

/** `ep` with `swap` run once, after `afterBytes` went through its reads (a source) or writes (a target). */
function swapAfter(ep: Endpoint, side: "reads" | "writes", afterBytes: number, swap: () => void): Endpoint {
  let moved = 0;
  return metered(ep, side, (n) => {
    if (moved < afterBytes && (moved += n) >= afterBytes) swap();
  });
}

describe("a folder swapped for a link to outside the portal while files stream", () => {
  let s: TestSshd;
  let portal: string;
  let outside: string;
  let local: { dir: string; cleanup: () => Promise<void> };
  let remote: SftpEndpoint;
  let n = 0;

  const chown = (p: string): void => chownTree(p, s);
  /** Replaces the folder `dir` by a link to `outside`; the folder is kept inside the portal. */
  const swapFolder = (dir: string): void => {
    fs.renameSync(dir, path.join(portal, `aside-${++n}`));
    fs.symlinkSync(outside, dir);
    chown(dir);
  };

  beforeAll(async () => {
    s = await startSshd();
    portal = path.join(s.root, "portal");
    outside = path.join(s.root, "outside");
    fs.mkdirSync(portal);
    fs.mkdirSync(outside);
    chown(s.root);
    remote = await connectSsh(targetOf(s, portal));
    local = await tempDir("ketter-race-");
  }, TIMEOUT_MS);
  afterAll(async () => {
    await remote.close();
    await s.stop();
    await local.cleanup();
  }, TIMEOUT_MS);

  /** Fills the outside folder (the user may read and write it); returns its snapshot. */
  const outsideWith = (files: Record<string, string>): Record<string, string> => {
    fs.rmSync(outside, { recursive: true, force: true });
    fs.mkdirSync(outside);
    writeTree(outside, files);
    chown(outside);
    return snapshot(outside);
  };
  const failure = async (p: Promise<unknown>): Promise<string> => {
    const err = await p.then(() => null, (e: unknown) => e);
    return isTransferError(err) ? err.code : `not a clean failure: ${String(err)}`;
  };

  // Pulls: the outside folder holds files named like the source's, with other bytes — what a swap
  // would let a transfer read. The source files are read one after another (concurrency 1).
  for (const strategy of ["direct", "zip"] as const) {
    test(`pull, ${strategy}: the source's folder becomes a link → the transfer fails, nothing from outside arrives`, async () => {
      const id = `pull-${strategy}`;
      const src = path.join(portal, id);
      const names = strategy === "direct" ? ["x.bin", "y.bin"] : Array.from({ length: 10 }, (_, i) => `s${i}.txt`);
      // direct: 5 MiB files (exec streams); zip: "a" holds 36 MiB before "sub", so the packer is still in "a" at the swap.
      const aFiles: Record<string, number> = {};
      for (let i = 0; i < (strategy === "direct" ? 2 : 12); i++) aFiles[`a/${i}.bin`] = strategy === "direct" ? 5 * MiB : 3 * MiB;
      writeTree(src, { ...aFiles, ...Object.fromEntries(names.map((f) => [`sub/${f}`, strategy === "direct" ? 5 * MiB : 1000])) });
      chown(src);
      const before = outsideWith(Object.fromEntries(names.map((f) => [f, `${SECRET} ${f}`.padEnd(strategy === "direct" ? 5 * MiB : 1000, "!")])));
      const into = path.join(local.dir, id);
      fs.mkdirSync(into);
      const target = swapAfter(localEndpoint(into), "writes", MiB, () => swapFolder(path.join(src, "sub")));
      const spec: TransferSpecInput = { id, sourcePath: id, targetPath: "dst", mode: "copy", strategy, verify: "checksum" };
      const code = await failure(transfer(spec, { source: remote, target, options: { concurrency: 1 } }));
      // zip: the packer leaves links out, so the archive arrives without the swapped folder's files,
      // which the engine then misses while setting attributes (SOURCE_NOT_FOUND).
      expect(["PATH_ESCAPE", "SOURCE_CHANGED", "VERIFY_FAILED", ...(strategy === "zip" ? ["SOURCE_NOT_FOUND"] : [])]).toContain(code);
      expect(fs.existsSync(path.join(into, "dst"))).toBe(false);
      expect(secretsBelow(into)).toEqual([]);
      expect(snapshot(outside)).toEqual(before);
    }, TIMEOUT_MS);
  }

  // Pushes: the outside folder holds a file of its own. (Its names differ from the copy's: SFTP
  // requests name full paths, so the attributes the engine sets over SFTP on a file written just
  // before the swap would reach a same-named file through the link — the documented SFTP limit.)
  for (const strategy of ["direct", "zip"] as const) {
    test(`push, ${strategy}: a staging folder becomes a link → the transfer fails, nothing is written outside`, async () => {
      const id = `push-${strategy}`;
      const from = path.join(local.dir, id);
      const files: Record<string, number> = {};
      if (strategy === "direct") for (const f of ["a/0.bin", "a/1.bin", "sub/x.bin", "sub/y.bin"]) files[f] = 5 * MiB;
      else {
        for (let i = 0; i < 100; i++) files[`a/${String(i).padStart(3, "0")}.bin`] = 200 * 1024;
        for (let i = 0; i < 10; i++) files[`sub/s${i}.txt`] = 1000;
      }
      writeTree(path.join(from, "src"), files);
      const before = outsideWith({ "secret.txt": SECRET });
      const staging = path.join(portal, `.ketter-${id}.partial`);
      const source = swapAfter(localEndpoint(from), "reads", MiB, () => swapFolder(path.join(staging, "sub")));
      const spec: TransferSpecInput = { id, sourcePath: "src", targetPath: id, mode: "copy", strategy, verify: "checksum" };
      const code = await failure(transfer(spec, { source, target: remote, options: { concurrency: 1, zipStreams: 1 } }));
      expect(["PATH_ESCAPE", "VERIFY_FAILED"]).toContain(code);
      expect(fs.existsSync(path.join(portal, id))).toBe(false);
      expect(snapshot(outside)).toEqual(before);
    }, TIMEOUT_MS);
  }
});
