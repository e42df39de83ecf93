/** Writing a small file the engine makes itself (the progress journal, an ASC MHL manifest) whole, through any endpoint. */
import type { Endpoint, WriteOptions } from "../endpoints/endpoint.ts";

/** Writes `bytes` as the whole of `path`; a failed write leaves nothing under that name. */
export async function writeBytes(ep: Endpoint, path: string, bytes: Uint8Array, opts: WriteOptions): Promise<void> {
  const w = await ep.openWrite(path, { ...opts, size: bytes.length });
  try {
    await w.write(bytes);
    await w.close();
  } catch (err) {
    await w.abort();
    throw err;
  }
}
