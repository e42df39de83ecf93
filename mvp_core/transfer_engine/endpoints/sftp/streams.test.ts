// Several streams per big file over SSH: ranges pushed and pulled over several channels and
// connections land byte for byte, and a server that refuses extra sessions gets fewer streams and
// the transfer still completes. Real sshd on loopback (two streams on two connections there); the
// WAN testbed's long links are measured by `bun run bench:wan`, never asserted on time here.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import fs from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { type EngineEvent, transfer } from "../../index.ts";
import { startSshd, type TestSshd } from "../../../testing/sshd.ts";
import { waitFor } from "../../../testing/ports.ts";
import { localEndpoint } from "../testing.ts";
import { connectSsh } from "./index.ts";
import { chownTree, exactSnapshot, targetOf } from "./test_support.ts";

/** exactSnapshot with mtimes in whole seconds: SFTP v3 carries no more. */
function snapshot(root: string): Record<string, string> {
  return Object.fromEntries(Object.entries(exactSnapshot(root)).map(([k, v]) => [k, v.replace(/^(\w+ \d+) (\d+)(\.\d+)?/, (_, head: string, ms: string) => `${head} ${Math.floor(Number(ms) / 1000)}`)]));
}

const TIMEOUT_MS = 120_000;
/** Big files go as ranges from this size here (the default is 64 MiB): the tests stay small. */
const OPTIONS = { rangeMinFileBytes: 8 << 20, rangeMaxBytes: 4 << 20, progressIntervalMs: 0 };

function random(n: number): Uint8Array {
  const b = new Uint8Array(n);
  for (let off = 0; off < n; off += 65536) crypto.getRandomValues(b.subarray(off, Math.min(n, off + 65536)));
  return b;
}

/** Two big files (ranged) and a few small ones. */
function footage(root: string): void {
  fs.mkdirSync(path.join(root, "card/clips"), { recursive: true });
  fs.writeFileSync(path.join(root, "card/clips/A001.mov"), random(24 * 1024 * 1024 + 12_345));
  fs.writeFileSync(path.join(root, "card/clips/A002.mov"), random(9 * 1024 * 1024 + 1));
  for (let i = 0; i < 5; i++) fs.writeFileSync(path.join(root, `card/side${i}.xml`), `<clip n="${i}"/>`);
  fs.chmodSync(path.join(root, "card/clips/A002.mov"), 0o640);
}

const strategy = (events: EngineEvent[]): Record<string, unknown> => events.find((e) => e.kind === "strategy_chosen")?.data ?? {};

/** TCP connections this machine has established to `port` on 127.0.0.1, as the kernel lists them (/proc/net/tcp). */
function connectionsTo(port: number): number {
  const remote = `0100007F:${port.toString(16).toUpperCase().padStart(4, "0")}`;
  return fs.readFileSync("/proc/net/tcp", "utf8").split("\n").slice(1).filter((l) => {
    const f = l.trim().split(/\s+/);
    return f[2] === remote && f[3] === "01"; // rem_address, st (01: ESTABLISHED)
  }).length;
}

describe("several streams per file over SSH", () => {
  let s: TestSshd;
  let local: string;
  beforeAll(async () => {
    s = await startSshd();
    local = await mkdtemp(path.join(os.tmpdir(), "ketter-streams-"));
    footage(local);
  });
  afterAll(async () => {
    await s.stop();
    await rm(local, { recursive: true, force: true });
  });

  test("push then pull: big files travel as ranges over two streams and land byte for byte", async () => {
    const remote = await connectSsh(targetOf(s));
    try {
      expect((await remote.streamCapacity()).streams).toBe(2);
      const events: EngineEvent[] = [];
      const pushed = await transfer({ sourcePath: "card", targetPath: "card", mode: "copy" }, { source: localEndpoint(local), target: remote, options: OPTIONS, onEvent: (e) => events.push(e) });
      expect(strategy(events)).toMatchObject({ streams: 2 });
      expect(snapshot(path.join(s.root, "card"))).toEqual(snapshot(path.join(local, "card")));
      expect({ sent: pushed.sentBytes, resumed: pushed.resumedBytes }).toEqual({ sent: pushed.bytes, resumed: 0 });

      events.length = 0;
      const pulled = await transfer({ sourcePath: "card", targetPath: "back", mode: "copy" }, { source: remote, target: localEndpoint(local), options: OPTIONS, onEvent: (e) => events.push(e) });
      expect(strategy(events)).toMatchObject({ streams: 2 });
      expect(snapshot(path.join(local, "back"))).toEqual(snapshot(path.join(local, "card")));
      expect(pulled.sentBytes).toBe(pulled.bytes);
      expect(fs.readdirSync(local).filter((n) => n.startsWith(".ketter-"))).toEqual([]);
      expect(fs.readdirSync(s.root).filter((n) => n.startsWith(".ketter-"))).toEqual([]);
    } finally {
      await remote.close();
      fs.rmSync(path.join(s.root, "card"), { recursive: true, force: true });
      fs.rmSync(path.join(local, "back"), { recursive: true, force: true });
    }
  }, TIMEOUT_MS);
});

