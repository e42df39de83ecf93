/**
 * What the SSH endpoint offers for several streams per file: the CRC-32 of byte ranges computed
 * next to the data (one rooted command for all of them, for a resumed transfer's re-check), and how
 * many streams the endpoint carries at once (its connection pool, the link's round trip).
 */
import type { FileRange, OpOptions, StreamCapacity } from "../endpoint.ts";
import { normalizeRel, parentRel } from "../../paths.ts";
import type { RemoteHost } from "./remote_host.ts";
import { commandError, crcRangesCommand, crcRangesInput, parseCrcRanges, rooted } from "./remote_shell.ts";

/** CRC-32 of each range (null: the file does not hold it in full), recorded for the verification. */
export function crcRanges(host: RemoteHost, ranges: readonly FileRange[], opts: OpOptions = {}): Promise<(number | null)[]> {
  return host.op(ranges[0]?.path ?? "", "hash", opts.signal, async () => {
    if (ranges.length === 0) return [];
    const rels = ranges.map((r) => ({ rel: normalizeRel(r.path), offset: r.offset, length: r.length }));
    await host.guard.ensureSafeDirs(rels.map((r) => parentRel(r.rel)));
    const r = await host.run(crcRangesCommand(host.root), { stdin: crcRangesInput(rels), signal: opts.signal });
    if (r.code !== 0) throw commandError("hash", rels[0]!.rel, r.code, r.stderr);
    const crcs = parseCrcRanges(r.stdout, rels.length);
    rels.forEach((x, i) => {
      const c = crcs[i];
      if (c !== null && c !== undefined) host.recordRange(host.guard.abs(x.rel), x.offset, { crc32: c.toString(16).padStart(8, "0"), size: x.length });
    });
    return crcs;
  });
}

/** The streams the endpoint carries well at once, and why. */
export async function streamCapacity(host: RemoteHost, opts: OpOptions = {}): Promise<StreamCapacity> {
  const t = await host.tools(opts.signal);
  if (!rooted(t)) return { streams: 1, why: "the host runs no Ketter programs (no shell or no perl): one SFTP stream per file" };
  const rtt = host.conn.rttMs;
  const refused = host.pool.refusal === null ? "" : `; ${host.pool.refusal}`;
  const { maxConnections, streamsPerConnection } = host.pool.shape;
  return { streams: host.pool.capacity, why: `round trip ${rtt === null ? "unknown" : `${rtt.toFixed(1)} ms`}: up to ${maxConnections} connections × ${streamsPerConnection} streams${refused}` };
}
