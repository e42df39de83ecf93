import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import fs from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { isTransferError } from "../../errors.ts";
import { transfer, type EngineEvent, type TransferSpecInput } from "../../index.ts";
import { localEndpoint } from "../testing.ts";
import type { Endpoint } from "../endpoint.ts";
import { startSshd, type TestSshd } from "../../../testing/sshd.ts";
import { connectSsh, type SftpEndpoint } from "./index.ts";
import { chownTree, targetOf } from "./test_support.ts";

/** Real sshd, real processes, a loaded 2-core machine: generous per-test limits (no timing is asserted). */
const TIMEOUT_MS = 120_000;

function random(n: number): Uint8Array {
  const b = new Uint8Array(n);
  for (let off = 0; off < n; off += 65536) crypto.getRandomValues(b.subarray(off, Math.min(n, off + 65536)));
  return b;
}

/** Nested and empty folders, odd names, modes, old mtimes, an inside link, a file big enough for the exec stream. */
function sampleTree(root: string): void {
  const files: Record<string, Uint8Array | string> = {
    "a/b/c/deep.bin": random(70_000),
    "a/plain.txt": "hello",
    "with space/ünïcødé 名前.txt": "unicode",
    "it's \"quoted\"\nnewline": "odd",
    "big.bin": random(6 * 1024 * 1024 + 3),
    zero: "",
  };
  for (let i = 0; i < 30; i++) files[`many/f${i}.txt`] = `file ${i}`;
  for (const [rel, data] of Object.entries(files)) {
    fs.mkdirSync(path.dirname(path.join(root, rel)), { recursive: true });
    fs.writeFileSync(path.join(root, rel), data);
  }
  fs.mkdirSync(path.join(root, "empty"));
  fs.chmodSync(path.join(root, "a/plain.txt"), 0o600);
  fs.chmodSync(path.join(root, "zero"), 0o755);
  fs.utimesSync(path.join(root, "zero"), new Date("1975-06-01T00:00:00Z"), new Date("1975-06-01T00:00:00Z"));
  fs.symlinkSync("../a/plain.txt", path.join(root, "with space/link"));
  fs.utimesSync(path.join(root, "a/b"), new Date("2001-01-01T00:00:00Z"), new Date("2001-01-01T00:00:00Z"));
}

/** Type, mode, mtime (whole seconds: SFTP v3 carries no more), size and content hash of every entry. */
function snapshot(root: string): Record<string, string> {
  const out: Record<string, string> = {};
  const visit = (rel: string): void => {
    const abs = rel === "" ? root : path.join(root, rel);
    const st = fs.lstatSync(abs);
    const mtime = Math.floor(st.mtimeMs / 1000);
    if (st.isSymbolicLink()) out[rel] = `link ${fs.readlinkSync(abs)}`;
    else if (st.isFile()) out[rel] = `file ${(st.mode & 0o7777).toString(8)} ${mtime} ${st.size} ${new Bun.CryptoHasher("sha1").update(fs.readFileSync(abs)).digest("hex")}`;
    else if (st.isDirectory()) {
      out[rel] = `dir ${(st.mode & 0o7777).toString(8)} ${mtime}`;
      for (const name of fs.readdirSync(abs).sort()) visit(rel === "" ? name : `${rel}/${name}`);
    }
  };
  visit("");
  return out;
}

function leftovers(dir: string): string[] {
  return fs.readdirSync(dir).filter((n) => n.startsWith(".ketter-"));
}

