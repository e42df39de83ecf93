/**
 * A cached single-file bundle of the engine CLI. The cache key is a hash of Bun's version and the
 * identity and change time of every input the last build used (its metafile): any edit to the
 * engine, or a new zod, yields a new key and one rebuild (~0.2 s) on the next start. Checking the
 * key stats those ~180 files (~1 ms), far less than loading them as modules. fflate stays external: zip.ts imports
 * it only when zipping, and it resolves from the node_modules folder the cache lives in. So do the
 * xxHash fallbacks (mvp_core/hashing): @node-rs/xxhash loads a per-platform binary a bundle cannot
 * carry, and hash-wasm (~0.6 MB) is needed only where the system's libxxhash is missing.
 */
import fs from "node:fs";
import path from "node:path";

const INPUTS_FILE = "inputs.json";

/**
 * Absolute path of an up-to-date bundle of `entry` in `cacheDir`, building it when missing or
 * stale. Each entry has a folder of its own: two checkouts sharing one node_modules (a symlink)
 * must not take each other's bundle for theirs.
 */
export async function bundledEntry(entry: string, sharedCacheDir: string): Promise<string> {
  const cacheDir = path.join(sharedCacheDir, Bun.hash(path.resolve(entry)).toString(36));
  const inputs = readInputs(cacheDir);
  if (inputs !== null) {
    const key = inputsKey(inputs);
    const file = path.join(cacheDir, `${key}.js`);
    if (key !== null && fs.existsSync(file)) return file;
  }
  return await build(entry, cacheDir);
}

/**
 * Hash of Bun's version and each input's path, inode, size and change time; null when an input no
 * longer exists. Any write to a file moves its change time (which no tool can set back), so this
 * sees every edit without reading the ~180 inputs (1.8 MB, 15-25 ms of every start when the key
 * hashed their contents).
 */
export function inputsKey(inputs: readonly string[]): string | null {
  let acc = `bun ${Bun.version}\n`;
  for (const p of inputs) {
    let st: fs.BigIntStats;
    try {
      st = fs.statSync(p, { bigint: true });
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === "ENOENT") return null; // moved or deleted: rebuild
      throw err;
    }
    acc += `${p}\0${st.ino}:${st.size}:${st.ctimeNs}:${st.mtimeNs}\n`;
  }
  return Bun.hash(acc).toString(36);
}

function readInputs(cacheDir: string): string[] | null {
  let text: string;
  try {
    text = fs.readFileSync(path.join(cacheDir, INPUTS_FILE), "utf8");
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return null;
    throw err;
  }
  const parsed: unknown = JSON.parse(text);
  return Array.isArray(parsed) && parsed.every((p) => typeof p === "string") ? parsed : null;
}

async function build(entry: string, cacheDir: string): Promise<string> {
  // Precompiled bytecode (CommonJS only) saves JavaScriptCore parsing the bundle: a 1 MiB copy
  // started in 17 ms instead of 23. Sources with a top-level await cannot be CommonJS: those get
  // a plain ES module bundle instead.
  const out = (await bundle(entry, true)) ?? (await bundle(entry, false));
  if (out === null || out.metafile === undefined) throw new Error(`bundling ${entry} failed: no output`);
  // Metafile paths are relative to the working directory.
  const inputs = Object.keys(out.metafile.inputs).map((p) => path.resolve(p)).sort();
  const key = inputsKey(inputs);
  if (key === null) throw new Error("an input of the bundle vanished while it was built");
  fs.mkdirSync(cacheDir, { recursive: true });
  const file = path.join(cacheDir, `${key}.js`);
  // Bun finds the bytecode as "<file>.jsc"; it is written first, the .js (what callers look for) last.
  // Concurrent first starts each write their own temp files; rename makes whichever lands last win whole.
  const bytecode = out.outputs.find((o) => o.kind === "bytecode");
  if (bytecode) writeAtomic(`${file}.jsc`, new Uint8Array(await bytecode.arrayBuffer()));
  writeAtomic(file, await (out.outputs.find((o) => o.kind === "entry-point") as Blob).text());
  writeAtomic(path.join(cacheDir, INPUTS_FILE), JSON.stringify(inputs));
  removeStale(cacheDir, key);
  return file;
}

/** Bun.build of `entry`; null when only the bytecode variant failed (so the plain one can be tried). */
async function bundle(entry: string, bytecode: boolean): Promise<Bun.BuildOutput | null> {
  try {
    const out = await Bun.build({ entrypoints: [entry], target: "bun", external: ["fflate", "@node-rs/xxhash", "hash-wasm"], metafile: true, ...(bytecode ? { format: "cjs", bytecode: true } : {}) });
    if (out.success) return out;
    if (bytecode) return null;
    throw new Error(out.logs.map(String).join("; "));
  } catch (err) {
    if (bytecode) return null;
    // Bun throws an AggregateError whose message is only "Bundle failed"; the causes are inside.
    const causes = err instanceof AggregateError ? err.errors.map(String).join("; ") : String(err);
    throw new Error(`bundling ${entry} failed: ${causes}`);
  }
}

function writeAtomic(file: string, data: string | Uint8Array): void {
  const tmp = `${file}.${process.pid}.tmp`;
  fs.writeFileSync(tmp, data);
  fs.renameSync(tmp, file);
}

/** Older bundles, kept for a minute in case a concurrent start is about to import one. */
function removeStale(cacheDir: string, key: string): void {
  const now = Date.now();
  for (const name of fs.readdirSync(cacheDir)) {
    if (name.startsWith(`${key}.`) || !(name.endsWith(".js") || name.endsWith(".jsc"))) continue;
    const p = path.join(cacheDir, name);
    if (now - fs.statSync(p).mtimeMs > 60_000) fs.rmSync(p, { force: true });
  }
}
