/**
 * A read-rate limit for one job (WORKER_MAX_BYTES_PER_SEC): wraps the job's source endpoint so
 * every stream read from it, together, stays under the rate. Footage transfers otherwise fill a
 * shared link; the wrapper keeps the limit out of the engine, which stays a pure transfer library.
 */
import type { Endpoint, OpOptions } from "../transfer_engine/endpoints/endpoint.ts";
import { TransferError } from "../transfer_engine/errors.ts";

/** Returns `endpoint` limited to `bytesPerSec` of reads in total (unchanged when bytesPerSec is 0). */
export function limitReadRate(endpoint: Endpoint, bytesPerSec: number): Endpoint {
  if (bytesPerSec <= 0) return endpoint;
  const pace = new Pacer(bytesPerSec);
  const limited: Endpoint = {
    kind: endpoint.kind,
    label: endpoint.label,
    stat: (p, o) => endpoint.stat(p, o),
    walk: (p, o) => endpoint.walk(p, o),
    openRead: (p, o) => pace.stream(endpoint.openRead(p, o), o),
    openWrite: (p, o) => endpoint.openWrite(p, o),
    mkdir: (p, o) => endpoint.mkdir(p, o),
    symlink: (t, p, o) => endpoint.symlink(t, p, o),
    setAttributes: (p, a, o) => endpoint.setAttributes(p, a, o),
    rename: (f, t, o) => endpoint.rename(f, t, o),
    remove: (p, o) => endpoint.remove(p, o),
    space: (p, o) => endpoint.space(p, o),
    capabilities: (o) => endpoint.capabilities(o),
    hashFiles: (ps, a, o) => endpoint.hashFiles(ps, a, o),
    close: () => endpoint.close(),
  };
  if (endpoint.unzip) limited.unzip = endpoint.unzip.bind(endpoint);
  if (endpoint.packZip) {
    const packZip = endpoint.packZip.bind(endpoint);
    limited.packZip = (p, o) => pace.stream(packZip(p, o), o);
  }
  return limited;
}

/** Shares one byte budget between all streams of a job. */
class Pacer {
  private readonly startedAt = performance.now();
  private bytes = 0;

  constructor(private readonly bytesPerSec: number) {}

  async *stream(source: AsyncIterable<Uint8Array>, opts: OpOptions | undefined): AsyncIterable<Uint8Array> {
    for await (const chunk of source) {
      yield chunk;
      this.bytes += chunk.byteLength;
      const aheadMs = (this.bytes / this.bytesPerSec) * 1000 - (performance.now() - this.startedAt);
      if (aheadMs > 0) await sleep(aheadMs, opts?.signal);
    }
  }
}

function sleep(msToWait: number, signal: AbortSignal | undefined): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(new TransferError("CANCELLED", "transfer cancelled"));
    const onAbort = () => {
      clearTimeout(timer);
      reject(new TransferError("CANCELLED", "transfer cancelled"));
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener("abort", onAbort);
      resolve();
    }, msToWait);
    signal?.addEventListener("abort", onAbort, { once: true });
  });
}