describe("transfer() over SSH", () => {
  let s: TestSshd;
  let remote: SftpEndpoint;
  let localDir: string;
  let local: Endpoint;
  let n = 0;

  beforeAll(async () => {
    s = await startSshd();
    remote = await connectSsh(targetOf(s));
    localDir = await mkdtemp(path.join(os.tmpdir(), "ketter-ssh-local-"));
    local = localEndpoint(localDir);
  }, TIMEOUT_MS);
  afterAll(async () => {
    await remote.close();
    await s.stop();
    await rm(localDir, { recursive: true, force: true });
  }, TIMEOUT_MS);

  const cases: { name: string; up: boolean; strategy: "direct" | "zip" }[] = [
    { name: "direct, local → remote", up: true, strategy: "direct" },
    { name: "zip, local → remote", up: true, strategy: "zip" },
    { name: "direct, remote → local", up: false, strategy: "direct" },
    { name: "zip, remote → local (packed on the remote)", up: false, strategy: "zip" },
  ];
  for (const c of cases) {
    test(`${c.name}: identical tree, checksum verified, nothing left behind`, async () => {
      const id = `case${++n}`;
      const [srcRoot, dstRoot] = c.up ? [localDir, s.root] : [s.root, localDir];
      const source: Endpoint = c.up ? local : remote;
      const target: Endpoint = c.up ? remote : local;
      sampleTree(path.join(srcRoot, id));
      if (!c.up) chownTree(path.join(srcRoot, id), s);
      const before = snapshot(path.join(srcRoot, id));
      const events: EngineEvent[] = [];
      const spec: TransferSpecInput = { sourcePath: id, targetPath: `${id}-copy`, mode: "copy", strategy: c.strategy, verify: "checksum" };
      const r = await transfer(spec, { source, target, onEvent: (e) => events.push(e) });
      expect(r.strategy).toBe(c.strategy);
      expect(r.verified.algorithm).toBeDefined();
      expect(snapshot(path.join(dstRoot, `${id}-copy`))).toEqual(before);
      expect(snapshot(path.join(srcRoot, id))).toEqual(before);
      expect(leftovers(dstRoot)).toEqual([]);
      if (c.strategy === "zip" && !c.up) expect(events.find((e) => e.kind === "strategy_chosen")?.data?.archives).toBe(1);
    }, TIMEOUT_MS);
  }

  // Over SFTP a file shows only its size and a whole-second mtime: an in-place rewrite that restores
  // both is caught by the remote source's inode and ctime, asked in one command after the copy.
  for (const strategy of ["direct", "zip"] as const) {
    test(`a remote source rewritten with touch -r after the scan (${strategy}) is SOURCE_CHANGED, nothing committed`, async () => {
      const id = `case${++n}`;
      sampleTree(path.join(s.root, id));
      chownTree(path.join(s.root, id), s);
      const victim = path.join(s.root, id, "a/plain.txt");
      const st = fs.statSync(victim);
      let rewritten = false;
      const spec: TransferSpecInput = { id: crypto.randomUUID(), sourcePath: id, targetPath: `${id}-copy`, mode: "move", strategy, verify: "checksum" };
      const f = await transfer(spec, {
        source: remote,
        target: local,
        options: { progressIntervalMs: 0 },
        onProgress: (p) => {
          if (rewritten || p.phase !== "plan") return;
          rewritten = true;
          fs.writeFileSync(victim, "HELLO"); // same size as "hello"
          fs.utimesSync(victim, st.atime, st.mtime);
        },
      }).catch((e: unknown) => e);
      expect(rewritten).toBe(true);
      expect(f).toMatchObject({ code: "SOURCE_CHANGED" });
      expect(fs.existsSync(path.join(localDir, `${id}-copy`))).toBe(false);
      expect(fs.readFileSync(victim, "utf8")).toBe("HELLO");
      // SOURCE_CHANGED is retryable: what arrived stays for the retry, which re-checks it at both
      // ends (the rewritten file's change stamp sends it again) and moves the new content.
      expect(leftovers(localDir).sort()).toEqual([`.ketter-${spec.id}.journal`, `.ketter-${spec.id}.partial`]);
      const again = await transfer(spec, { source: remote, target: local });
      expect(again.fileCounts.failed).toBe(0);
      expect(fs.readFileSync(path.join(localDir, `${id}-copy`, "a/plain.txt"), "utf8")).toBe("HELLO");
      expect(fs.existsSync(path.join(s.root, id))).toBe(false);
      expect(leftovers(localDir)).toEqual([]);
    }, TIMEOUT_MS);
  }

  test("move local → remote (auto picks zip) removes the source only after the copy is verified", async () => {
    const id = `case${++n}`;
    sampleTree(path.join(localDir, id));
    const before = snapshot(path.join(localDir, id));
    const r = await transfer({ sourcePath: id, targetPath: `${id}-moved`, mode: "move", verify: "checksum" }, { source: local, target: remote, options: { zipMinSmallFiles: 10 } });
    expect(r.strategy).toBe("zip");
    expect(snapshot(path.join(s.root, `${id}-moved`))).toEqual(before);
    expect(fs.existsSync(path.join(localDir, id))).toBe(false);
  }, TIMEOUT_MS);
});

