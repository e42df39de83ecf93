/**
 * Helper thread (mhl_build.ts): builds one ASC MHL generation off the engine's thread. Building a
 * 10,000-file generation is ~0.2 s of synchronous work (directory hashes, XML, C4); here it neither
 * holds up the engine's event loop (lease renewal, I/O) nor waits for it, and it runs while the
 * destination is being verified.
 */
import { type GenerationInput, type MhlHistory, MhlError, buildGeneration } from "../../mhl/index.ts";

/** What the engine's thread sends. */
export interface BuildRequest {
  input: GenerationInput;
  history: MhlHistory | null;
}

declare const self: Worker;

self.onmessage = async (e: MessageEvent<BuildRequest>) => {
  try {
    const gen = await buildGeneration(e.data.input, e.data.history);
    self.postMessage({ ok: true, gen }, gen.writes.map((w) => w.bytes.buffer as ArrayBuffer));
  } catch (err) {
    const error = err instanceof MhlError ? { mhl: true, code: err.code, message: err.message, details: err.details ?? {} } : { mhl: false, message: err instanceof Error ? err.message : String(err) };
    self.postMessage({ ok: false, error });
  }
};
