import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import fs from "node:fs";
import path from "node:path";
import { describeEndpointConformance } from "../conformance.ts";
import { isTransferError } from "../../errors.ts";
import { startSshd, type TestSshd } from "../../../testing/sshd.ts";
import { connectSsh, type SshTarget } from "./index.ts";
import type { SftpEndpoint } from "./sftp_endpoint.ts";

/** Real sshd, real processes, a loaded 2-core machine: generous per-test limits (no timing is asserted). */
const TIMEOUT_MS = 120_000;

function targetOf(s: TestSshd): SshTarget {
  return { host: s.host, port: s.port, username: s.username, root: s.root, auth: { method: "key", privateKey: s.privateKey }, hostKeyFingerprint: s.hostKeyFingerprint };
}

/** A real sshd and an endpoint connected to it for the enclosing describe block, stopped after it. */
function withConnectedSshd(use: (s: TestSshd, ep: SftpEndpoint) => void): void {
  let s: TestSshd;
  let ep: SftpEndpoint;
  beforeAll(async () => {
    s = await startSshd();
    ep = await connectSsh(targetOf(s));
    use(s, ep);
  }, TIMEOUT_MS);
  afterAll(async () => {
    await ep.close();
    await s.stop();
  }, TIMEOUT_MS);
}

async function codeOf(p: Promise<unknown>): Promise<string> {
  try {
    await p;
  } catch (err) {
    return isTransferError(err) ? err.code : `not a TransferError: ${String(err)}`;
  }
  return "resolved";
}

async function readAll(ep: SftpEndpoint, path: string): Promise<Buffer> {
  const parts: Uint8Array[] = [];
  for await (const c of ep.openRead(path)) parts.push(c);
  return Buffer.concat(parts);
}

// The same suite as LocalEndpoint, against a real sshd: with a shell (exec streams, remote hashing,
// unzip) and SFTP-only (no shell: read-back hashing, no unzip).
describeEndpointConformance("SftpEndpoint (shell)", async () => {
  const s = await startSshd();
  return { endpoint: await connectSsh(targetOf(s)), cleanup: () => s.stop() };
});

describeEndpointConformance("SftpEndpoint (SFTP only)", async () => {
  const s = await startSshd({ sftpOnly: true });
  return { endpoint: await connectSsh(targetOf(s)), cleanup: () => s.stop() };
});

