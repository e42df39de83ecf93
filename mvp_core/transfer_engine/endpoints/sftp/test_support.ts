/** Helpers shared by the SSH adapter's tests (used by *.test.ts and the dying-server child only). */
import fs from "node:fs";
import path from "node:path";
import { Zip, ZipPassThrough } from "fflate";
import type { TestSshd } from "../../../testing/sshd.ts";
import type { Endpoint } from "../endpoint.ts";
import { withOverrides } from "../testing.ts";
import type { SshTarget } from "./index.ts";

/** Where and how to reach the test sshd (key login, pinned key), rooted at `root` (default: its root). */
export function targetOf(s: TestSshd, root = s.root): SshTarget {
  return { host: s.host, port: s.port, username: s.username, root, auth: { method: "key", privateKey: s.privateKey }, hostKeyFingerprint: s.hostKeyFingerprint };
}

/** Files written by root for the remote side must belong to the sshd user, as they would in reality. */
export function chownTree(root: string, s: TestSshd): void {
  if (process.getuid?.() !== 0) return;
  Bun.spawnSync(["chown", "-R", "-h", `${s.username}:`, root]);
}

/** Type, mode, exact mtime and content hash of every entry below `root` (a link as its text). */
export function exactSnapshot(root: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const rel of (fs.readdirSync(root, { recursive: true }) as string[]).sort()) {
    const abs = path.join(root, rel);
    const st = fs.lstatSync(abs);
    const meta = `${(st.mode & 0o7777).toString(8)} ${st.mtimeMs}`;
    out[rel] = st.isSymbolicLink() ? `link ${fs.readlinkSync(abs)}` : st.isFile() ? `file ${meta} ${Bun.hash(fs.readFileSync(abs))}` : `dir ${meta}`;
  }
  return out;
}

/** A stored zip as the engine sends it (fflate, Unix origin, data descriptors); `mode` also sets each entry's permission bits. */
export function storedZip(files: Iterable<[string, Uint8Array | string]>, mode?: number): Uint8Array {
  const parts: Uint8Array[] = [];
  const z = new Zip((err, c) => {
    if (err) throw err;
    parts.push(c);
  });
  for (const [name, data] of files) {
    const e = new ZipPassThrough(name);
    e.os = 3;
    if (mode !== undefined) e.attrs = (0o100000 | mode) << 16;
    z.add(e);
    e.push(typeof data === "string" ? new TextEncoder().encode(data) : data, true);
  }
  z.end();
  return Buffer.concat(parts);
}

/**
 * `ep` with `onBytes` awaited for every chunk going through its reads (openRead, readWhole: a
 * source) or its writes (openWrite: a target), before the chunk moves on: a test stops or changes
 * the world at a chosen point of a transfer.
 */
export function metered(ep: Endpoint, side: "reads" | "writes", onBytes: (n: number) => void | Promise<void>): Endpoint {
  if (side === "reads") {
    return withOverrides(ep, {
      async *openRead(p, opts) {
        for await (const chunk of ep.openRead(p, opts)) {
          await onBytes(chunk.length);
          yield chunk;
        }
      },
      async readWhole(p, expected, opts) {
        const bytes = await ep.readWhole!(p, expected, opts);
        await onBytes(bytes.length);
        return bytes;
      },
    });
  }
  return withOverrides(ep, {
    async openWrite(p, opts) {
      const w = await ep.openWrite(p, opts);
      return {
        write: async (chunk) => {
          await onBytes(chunk.length);
          await w.write(chunk);
        },
        close: () => w.close(),
        abort: () => w.abort(),
      };
    },
  });
}