describe("transfer() remote → remote (through this process)", () => {
  for (const strategy of ["direct", "zip"] as const) {
    test(`${strategy}: two portals of one host, tree identical`, async () => {
      const s = await startSshd();
      const [a, b] = [path.join(s.root, "a"), path.join(s.root, "b")];
      fs.mkdirSync(a);
      fs.mkdirSync(b);
      sampleTree(path.join(a, "src"));
      chownTree(a, s);
      chownTree(b, s);
      const source = await connectSsh({ ...targetOf(s), root: a });
      const target = await connectSsh({ ...targetOf(s), root: b });
      try {
        const r = await transfer({ sourcePath: "src", targetPath: "dst", mode: "copy", strategy, verify: "checksum" }, { source, target });
        expect(r.strategy).toBe(strategy);
        expect(snapshot(path.join(b, "dst"))).toEqual(snapshot(path.join(a, "src")));
        expect(leftovers(b)).toEqual([]);
      } finally {
        await source.close();
        await target.close();
        await s.stop();
      }
    }, TIMEOUT_MS);
  }
});

describe("transfer() over SSH: fallbacks and faults", () => {
  test("a remote without unzip (nor perl or bsdtar, the other unpackers) gets the direct strategy and a fallback event", async () => {
    const s = await startSshd({ hideCommands: ["unzip", "bsdtar", "perl"] });
    const localDir = await mkdtemp(path.join(os.tmpdir(), "ketter-ssh-local-"));
    const remote = await connectSsh(targetOf(s));
    try {
      sampleTree(path.join(localDir, "src"));
      const events: EngineEvent[] = [];
      const r = await transfer({ sourcePath: "src", targetPath: "dst", mode: "copy", strategy: "zip" }, { source: localEndpoint(localDir), target: remote, onEvent: (e) => events.push(e) });
      expect(r.strategy).toBe("direct");
      expect(events.some((e) => e.kind === "fallback" && e.message.includes("cannot unpack"))).toBe(true);
      expect(snapshot(path.join(s.root, "dst"))).toEqual(snapshot(path.join(localDir, "src")));
    } finally {
      await remote.close();
      await s.stop();
      await rm(localDir, { recursive: true, force: true });
    }
  }, TIMEOUT_MS);

  for (const strategy of ["direct", "zip"] as const) {
    test(`sshd killed mid-move (${strategy}): retryable error, source intact, nothing under the final name; a retry completes`, async () => {
      const s = await startSshd();
      const localDir = await mkdtemp(path.join(os.tmpdir(), "ketter-ssh-local-"));
      try {
        const src = path.join(localDir, "src");
        fs.mkdirSync(src);
        // The kill (which takes a moment, more under load) must land while bytes still flow: with 4 ×
        // 8 MiB the streamed zip sometimes reached the commit first, and 4 × 16 MiB once finished
        // before it under load; the read rate is capped so that 64 MiB take ~4 s.
        for (let i = 0; i < 4; i++) fs.writeFileSync(path.join(src, `part${i}.bin`), random(16 * 1024 * 1024));
        for (let i = 0; i < 20; i++) fs.writeFileSync(path.join(src, `small${i}.txt`), `small ${i}`);
        const before = snapshot(src);
        const remote = await connectSsh(targetOf(s));
        let killed: Promise<void> | null = null;
        const err = await transfer({ id: "job1", sourcePath: "src", targetPath: "dst", mode: "move", strategy }, {
          source: localEndpoint(localDir),
          target: remote,
          options: { progressIntervalMs: 0, zipSmallFileBytes: 64 << 20, maxBytesPerSec: 16 << 20 },
          onProgress: (p) => {
            if (p.phase === "transfer" && p.bytesDone > 2 * 1024 * 1024) killed ??= s.kill();
          },
        }).then(() => null, (e: unknown) => e);
        await killed;
        expect(isTransferError(err) ? { code: err.code, retryable: err.retryable } : `not a TransferError: ${String(err)}`).toEqual({ code: "CONNECTION_LOST", retryable: true });
        expect(snapshot(src)).toEqual(before);
        expect(fs.existsSync(path.join(s.root, "dst"))).toBe(false);
        await remote.close();

        await s.restart();
        const again = await connectSsh(targetOf(s));
        const events: EngineEvent[] = [];
        await transfer({ id: "job1", sourcePath: "src", targetPath: "dst", mode: "move", strategy }, { source: localEndpoint(localDir), target: again, onEvent: (e) => events.push(e) });
        await again.close();
        // What the killed attempt left is either resumed from (its journal recorded whole files) or removed.
        expect(events.some((e) => e.kind === "staging_recovered" || e.kind === "resumed")).toBe(true);
        expect(snapshot(path.join(s.root, "dst"))).toEqual(before);
        expect(fs.existsSync(src)).toBe(false);
        expect(leftovers(s.root)).toEqual([]);
      } finally {
        await s.stop();
        await rm(localDir, { recursive: true, force: true });
      }
    }, TIMEOUT_MS);
  }
});