describe("SftpEndpoint specifics", () => {
  let s: TestSshd;
  let ep: SftpEndpoint;
  let n = 0;
  const dir = async (): Promise<string> => {
    const d = `case-${++n}`;
    await ep.mkdir(d);
    return d;
  };

  withConnectedSshd((sshd, endpoint) => {
    s = sshd;
    ep = endpoint;
  });

  test("a big file goes over an exec stream and keeps its bytes, mode and offset reads", async () => {
    const d = await dir();
    const data = new Uint8Array(9 * 1024 * 1024 + 5);
    for (let off = 0; off < data.length; off += 65536) crypto.getRandomValues(data.subarray(off, Math.min(data.length, off + 65536)));
    const w = await ep.openWrite(`${d}/big`, { size: data.length, mode: 0o600 });
    // Tiny writes, like fflate's: the writer must batch them.
    for (let off = 0; off < data.length; off += 1000) await w.write(data.subarray(off, off + 1000));
    await w.close();
    expect(await ep.stat(`${d}/big`)).toMatchObject({ size: data.length, mode: 0o600 });
    // The remote hashed it while writing; after a rename the record follows the file.
    const crc = (Bun.hash.crc32(data) >>> 0).toString(16).padStart(8, "0");
    expect((await ep.hashFiles([`${d}/big`], "crc32")).get(`${d}/big`)).toBe(crc);
    await ep.rename(`${d}/big`, `${d}/big2`);
    await ep.rename(`${d}/big2`, `${d}/big`);
    expect((await ep.hashFiles([`${d}/big`], "crc32")).get(`${d}/big`)).toBe(crc);
    expect(Buffer.compare(await readAll(ep, `${d}/big`), data)).toBe(0);
    const tail: Uint8Array[] = [];
    for await (const c of ep.openRead(`${d}/big`, { start: 5 * 1024 * 1024 })) tail.push(c);
    expect(Buffer.compare(Buffer.concat(tail), data.subarray(5 * 1024 * 1024))).toBe(0);
  }, TIMEOUT_MS);

  test("a bulk read's wider receive window still holds the remote sender back when the reader stalls", async () => {
    const d = await dir();
    const size = 64 * 1024 * 1024;
    // Written straight into the sshd's folder (same machine): content is what matters here.
    const file = path.join(s.root, d, "huge");
    const block = new Uint8Array(1024 * 1024);
    crypto.getRandomValues(block.subarray(0, 65536));
    const fd = fs.openSync(file, "w");
    for (let i = 0; i < size / block.length; i++) {
      block[65536] = i;
      fs.writeSync(fd, block);
    }
    fs.closeSync(fd);
    Bun.spawnSync(["chown", `${s.username}:`, file]);
    const senderAlive = (): boolean => Bun.spawnSync(["pgrep", "-f", `cat -- ${file}`]).exitCode === 0;
    const it = ep.openRead(`${d}/huge`)[Symbol.asyncIterator]();
    const hash = new Bun.CryptoHasher("sha256");
    let got = 0;
    const first = await it.next();
    got += (first.value as Uint8Array).length;
    hash.update(first.value as Uint8Array);
    await Bun.sleep(1500); // the reader stalls: the window (8 MiB) and the queue (8 MiB) fill, then `cat` must block
    expect(senderAlive()).toBe(true);
    for (let r = await it.next(); !r.done; r = await it.next()) {
      got += r.value.length;
      hash.update(r.value);
    }
    expect(got).toBe(size);
    expect(hash.digest("hex")).toBe(new Bun.CryptoHasher("sha256").update(fs.readFileSync(file)).digest("hex"));
    fs.rmSync(file);
  }, TIMEOUT_MS);

  test("remote paths with quotes, spaces and newlines survive shell commands", async () => {
    const d = await dir();
    const odd = `${d}/it's a "test" $(rm -rf x) \`y\`\nz`;
    await ep.mkdir(odd);
    const w = await ep.openWrite(`${odd}/f'1`);
    await w.write(new TextEncoder().encode("hello"));
    await w.close();
    const h = await ep.hashFiles([`${odd}/f'1`], "sha256");
    expect(h.get(`${odd}/f'1`)).toBe(new Bun.CryptoHasher("sha256").update("hello").digest("hex"));
    await ep.remove(odd, { recursive: true });
    expect(await ep.stat(odd)).toBeNull();
  }, TIMEOUT_MS);

  test("packZip streams a stored zip of a remote folder that unzip accepts", async () => {
    const d = await dir();
    await ep.mkdir(`${d}/src/sub`, { recursive: true });
    for (const [p, t] of [["a.txt", "A"], ["sub/b c.txt", "BC"]] as const) {
      const w = await ep.openWrite(`${d}/src/${p}`);
      await w.write(new TextEncoder().encode(t));
      await w.close();
    }
    const parts: Uint8Array[] = [];
    for await (const c of ep.packZip!(`${d}/src`)) parts.push(c);
    const zip = Buffer.concat(parts);
    const w = await ep.openWrite(`${d}/copy.zip`);
    await w.write(zip);
    await w.close();
    await ep.mkdir(`${d}/out`);
    await ep.unzip!(`${d}/copy.zip`, `${d}/out`);
    expect((await readAll(ep, `${d}/out/sub/b c.txt`)).toString()).toBe("BC");
    const empty: Uint8Array[] = [];
    await ep.mkdir(`${d}/nothing`);
    for await (const c of ep.packZip!(`${d}/nothing`)) empty.push(c);
    expect(Buffer.concat(empty).subarray(0, 4)).toEqual(Buffer.from([0x50, 0x4b, 0x05, 0x06]));
  }, TIMEOUT_MS);

  test("writing into a read-only folder is PERMISSION_DENIED", async () => {
    const d = await dir();
    await ep.mkdir(`${d}/ro`, { mode: 0o555 });
    expect(await codeOf(ep.openWrite(`${d}/ro/f`, { size: 10 }))).toBe("PERMISSION_DENIED");
    const err = await ep.openWrite(`${d}/ro/g`).then(async (w) => {
      await w.write(new Uint8Array(10));
      await w.close();
    }).then(() => null, (e: unknown) => e);
    expect(isTransferError(err) && err.code).toBe("PERMISSION_DENIED");
  }, TIMEOUT_MS);

  test("a full remote disk is NO_SPACE on both write paths, and abort leaves nothing behind", async () => {
    if (process.getuid?.() !== 0) return; // mounting a small tmpfs needs root
    await s.mountSmallDisk("small", 2 * 1024 * 1024);
    const chunk = new Uint8Array(256 * 1024);
    for (const size of [undefined, 1000]) { // unknown size: exec stream; small hint: SFTP
      const w = await ep.openWrite(`small/f-${size}`, size === undefined ? {} : { size });
      const err = await (async () => {
        for (let i = 0; i < 16; i++) await w.write(chunk);
        await w.close();
      })().then(() => null, (e: unknown) => e);
      expect(isTransferError(err) && err.code).toBe("NO_SPACE");
      await w.abort();
      expect(await ep.stat(`small/f-${size}`)).toBeNull();
    }
  }, TIMEOUT_MS);
});

