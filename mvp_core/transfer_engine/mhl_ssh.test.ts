/**
 * ASC MHL over SSH (a real sshd): push and pull with --mhl, with and without a history carried from
 * the source (the ASC's reference scenarios), a remote source that does not match its history, a
 * sync appending on the remote, verification of a remote folder, and a server without xxhsum.
 * Everything the remote side wrote is validated against the XSDs and verified by the MHL library.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import fs from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { startSshd, type TestSshd } from "../testing/sshd.ts";
import type { Endpoint } from "./endpoints/endpoint.ts";
import { localEndpoint } from "./endpoints/testing.ts";
import { chownTree, targetOf } from "./endpoints/sftp/test_support.ts";
import { isTransferError } from "./errors.ts";
import { type EngineEvent, openEndpoint, transfer, verifyHistory } from "./index.ts";
import { checkHistory, copyScenario, newestManifest } from "./mhl_testing.ts";
import { leftovers, writeTree } from "./test_tree.ts";

/** Real sshd, real processes, a loaded machine: generous limits (no timing is asserted). */
const T = 120_000;
const CLIP = "Clips/A002C006_141024_R2EC.mov";

let s: TestSshd;
let remote: Endpoint;
let localDir: string;
let local: Endpoint;
let n = 0;

beforeAll(async () => {
  s = await startSshd();
  remote = await openEndpoint({ kind: "sftp", ...targetOf(s) });
  localDir = await mkdtemp(path.join(os.tmpdir(), "ketter-mhl-ssh-"));
  local = localEndpoint(localDir);
}, T);
afterAll(async () => {
  await remote?.close();
  await s?.stop();
  await rm(localDir, { recursive: true, force: true });
}, T);

/** A fresh name for this test's folders. */
const id = (): string => `m${++n}`;

async function codeOf(p: Promise<unknown>): Promise<{ code: string; message: string }> {
  try {
    await p;
  } catch (err) {
    if (isTransferError(err)) return { code: err.code, message: err.message };
    throw err;
  }
  throw new Error("unexpectedly succeeded");
}