describe("connections: opened ahead when streams will want them, not for a small folder", () => {
  let s: TestSshd;
  let local: string;
  beforeAll(async () => {
    s = await startSshd();
    local = await mkdtemp(path.join(os.tmpdir(), "ketter-conns-"));
    fs.mkdirSync(path.join(local, "frames"));
    for (let i = 0; i < 300; i++) fs.writeFileSync(path.join(local, "frames", `f${String(i).padStart(4, "0")}.dpx`), random(4096));
  });
  afterAll(async () => {
    await s.stop();
    await rm(local, { recursive: true, force: true });
  });

  test("a small folder's zip streams share the one connection (none waits for a handshake)", async () => {
    const remote = await connectSsh(targetOf(s));
    const events: EngineEvent[] = [];
    try {
      await transfer({ sourcePath: "frames", targetPath: "frames", mode: "copy" }, { source: localEndpoint(local), target: remote, options: { progressIntervalMs: 0 }, onEvent: (e) => events.push(e) });
      expect(strategy(events)).toMatchObject({ strategy: "zip" });
      expect(snapshot(path.join(s.root, "frames"))).toEqual(snapshot(path.join(local, "frames")));
      expect(connectionsTo(s.port)).toBe(1);
    } finally {
      await remote.close();
      fs.rmSync(path.join(s.root, "frames"), { recursive: true, force: true });
    }
  }, TIMEOUT_MS);

  test("warmStreams opens the connections the streams need, at most the shape's, in the background", async () => {
    const remote = await connectSsh(targetOf(s));
    try {
      expect(connectionsTo(s.port)).toBe(1);
      remote.warmStreams(1); // one stream: the first connection carries it
      remote.warmStreams(8); // more than the shape: two connections on loopback
      await waitFor(() => connectionsTo(s.port) === 2, { what: "a second connection", timeoutMs: 30_000 });
      // Asked again once open: nothing more (the shape's two are there).
      remote.warmStreams(8);
      expect((await remote.streamCapacity()).streams).toBe(2);
      expect(connectionsTo(s.port)).toBe(2);
    } finally {
      await remote.close();
    }
    await waitFor(() => connectionsTo(s.port) === 0, { what: "the connections to close", timeoutMs: 30_000 });
  }, TIMEOUT_MS);
});

describe("a server that refuses extra sessions", () => {
  for (const maxSessions of [1, 2]) {
    test(`MaxSessions ${maxSessions}: fewer streams (the event says so), still done, bytes identical, both ways`, async () => {
      const s = await startSshd({ maxSessions });
      const local = await mkdtemp(path.join(os.tmpdir(), "ketter-streams-"));
      try {
        footage(local);
        const remote = await connectSsh(targetOf(s));
        const events: EngineEvent[] = [];
        try {
          await transfer({ sourcePath: "card", targetPath: "card", mode: "copy" }, { source: localEndpoint(local), target: remote, options: OPTIONS, onEvent: (e) => events.push(e) });
          expect(snapshot(path.join(s.root, "card"))).toEqual(snapshot(path.join(local, "card")));
          chownTree(path.join(s.root, "card"), s);
          await transfer({ sourcePath: "card", targetPath: "back", mode: "copy" }, { source: remote, target: localEndpoint(local), options: OPTIONS, onEvent: (e) => events.push(e) });
          expect(snapshot(path.join(local, "back"))).toEqual(snapshot(path.join(local, "card")));
          // Learned from the refusals (at the first commands, or while the ranges travelled): one stream, and the log says why.
          const cap = await remote.streamCapacity();
          expect(cap.streams).toBe(1);
          expect(cap.why).toMatch(/refused/);
          const told = events.filter((e) => (e.kind === "strategy_chosen" && /refused/.test(String(e.data?.streamsWhy))) || (e.kind === "fallback" && /fewer streams/.test(e.message)));
          expect(told.length).toBeGreaterThanOrEqual(1);
        } finally {
          await remote.close();
        }
      } finally {
        await s.stop();
        await rm(local, { recursive: true, force: true });
      }
    }, TIMEOUT_MS);
  }
});