describe("writer lanes (big files of known size)", () => {
  let s: TestSshd;
  let ep: SftpEndpoint;
  const MiB = 1024 * 1024;
  const bytes = (n: number, seed: number): Uint8Array => {
    const b = new Uint8Array(n);
    for (let i = 0; i < n; i += 4096) b[i] = (i / 4096 + seed) & 0xff;
    return b;
  };
  const put = async (p: string, data: Uint8Array, opts: { mode?: number } = {}): Promise<void> => {
    const w = await ep.openWrite(p, { size: data.length, ...opts });
    for (let off = 0; off < data.length; off += 1_000_000) await w.write(data.subarray(off, off + 1_000_000));
    await w.close();
  };
  /** Perl processes of the test user: the lanes alive on the remote. */
  const lanesAlive = (): number => {
    const r = Bun.spawnSync(["pgrep", "-u", s.username, "-f", "perl -e"]);
    return r.stdout.toString().trim().split("\n").filter(Boolean).length;
  };

  withConnectedSshd((sshd, endpoint) => {
    s = sshd;
    ep = endpoint;
  });

  test("files written one after another reuse one remote process, bytes, mode and CRC records intact", async () => {
    await ep.mkdir("seq");
    const files = [bytes(5 * MiB, 1), bytes(4 * MiB, 2), bytes(6 * MiB + 7, 3)];
    for (const [i, f] of files.entries()) await put(`seq/f${i}`, f, { mode: 0o640 });
    expect(lanesAlive()).toBe(1); // the lane stays for the next file; one process served all three
    for (const [i, f] of files.entries()) {
      expect(Buffer.compare(await readAll(ep, `seq/f${i}`), Buffer.from(f))).toBe(0);
      expect((await ep.stat(`seq/f${i}`))?.mode! & 0o777).toBe(0o640);
    }
    const hashes = await ep.hashFiles(files.map((_, i) => `seq/f${i}`), "crc32");
    for (const [i, f] of files.entries()) expect(hashes.get(`seq/f${i}`)).toBe((Bun.hash.crc32(f) >>> 0).toString(16).padStart(8, "0"));
  }, TIMEOUT_MS);

  test("a file that delivers fewer or more bytes than announced is SOURCE_CHANGED; abort leaves nothing and the next file works", async () => {
    await ep.mkdir("short");
    const w = await ep.openWrite("short/a", { size: 5 * MiB });
    await w.write(bytes(MiB, 4));
    expect(await codeOf(w.close())).toBe("SOURCE_CHANGED");
    await w.abort();
    expect(await ep.stat("short/a")).toBeNull();
    const w2 = await ep.openWrite("short/b", { size: 4 * MiB });
    expect(await codeOf(w2.write(bytes(4 * MiB + 1, 5)))).toBe("SOURCE_CHANGED");
    await w2.abort();
    expect(await ep.stat("short/b")).toBeNull();
    const ok = bytes(4 * MiB, 6);
    await put("short/c", ok);
    expect(Buffer.compare(await readAll(ep, "short/c"), Buffer.from(ok))).toBe(0);
  }, TIMEOUT_MS);

  test("idle lanes give their session back when other commands need one (no deadlock at MaxSessions)", async () => {
    await ep.mkdir("many");
    // Six files at once: six lanes, every exec slot taken; once closed they sit idle.
    const data = bytes(4 * MiB, 7);
    await Promise.all(Array.from({ length: 6 }, (_, i) => put(`many/f${i}`, data)));
    // These need exec channels of their own: idle lanes must be ended to make room.
    const walked: string[] = [];
    for await (const e of ep.walk("many")) walked.push(e.path);
    expect(walked.sort()).toEqual(Array.from({ length: 6 }, (_, i) => `f${i}`));
    const h = await ep.hashFiles(["many/f0"], "sha256");
    expect(h.get("many/f0")).toBe(new Bun.CryptoHasher("sha256").update(data).digest("hex"));
  }, TIMEOUT_MS);
});

