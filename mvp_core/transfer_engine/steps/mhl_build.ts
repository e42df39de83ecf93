/**
 * Builds an ASC MHL generation (mvp_core/mhl buildGeneration): for a big job on a helper thread
 * (mhl_build_thread.ts), so the engine's thread stays responsive and the build overlaps the
 * destination's verification; for a small one, or where the thread cannot start (the engine CLI's
 * single-file bundle carries no separate thread file), here.
 */
import type { GenerationInput, GenerationResult, MhlHistory } from "../../mhl/index.ts";
import { TransferError } from "../errors.ts";
import type { BuildRequest } from "./mhl_build_thread.ts";

/** From this many files a generation is built on the helper thread (starting it costs ~50 ms). */
const THREAD_FILES = 1000;

type Reply = { ok: true; gen: GenerationResult } | { ok: false; error: { mhl: boolean; code?: string; message: string; details?: Record<string, unknown> } };

/** buildGeneration(input, history), off this thread for big inputs; library errors become TransferErrors saying what cannot be recorded. */
export async function buildAside(input: GenerationInput, history: MhlHistory | null): Promise<GenerationResult> {
  const reply = input.files.length >= THREAD_FILES ? await onThread({ input, history }) : null;
  if (reply === null) return here(input, history);
  if (reply.ok) return reply.gen;
  if (reply.error.mhl) throw cannotRecord(reply.error.message, reply.error.details ?? {});
  throw new Error(`the ASC MHL helper thread failed: ${reply.error.message}`);
}

async function here(input: GenerationInput, history: MhlHistory | null): Promise<GenerationResult> {
  const mhl = await import("../../mhl/index.ts");
  try {
    return await mhl.buildGeneration(input, history);
  } catch (err) {
    if (err instanceof mhl.MhlError) throw cannotRecord(err.message, err.details ?? {});
    throw err;
  }
}

/** The helper thread's answer, or null when it could not start (the caller builds here instead). */
function onThread(req: BuildRequest): Promise<Reply | null> {
  return new Promise((resolve) => {
    let worker: Worker;
    try {
      worker = new Worker(new URL("./mhl_build_thread.ts", import.meta.url).href);
    } catch {
      resolve(null);
      return;
    }
    let heard = false;
    worker.onmessage = (m: MessageEvent<Reply>) => {
      heard = true;
      worker.terminate();
      resolve(m.data);
    };
    // Could not start (or died before answering): build here; the library is deterministic.
    worker.onerror = () => {
      if (heard) return;
      worker.terminate();
      resolve(null);
    };
    worker.postMessage(req);
  });
}

function cannotRecord(message: string, details: Record<string, unknown>): TransferError {
  return new TransferError("UNSUPPORTED", `the ASC MHL generation cannot be written: ${message}`, { details });
}
