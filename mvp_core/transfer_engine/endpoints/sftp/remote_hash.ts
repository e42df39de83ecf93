/**
 * Hashes of remote files, computed next to the data: CRC-32s the remote already computed while
 * writing (crc_records.ts), one remote command per batch for the rest, and — on a host without a
 * shell — the files read back over SFTP and hashed here.
 */
import type { HashAlgorithm, OpOptions } from "../endpoint.ts";
import { TransferError } from "../../errors.ts";
import { LOCAL_HASHES, createHasher } from "../../hash.ts";
import { normalizeRel, parentRel } from "../../paths.ts";
import { runPool } from "../../pool.ts";
import { openRead } from "./file_read.ts";
import type { RemoteHost } from "./remote_host.ts";
import { commandError, hashCommand, parseHashOutput, remoteHashes } from "./remote_shell.ts";

/** Hashes the host computes locally for a remote without a shell (read back over SFTP). */
export const READBACK_HASHES = LOCAL_HASHES;
/** Files read back at once without a shell. */
const READBACK_CONCURRENCY = 4;

/** Hashes of many files at once (hex), keyed by the given paths. */
export function hashFiles(host: RemoteHost, paths: readonly string[], algorithm: HashAlgorithm, opts: OpOptions = {}): Promise<Map<string, string>> {
  return host.op(paths[0] ?? "", "hash", opts.signal, async () => {
    const rels = paths.map(normalizeRel);
    // A remote source's 10,000 files sit in ~100 folders: one by one, that was 2 s at 20 ms RTT.
    await host.guard.ensureSafeDirs(rels.map(parentRel));
    const t = await host.tools(opts.signal);
    const result = new Map<string, string>();
    const rest: number[] = [];
    rels.forEach((r, i) => {
      // Files we streamed were hashed by the remote as it wrote them; hash only the others.
      const known = algorithm === "crc32" ? host.crc.get(host.guard.abs(r)) : undefined;
      if (known) result.set(paths[i]!, known.crc32);
      else rest.push(i);
    });
    if (!rest.length) return result;
    const todo = { paths: rest.map((i) => paths[i]!), rels: rest.map((i) => rels[i]!) };
    let more: Map<string, string>;
    if (remoteHashes(t).includes(algorithm)) more = await hashRemote(host, todo.paths, todo.rels, algorithm, opts.signal);
    else if (READBACK_HASHES.includes(algorithm)) more = await hashReadBack(host, todo.paths, todo.rels, algorithm, opts.signal);
    else throw new TransferError("UNSUPPORTED", `${host.label} cannot hash with ${algorithm}`);
    for (const [p, h] of more) result.set(p, h);
    return result;
  });
}

/** One remote command hashes every file: NUL-separated names in, "hash  name\0" out. */
async function hashRemote(host: RemoteHost, paths: readonly string[], rels: readonly string[], algorithm: HashAlgorithm, signal?: AbortSignal): Promise<Map<string, string>> {
  const t = await host.tools(signal);
  const stdin = new TextEncoder().encode(rels.map((r) => `${r}\0`).join(""));
  const r = await host.run(hashCommand(t, host.root, algorithm), { stdin, signal });
  if (r.code !== 0) throw commandError("hash", rels[0] ?? "", r.code, r.stderr);
  const byRel = parseHashOutput(r.stdout);
  const result = new Map<string, string>();
  paths.forEach((p, i) => {
    const h = byRel.get(rels[i]!);
    if (h === undefined) throw new TransferError("REMOTE_COMMAND_FAILED", `hash ${JSON.stringify(p)}: no hash in the remote output`);
    result.set(p, h);
  });
  return result;
}

/** Without a shell: read every file back over SFTP and hash here, a few files at a time. */
async function hashReadBack(host: RemoteHost, paths: readonly string[], rels: readonly string[], algorithm: HashAlgorithm, signal?: AbortSignal): Promise<Map<string, string>> {
  const result = new Map<string, string>();
  await runPool(paths.map((p, i) => ({ p, rel: rels[i]! })), READBACK_CONCURRENCY, async ({ p, rel }) => {
    const h = createHasher(algorithm);
    for await (const chunk of openRead(host, rel, { signal })) h.update(chunk);
    result.set(p, h.digest());
  });
  return result;
}
