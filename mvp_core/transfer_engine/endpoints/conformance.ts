/**
 * The conformance suite every Endpoint must pass (bun:test). `local.test.ts` runs it against
 * the local adapter; the SSH adapter runs the same suite. The endpoint must be rooted at an empty,
 * writable scratch folder that is not the file system's root (the escape checks need an outside).
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { zipSync } from "fflate";
import { HASH_ALGORITHMS, type Endpoint, type Entry, type ReadOptions } from "./endpoint.ts";
import { isTransferError } from "../errors.ts";
import { LOCAL_HASHES, createHasher } from "../hash.ts";

async function readAll(ep: Endpoint, path: string, opts: ReadOptions = {}): Promise<Uint8Array> {
  const parts: Uint8Array[] = [];
  for await (const c of ep.openRead(path, opts)) parts.push(new Uint8Array(c)); // a copy: the reader may reuse c
  return new Uint8Array(Buffer.concat(parts));
}

async function writeAll(ep: Endpoint, path: string, data: Uint8Array, mode?: number): Promise<void> {
  const w = await ep.openWrite(path, mode === undefined ? { size: data.length } : { mode, size: data.length });
  // Several writes, so chunking bugs show.
  for (let off = 0; off < data.length; off += 700_000) await w.write(data.subarray(off, off + 700_000));
  await w.close();
}

async function codeOf(p: Promise<unknown>): Promise<string> {
  try {
    await p;
  } catch (err) {
    if (isTransferError(err)) return err.code;
    return `not a TransferError: ${String(err)}`;
  }
  return "resolved";
}

async function collect(it: AsyncIterable<Entry>): Promise<Entry[]> {
  const out: Entry[] = [];
  for await (const e of it) out.push(e);
  return out;
}

function random(n: number): Uint8Array {
  const b = new Uint8Array(n);
  for (let off = 0; off < n; off += 65536) crypto.getRandomValues(b.subarray(off, Math.min(n, off + 65536)));
  return b;
}

/** Registers the shared Endpoint test suite under `name`. */
export function describeEndpointConformance(
  name: string,
  makeEndpoint: () => Promise<{ endpoint: Endpoint; cleanup: () => Promise<void> }>,
): void {
  describe(`Endpoint conformance: ${name}`, () => {
    let ep: Endpoint;
    let cleanup: () => Promise<void>;
    let n = 0;
    // Each test works in its own folder of one endpoint.
    const dir = async (): Promise<string> => {
      const d = `case-${++n}`;
      await ep.mkdir(d);
      return d;
    };

    beforeAll(async () => {
      ({ endpoint: ep, cleanup } = await makeEndpoint());
    });
    afterAll(async () => {
      await ep.close();
      await cleanup();
    });

    test("capabilities are consistent with the optional methods", async () => {
      const caps = await ep.capabilities();
      expect(caps.hashes.length).toBeGreaterThan(0);
      for (const h of caps.hashes) expect(HASH_ALGORITHMS).toContain(h);
      expect(typeof ep.unzip === "function").toBe(caps.unzip);
      expect(typeof ep.packZip === "function").toBe(caps.packZip);
      expect(ep.label.length).toBeGreaterThan(0);
    });

    test("mkdir, stat and missing paths", async () => {
      const d = await dir();
      expect(await ep.stat(`${d}/missing`)).toBeNull();
      await ep.mkdir(`${d}/a`, { mode: 0o750 });
      const st = await ep.stat(`${d}/a`);
      expect(st).toMatchObject({ path: `${d}/a`, type: "dir", mode: 0o750 });
      expect(await codeOf(ep.mkdir(`${d}/a`))).toBe("TARGET_EXISTS");
      expect(await codeOf(ep.mkdir(`${d}/x/y`))).toBe("SOURCE_NOT_FOUND");
      await ep.mkdir(`${d}/x/y/z`, { recursive: true });
      expect((await ep.stat(`${d}/x/y/z`))?.type).toBe("dir");
    });

    test("write then read back, with modes, offsets and empty files", async () => {
      const d = await dir();
      const data = random(3 * 1024 * 1024 + 17);
      await writeAll(ep, `${d}/f.bin`, data, 0o640);
      const st = await ep.stat(`${d}/f.bin`);
      expect(st).toMatchObject({ type: "file", size: data.length, mode: 0o640 });
      expect(Buffer.compare(await readAll(ep, `${d}/f.bin`), data)).toBe(0);
      expect(Buffer.compare(await readAll(ep, `${d}/f.bin`, { start: 1_000_000 }), data.subarray(1_000_000))).toBe(0);
      expect(Buffer.compare(await readAll(ep, `${d}/f.bin`, { reuseBuffer: true }), data)).toBe(0);
      await writeAll(ep, `${d}/empty`, new Uint8Array(0));
      expect((await ep.stat(`${d}/empty`))?.size).toBe(0);
      expect((await readAll(ep, `${d}/empty`)).length).toBe(0);
      expect(await codeOf(readAll(ep, `${d}/nope`))).toBe("SOURCE_NOT_FOUND");
    });

    test("a writer is done with a chunk once write() resolves: the caller may refill it at once", async () => {
      const d = await dir();
      // One buffer refilled before every write, in big chunks (written as they are) and small ones
      // (gathered): a writer still holding the memory (a stalled SSH window) would store the
      // later fill. Sized (an SSH writer lane) and unsized (one command per stream).
      const data = random(7 * 1024 * 1024 + 5);
      const scratch = new Uint8Array(1536 * 1024);
      for (const [name, size] of [["sized", data.length], ["unsized", undefined]] as const) {
        const w = await ep.openWrite(`${d}/${name}`, size === undefined ? {} : { size });
        for (let off = 0, i = 0; off < data.length; i++) {
          const n = Math.min(i % 3 === 2 ? 10_000 : scratch.length, data.length - off);
          scratch.set(data.subarray(off, off + n));
          await w.write(scratch.subarray(0, n));
          scratch.fill(0xee);
          off += n;
        }
        await w.close();
        expect(Buffer.compare(await readAll(ep, `${d}/${name}`), data)).toBe(0);
      }
    });

    test("ranges: reads of [start, start+length), writes at offsets that never truncate, progress with CRC-32", async () => {
      const d = await dir();
      // Big enough that a remote endpoint reads and writes over its exec streams, small pieces too.
      const data = random(20 * 1024 * 1024 + 3);
      const cuts = [0, 5 * 1024 * 1024, 5 * 1024 * 1024 + 1, 17 * 1024 * 1024, data.length];
      const told: Array<[number, number, number]> = [];
      // Last range first, at once: each writer creates the file if it is first, none truncates it.
      await Promise.all(cuts.slice(0, -1).map(async (from, i) => {
        const to = cuts[i + 1]!;
        const w = await ep.openWrite(`${d}/r.bin`, { offset: from, size: to - from, onWritten: (bytes, crc) => told.push([from, bytes, crc]) });
        for (let off = from; off < to; off += 1_500_000) await w.write(data.subarray(off, Math.min(to, off + 1_500_000)));
        await w.close();
      }).reverse());
      expect((await ep.stat(`${d}/r.bin`))?.size).toBe(data.length);
      expect(Buffer.compare(await readAll(ep, `${d}/r.bin`), data)).toBe(0);
      // The last report of each range is all of it, with the CRC-32 of exactly those bytes.
      for (const [i, from] of cuts.slice(0, -1).entries()) {
        const last = told.filter(([f]) => f === from).at(-1)!;
        expect([last[1], last[2]]).toEqual([cuts[i + 1]! - from, Bun.hash.crc32(data.subarray(from, cuts[i + 1]))]);
      }
      for (const [start, length] of [[0, 1], [3, 5 * 1024 * 1024], [17 * 1024 * 1024, 3 * 1024 * 1024 + 3], [data.length - 2, 10], [data.length, 5]] as const) {
        expect(Buffer.compare(await readAll(ep, `${d}/r.bin`, { start, length }), data.subarray(start, start + length))).toBe(0);
      }
      // An aborted range leaves the file (the other ranges are in it); a rewritten range replaces only its bytes.
      const w = await ep.openWrite(`${d}/r.bin`, { offset: 1000, size: 10 });
      await w.write(new Uint8Array(4));
      await w.abort();
      expect((await ep.stat(`${d}/r.bin`))?.size).toBe(data.length);
      const fix = await ep.openWrite(`${d}/r.bin`, { offset: 1000, size: 10 });
      await fix.write(data.subarray(1000, 1010));
      await fix.close();
      expect(Buffer.compare(await readAll(ep, `${d}/r.bin`), data)).toBe(0);
      if (ep.crcRanges) {
        const got = await ep.crcRanges([
          { path: `${d}/r.bin`, offset: 0, length: data.length }, { path: `${d}/r.bin`, offset: 7, length: 9_000_000 },
          { path: `${d}/r.bin`, offset: data.length - 5, length: 6 }, { path: `${d}/missing`, offset: 0, length: 1 },
        ]);
        expect(got).toEqual([Bun.hash.crc32(data), Bun.hash.crc32(data.subarray(7, 9_000_007)), null, null]);
      }
      if (ep.streamCapacity) expect((await ep.streamCapacity()).streams).toBeGreaterThanOrEqual(1);
    });

    test("abort discards a file being written", async () => {
      const d = await dir();
      const w = await ep.openWrite(`${d}/half`);
      await w.write(new Uint8Array(1000));
      await w.abort();
      expect(await ep.stat(`${d}/half`)).toBeNull();
    });

    test("walk lists parents before children, with odd names and links", async () => {
      const d = await dir();
      const names = ["plain", "with space", "ünïcødé-名前", "new\nline"];
      await ep.mkdir(`${d}/t/sub/deeper`, { recursive: true });
      await ep.mkdir(`${d}/t/empty`);
      for (const nm of names) await writeAll(ep, `${d}/t/sub/${nm}`, new TextEncoder().encode(nm));
      await ep.symlink("sub/plain", `${d}/t/link`);
      const entries = await collect(ep.walk(`${d}/t`));
      const paths = entries.map((e) => e.path);
      expect(new Set(paths)).toEqual(new Set(["sub", "sub/deeper", "empty", "link", ...names.map((nm) => `sub/${nm}`)]));
      expect(paths.indexOf("sub")).toBeLessThan(paths.indexOf("sub/deeper"));
      expect(paths.indexOf("sub")).toBeLessThan(paths.indexOf("sub/plain"));
      const byPath = new Map(entries.map((e) => [e.path, e]));
      expect(byPath.get("link")).toMatchObject({ type: "symlink", linkTarget: "sub/plain" });
      expect(byPath.get("sub/new\nline")).toMatchObject({ type: "file", size: 8 });
      expect(byPath.get("empty")?.type).toBe("dir");
      expect(await collect(ep.walk(`${d}/t/empty`))).toEqual([]);
    });

    test("rename refuses an existing target unless asked to replace", async () => {
      const d = await dir();
      await writeAll(ep, `${d}/a`, new TextEncoder().encode("A"));
      await writeAll(ep, `${d}/b`, new TextEncoder().encode("BB"));
      expect(await codeOf(ep.rename(`${d}/a`, `${d}/b`))).toBe("TARGET_EXISTS");
      await ep.rename(`${d}/a`, `${d}/b`, { replace: true });
      expect(await ep.stat(`${d}/a`)).toBeNull();
      expect((await ep.stat(`${d}/b`))?.size).toBe(1);
      await ep.mkdir(`${d}/folder`);
      await ep.rename(`${d}/folder`, `${d}/moved`);
      expect((await ep.stat(`${d}/moved`))?.type).toBe("dir");
    });

    test("remove files, links, trees; missing is fine; refuses a non-empty folder without recursive", async () => {
      const d = await dir();
      await ep.mkdir(`${d}/tree/a/b`, { recursive: true });
      await writeAll(ep, `${d}/tree/a/b/f`, new Uint8Array(10));
      await ep.symlink("a", `${d}/tree/l`);
      await ep.remove(`${d}/tree/l`);
      expect(await ep.stat(`${d}/tree/l`)).toBeNull();
      expect((await ep.stat(`${d}/tree/a`))?.type).toBe("dir");
      expect(await codeOf(ep.remove(`${d}/tree`))).toBe("TARGET_EXISTS");
      await ep.remove(`${d}/tree`, { recursive: true });
      expect(await ep.stat(`${d}/tree`)).toBeNull();
      await ep.remove(`${d}/never-existed`);
    });

    test("setAttributes sets mtime and permission bits", async () => {
      const d = await dir();
      await writeAll(ep, `${d}/f`, new Uint8Array(5));
      const mtimeMs = Date.UTC(2001, 2, 3, 4, 5, 6);
      await ep.setAttributes(`${d}/f`, { mtimeMs, mode: 0o604 });
      const st = await ep.stat(`${d}/f`);
      expect(st?.mode).toBe(0o604);
      expect(Math.abs((st?.mtimeMs ?? 0) - mtimeMs)).toBeLessThan(1000);
      await ep.mkdir(`${d}/sub`);
      await ep.setAttributes(`${d}/sub`, { mtimeMs });
      expect(Math.abs(((await ep.stat(`${d}/sub`))?.mtimeMs ?? 0) - mtimeMs)).toBeLessThan(1000);
    });

    test("space reports free and total bytes", async () => {
      const d = await dir();
      const s = await ep.space(d);
      expect(s.freeBytes).toBeGreaterThan(0);
      expect(s.totalBytes).toBeGreaterThanOrEqual(s.freeBytes);
      expect((await ep.space(`${d}/not-yet`)).totalBytes).toBe(s.totalBytes);
    });

    test("hashFiles agrees with an in-process hash for every listed algorithm", async () => {
      const d = await dir();
      const files = { [`${d}/one`]: random(5000), [`${d}/two words`]: random(2 * 1024 * 1024 + 3), [`${d}/zero`]: new Uint8Array(0) };
      for (const [p, data] of Object.entries(files)) await writeAll(ep, p, data);
      const caps = await ep.capabilities();
      for (const alg of caps.hashes) {
        const got = await ep.hashFiles(Object.keys(files), alg);
        expect(got.size).toBe(3);
        if (!LOCAL_HASHES.includes(alg)) continue; // cannot recompute here; shape checked above
        for (const [p, data] of Object.entries(files)) {
          const h = createHasher(alg);
          h.update(data);
          expect(got.get(p)).toBe(h.digest());
        }
      }
    });

    test("paths that leave the root are refused with PATH_ESCAPE", async () => {
      const d = await dir();
      expect(await codeOf(ep.stat("../outside"))).toBe("PATH_ESCAPE");
      expect(await codeOf(ep.stat(`${d}/../../x`))).toBe("PATH_ESCAPE");
      expect(await codeOf(ep.stat("/etc/passwd"))).toBe("PATH_ESCAPE");
      expect(await codeOf(ep.mkdir("../made-outside"))).toBe("PATH_ESCAPE");
      await ep.symlink("/", `${d}/abs-out`);
      await ep.symlink("../..", `${d}/rel-out`);
      expect((await ep.stat(`${d}/abs-out`))?.type).toBe("symlink"); // the link itself is inside
      expect(await codeOf(ep.stat(`${d}/abs-out/etc`))).toBe("PATH_ESCAPE");
      expect(await codeOf(readAll(ep, `${d}/abs-out/etc/hostname`))).toBe("PATH_ESCAPE");
      expect(await codeOf(ep.openWrite(`${d}/rel-out/planted`))).toBe("PATH_ESCAPE");
      expect(await codeOf(collect(ep.walk(`${d}/rel-out`)))).toBe("PATH_ESCAPE");
      await ep.symlink("../../dangling-outside", `${d}/dangling`);
      expect(await codeOf(ep.openWrite(`${d}/dangling`))).toBe("PATH_ESCAPE");
    });

    test("unzip unpacks a stored zip and checks CRC-32 (when supported)", async () => {
      if (!(await ep.capabilities()).unzip || ep.unzip === undefined) return;
      const d = await dir();
      const payload = random(200_000);
      payload.set([0x50, 0x4b, 0x03, 0x04, 0x50, 0x4b, 0x01, 0x02], 1000); // zip signatures inside the data
      const zip = zipSync({ "a/b/c.bin": payload, "top.txt": new TextEncoder().encode("hi"), "dir/": new Uint8Array(0) }, { level: 0 });
      await writeAll(ep, `${d}/x.zip`, zip);
      await ep.mkdir(`${d}/out`);
      await ep.unzip(`${d}/x.zip`, `${d}/out`);
      expect(Buffer.compare(await readAll(ep, `${d}/out/a/b/c.bin`), payload)).toBe(0);
      expect((await ep.stat(`${d}/out/dir`))?.type).toBe("dir");
      // Flip one data byte: the unpacker must notice.
      const bad = new Uint8Array(zip);
      const at = Buffer.from(bad).indexOf(Buffer.from(payload.subarray(0, 64)));
      expect(at).toBeGreaterThan(0);
      bad[at + 5000] = (bad[at + 5000] as number) ^ 0xff;
      await writeAll(ep, `${d}/bad.zip`, bad);
      await ep.mkdir(`${d}/out2`);
      expect(await codeOf(ep.unzip(`${d}/bad.zip`, `${d}/out2`))).toBe("VERIFY_FAILED");
    });
  });
}