describe("streaming unpacker (zip unpacked as it arrives)", () => {
  let s: TestSshd;
  let ep: SftpEndpoint;

  withConnectedSshd((sshd, endpoint) => {
    s = sshd;
    ep = endpoint;
  });

  /** A stored zip exactly as the engine packs it (fflate: data descriptors after each entry). */
  async function pack(files: [string, Uint8Array][]): Promise<Uint8Array> {
    const { Zip, ZipPassThrough } = await import("fflate");
    const parts: Uint8Array[] = [];
    const z = new Zip((err, c) => {
      if (err) throw err;
      parts.push(c);
    });
    for (const [n, data] of files) {
      const e = new ZipPassThrough(n);
      e.os = 3;
      z.add(e);
      e.push(data, true);
    }
    z.end();
    return Buffer.concat(parts);
  }
  const send = async (into: string, files: [string, Uint8Array][], zip: Uint8Array, entries = files.map(([, d]) => ({ size: d.length }))): Promise<void> => {
    const w = await ep.unzipStream!(into, entries);
    try {
      // Odd chunk sizes: entry boundaries fall anywhere inside a write.
      for (let off = 0; off < zip.length; off += 777) await w.write(zip.subarray(off, off + 777));
      await w.close();
    } catch (err) {
      await w.abort();
      throw err;
    }
  };

  test("odd names, empty and random files land exactly, with their modes and mtimes, and CRC records", async () => {
    const random = crypto.getRandomValues(new Uint8Array(65536)); // stored random data is where signature scanning fails
    const files: [string, Uint8Array][] = [
      ["with space/ünïcødé 名前.txt", new TextEncoder().encode("a")],
      ["it's\nnewline", new Uint8Array(0)],
      ["sub/deeper/random.bin", random],
      ["sub/other.bin", new Uint8Array(300_000).fill(7)],
    ];
    await ep.mkdir("s1");
    const mtimeMs = Date.UTC(2020, 1, 3, 4, 5, 6, 789);
    await send("s1", files, await pack(files), files.map(([, d], i) => ({ size: d.length, mode: i === 0 ? 0o600 : 0o644, mtimeMs })));
    for (const [n, d] of files) {
      expect(Buffer.compare(await readAll(ep, `s1/${n}`), Buffer.from(d))).toBe(0);
      const st = await ep.stat(`s1/${n}`);
      expect(st?.mtimeMs).toBe(Math.floor(mtimeMs / 1000) * 1000); // SFTP v3 reports whole seconds
    }
    expect((await ep.stat(`s1/${files[0]![0]}`))?.mode! & 0o777).toBe(0o600);
    const hashes = await ep.hashFiles(files.map(([n]) => `s1/${n}`), "crc32");
    for (const [n, d] of files) expect(hashes.get(`s1/${n}`)).toBe((Bun.hash.crc32(d) >>> 0).toString(16).padStart(8, "0"));
  }, TIMEOUT_MS);

  test("corruption is VERIFY_FAILED, a wrong size list is VERIFY_FAILED, '..' is PATH_ESCAPE, a cut stream fails", async () => {
    const files: [string, Uint8Array][] = [["a.txt", new TextEncoder().encode("content of a")], ["b.txt", new TextEncoder().encode("content of b")]];
    const zip = await pack(files);
    const bad = new Uint8Array(zip);
    bad[Buffer.from(bad).indexOf("content of b") + 3]! ^= 0xff;
    await ep.mkdir("s2");
    expect(await codeOf(send("s2", files, bad))).toBe("VERIFY_FAILED");
    await ep.mkdir("s3");
    expect(await codeOf(send("s3", files, zip, [{ size: 12 }, { size: 11 }]))).toBe("VERIFY_FAILED");
    await ep.mkdir("s4");
    const evil: [string, Uint8Array][] = [["../escaped.txt", new Uint8Array(1)]];
    expect(await codeOf(send("s4", evil, await pack(evil)))).toBe("PATH_ESCAPE");
    expect(await ep.stat("escaped.txt")).toBeNull();
    await ep.mkdir("s5");
    expect(await codeOf(send("s5", files, zip.subarray(0, zip.length - 30)))).toBe("VERIFY_FAILED");
  }, TIMEOUT_MS);
});

