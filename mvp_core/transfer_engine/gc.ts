/**
 * Bytes streamed through buffers that become garbage at once, and a full collection every so often.
 *
 * ssh2 allocates fresh buffers for every 32 KiB packet it frames, encrypts or decrypts; JSC let
 * that garbage reach ~280 MiB of RSS on a 1 GiB stream before collecting. A full collection every
 * 128 MiB streamed kept one stream near 180 MiB, but four writer lanes at once reached 252 MiB (the
 * budget is 256), so it ran every 64 MiB. Since local reads reuse their buffer and writers no
 * longer copy big chunks, the garbage is ssh2's alone: every 128 MiB keeps four lanes at 157-173
 * MiB, and every 64 MiB had become the largest cost left on the sender (0 ms, interleaved: 1 GiB
 * 2.00 s against 1.66 s, 20 × 20 MiB 1.04 s against 0.94 s).
 * The zip packer's whole-file reads count too (copy_zip.ts): a fresh buffer per file. An image
 * sequence of 1 MiB frames zipped toward SSH peaks at 450–510 MiB of RSS either way (bench:wan
 * --quick, seq: 507 and 475 MiB counting ssh2's garbage alone, 452 and 462 counting both).
 */
const GC_EVERY_BYTES = 128 * 1024 * 1024;
let streamedSinceGc = 0;

/** Counts bytes streamed and runs a full collection every GC_EVERY_BYTES. */
export function collectGarbageEvery(bytes: number): void {
  streamedSinceGc += bytes;
  if (streamedSinceGc < GC_EVERY_BYTES) return;
  streamedSinceGc = 0;
  Bun.gc(true);
}
