/**
 * `bun run engine`: copies or moves files and folders with the transfer engine, locally or to and
 * from an SSH host.
 *
 * Start-up is part of every CLI transfer, and most of it was Bun resolving and compiling ~40
 * modules (the engine's and zod's): measured 45 ms for `--help` from sources against 28 ms for the
 * same code as one bundled file (`bun -e 1`: 7 ms). So this file only finds (or builds, once per
 * change of any input) a single-file bundle of main.ts and runs it; see bundle.ts.
 * KETTER_ENGINE_BUNDLE=0 runs the sources directly (stack traces point at them).
 */
import path from "node:path";
import { bundledEntry } from "./bundle.ts";

const main = path.join(import.meta.dir, "main.ts");
let entry = main;
if (process.env.KETTER_ENGINE_BUNDLE !== "0") {
  try {
    entry = await bundledEntry(main, path.join(import.meta.dir, "../../../node_modules/.cache/ketter-engine-cli"));
  } catch (err) {
    // Not fatal: the sources are the same program, only slower to start. If the cause is in the
    // sources themselves (a syntax error), importing them below reports it properly.
    process.stderr.write(`engine: running from sources (bundle unavailable: ${(err as Error).message})\n`);
  }
}
await import(entry);