describe("remote unpackers", () => {
  // Perl (parallel, preferred) and Info-ZIP unzip (when perl is missing) must behave the same.
  for (const [name, hide] of [["perl", ["unzip"]], ["Info-ZIP unzip", ["perl"]]] as const) {
    test(`${name}: odd names unpacked exactly, corruption is VERIFY_FAILED, ".." is refused`, async () => {
      const s = await startSshd({ hideCommands: hide });
      const ep = await connectSsh(targetOf(s));
      try {
        expect((await ep.capabilities()).unzip).toBe(true);
        const { Zip, ZipPassThrough } = await import("fflate");
        const pack = (files: Record<string, Uint8Array>): Uint8Array => {
          const parts: Uint8Array[] = [];
          const z = new Zip((err, c) => {
            if (err) throw err;
            parts.push(c);
          });
          for (const [n, data] of Object.entries(files)) {
            const e = new ZipPassThrough(n);
            e.os = 3; // as the engine writes them
            e.attrs = 0o100644 << 16;
            z.add(e);
            e.push(data, true);
          }
          z.end();
          return Buffer.concat(parts);
        };
        const names = ["with space/ünïcødé 名前.txt", "it's\nnewline", "sub/deeper/x.bin"];
        const zip = pack(Object.fromEntries(names.map((n) => [n, new TextEncoder().encode(`content of ${n}`)])));
        const put = async (p: string, data: Uint8Array): Promise<void> => {
          const w = await ep.openWrite(p);
          await w.write(data);
          await w.close();
        };
        await put("a.zip", zip);
        await ep.mkdir("out");
        await ep.unzip!("a.zip", "out");
        for (const n of names) expect((await readAll(ep, `out/${n}`)).toString()).toBe(`content of ${n}`);
        const bad = new Uint8Array(zip);
        const at = Buffer.from(bad).indexOf("content of sub");
        bad[at + 3] = (bad[at + 3] as number) ^ 0xff;
        await put("bad.zip", bad);
        await ep.mkdir("out2");
        expect(await codeOf(ep.unzip!("bad.zip", "out2"))).toBe("VERIFY_FAILED");
        if (name === "perl") {
          // Info-ZIP silently strips "../"; the perl unpacker refuses the archive.
          await put("evil.zip", pack({ "../escaped.txt": new Uint8Array(1) }));
          await ep.mkdir("out3");
          expect(await codeOf(ep.unzip!("evil.zip", "out3"))).toBe("PATH_ESCAPE");
          expect(await ep.stat("escaped.txt")).toBeNull();
        }
      } finally {
        await ep.close();
        await s.stop();
      }
    }, TIMEOUT_MS);
  }
});