describe("ASC MHL over SSH", () => {
  test("push without a history: xxh3 computed by xxhsum next to the data, generation 1 written remotely", async () => {
    const name = id();
    writeTree(path.join(localDir, name), { "Clips/A.mov": 2 * 1024 * 1024 + 7, "Sidecar.txt": "notes", "sub/deep/x.bin": 300 });
    const events: EngineEvent[] = [];
    const r = await transfer({ sourcePath: name, targetPath: `${name}-copy`, mode: "copy", mhl: true }, { source: local, target: remote, onEvent: (e) => events.push(e) });
    expect(r.verified).toEqual({ mode: "checksum", algorithm: "xxh3", files: 3 });
    expect(events.filter((e) => e.kind === "fallback")).toEqual([]); // nothing read back
    expect(r.mhl).toMatchObject({ appendedTo: "new", files: 3, manifests: [{ sequence: 1 }] });
    const { invalid, verification } = await checkHistory(path.join(s.root, `${name}-copy`));
    expect(invalid).toEqual([]);
    expect(verification).toMatchObject({ ok: true });
    expect(verification.verified).toHaveLength(3);
    expect(leftovers(s.root)).toEqual([]);
    // Without an ASC MHL, auto takes what the server computes cheapest: CRC-32, computed as it writes.
    const plain = await transfer({ sourcePath: name, targetPath: `${name}-plain`, mode: "copy" }, { source: local, target: remote });
    expect(plain.verified.algorithm).toBe("crc32");
  }, T);

  test("push with a history (scenario 02, zip): checked in xxh64, carried and appended on the remote", async () => {
    const name = id();
    copyScenario("scenario_02/file_server/A002R2EC", path.join(localDir, name));
    const r = await transfer({ sourcePath: name, targetPath: `${name}-copy`, mode: "copy", mhl: true, strategy: "zip" }, { source: local, target: remote });
    expect(r).toMatchObject({ strategy: "zip", verified: { algorithm: "xxh64" }, mhl: { appendedTo: "source", sourceChecked: 3, manifests: [{ sequence: 3 }] } });
    const { invalid, verification } = await checkHistory(path.join(s.root, `${name}-copy`));
    expect(invalid).toEqual([]);
    expect(verification.ok).toBe(true);
  }, T);

  test("pull with nested histories (scenario 05): checked on the remote source, appended here", async () => {
    const name = id();
    copyScenario("scenario_05/file_server/Reels", path.join(s.root, name));
    chownTree(path.join(s.root, name), s);
    const r = await transfer({ sourcePath: name, targetPath: `${name}-copy`, mode: "copy", mhl: true }, { source: remote, target: local });
    expect(r.mhl!.manifests).toHaveLength(3);
    expect(r.mhl!.sourceChecked).toBe(7);
    const { invalid, verification } = await checkHistory(path.join(localDir, `${name}-copy`));
    expect(invalid).toEqual([]);
    expect(verification.ok).toBe(true);
  }, T);

  test("pull of a remote source that does not match its history fails naming the file; nothing lands", async () => {
    const name = id();
    copyScenario("scenario_02/file_server/A002R2EC", path.join(s.root, name));
    fs.writeFileSync(path.join(s.root, name, CLIP), "XXXXX");
    chownTree(path.join(s.root, name), s);
    const f = await codeOf(transfer({ sourcePath: name, targetPath: `${name}-copy`, mode: "copy", mhl: true }, { source: remote, target: local }));
    expect(f.code).toBe("MHL_MISMATCH");
    expect(f.message).toContain(CLIP);
    expect(fs.existsSync(path.join(localDir, `${name}-copy`))).toBe(false);
    expect(leftovers(localDir)).toEqual([]);
  }, T);

  test("a sync push appends to the remote target's history, renamed into place there", async () => {
    const name = id();
    writeTree(path.join(localDir, name), { "a.bin": 1_000, "b.bin": 2_000 });
    await transfer({ sourcePath: name, targetPath: `${name}-copy`, mode: "copy", mhl: true }, { source: local, target: remote });
    writeTree(path.join(localDir, name), { "c/new.bin": 3_000 });
    const r = await transfer({ sourcePath: name, targetPath: `${name}-copy`, mode: "copy", mhl: true, sync: "size" }, { source: local, target: remote });
    expect(r.mhl).toMatchObject({ appendedTo: "target", files: 1, manifests: [{ sequence: 2 }] });
    const dst = path.join(s.root, `${name}-copy`);
    expect(newestManifest(dst)).toContain("c/new.bin");
    const { invalid, verification } = await checkHistory(dst);
    expect(invalid).toEqual([]);
    expect(verification.ok).toBe(true);
    expect(verification.verified).toHaveLength(3);
    expect(leftovers(s.root)).toEqual([]);
  }, T);

  test("verifying a remote folder: clean, tampered, and recorded in place", async () => {
    const name = id();
    copyScenario("scenario_02/file_server/A002R2EC", path.join(s.root, name));
    chownTree(path.join(s.root, name), s);
    expect(await verifyHistory({ path: name }, { endpoint: remote })).toMatchObject({ ok: true, verified: 3 });
    fs.writeFileSync(path.join(s.root, name, "Sidecar.txt"), "changed sidecar");
    const bad = await verifyHistory({ path: name, record: true }, { endpoint: remote });
    expect(bad).toMatchObject({ ok: false, mismatched: [{ path: "Sidecar.txt", format: "xxh64" }], recorded: { manifests: [{ sequence: 3 }] } });
    const text = newestManifest(path.join(s.root, name));
    expect(text).toContain("<process>in-place</process>");
    expect(text).toMatch(/Sidecar\.txt<\/path>\s*<xxh64 action="failed"/);
    expect((await checkHistory(path.join(s.root, name))).invalid).toEqual([]);
  }, T);
});

describe("ASC MHL to a server without xxhsum", () => {
  let bare: TestSshd;
  let ep: Endpoint;
  beforeAll(async () => {
    bare = await startSshd({ hideCommands: ["xxhsum"] });
    ep = await openEndpoint({ kind: "sftp", ...targetOf(bare) });
  }, T);
  afterAll(async () => {
    await ep?.close();
    await bare?.stop();
  }, T);

  test("auto records sha1 computed next to the data; an asked-for xxHash is read back (and says so)", async () => {
    expect((await ep.capabilities()).hashes).not.toContain("xxh3");
    const name = id();
    writeTree(path.join(localDir, name), { "a.bin": 100_000, "b.bin": 10 });
    const auto = await transfer({ sourcePath: name, targetPath: `${name}-auto`, mode: "copy", mhl: true }, { source: local, target: ep });
    expect(auto.verified.algorithm).toBe("sha1");
    const events: EngineEvent[] = [];
    const asked = await transfer({ sourcePath: name, targetPath: `${name}-xxh3`, mode: "copy", mhl: true, hash: "xxh3" }, { source: local, target: ep, onEvent: (e) => events.push(e) });
    expect(asked.verified.algorithm).toBe("xxh3");
    expect(events.find((e) => e.kind === "fallback")?.message).toContain("reading the destination back");
    for (const d of [`${name}-auto`, `${name}-xxh3`]) {
      const { invalid, verification } = await checkHistory(path.join(bare.root, d));
      expect(invalid).toEqual([]);
      expect(verification.ok).toBe(true);
    }
  }, T);
});
