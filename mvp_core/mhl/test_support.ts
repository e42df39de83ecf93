/**
 * For the MHL tests: where the ASC reference material is (vendored in mvp_core/mhl/reference, or
 * KETTER_ASCMHL_REFERENCE), XSD validation with xmllint, and temp folders.
 */
import { existsSync } from "node:fs";
import { mkdir, mkdtemp, readFile, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";

/** The ascmhl reference folder (specification, XSDs, example scenarios); throws saying how to provide it. */
export function referenceDir(): string {
  const env = process.env.KETTER_ASCMHL_REFERENCE;
  if (env !== undefined && env !== "") return env;
  // Vendored (MIT) so a fresh clone tests against it too.
  const vendored = path.join(import.meta.dir, "reference");
  if (existsSync(path.join(vendored, "xsd/ASCMHL.xsd"))) return vendored;
  throw new Error("the ASC MHL reference material (mvp_core/mhl/reference with xsd/ and examples/) is missing; restore it from git or set KETTER_ASCMHL_REFERENCE");
}

/** A fresh temp folder. */
export function tempDir(prefix: string): Promise<string> {
  return mkdtemp(path.join(tmpdir(), `ketter-mhl-${prefix}-`));
}

let chainXsd: Promise<string> | undefined;

// ASCMHLDirectory.xsd imports ASCMHL.xsd from a URL; validation runs offline against the local copy.
// The rewritten schema goes to one fixed file per reference location, rewritten each run (not one
// temp folder per test process, which bun test would leave behind).
function localChainXsd(): Promise<string> {
  chainXsd ??= (async () => {
    const ref = referenceDir();
    const text = await readFile(path.join(ref, "xsd/ASCMHLDirectory.xsd"), "utf8");
    const dir = path.join(tmpdir(), `ketter-ascmhl-xsd-${Bun.hash.xxHash3(ref).toString(16)}`);
    await mkdir(dir, { recursive: true });
    const out = path.join(dir, "ASCMHLDirectory.xsd");
    await writeFile(out, text.replace(/schemaLocation="[^"]*"/, `schemaLocation="${path.join(ref, "xsd/ASCMHL.xsd")}"`));
    return out;
  })();
  return chainXsd;
}

/** xmllint's verdict on `file` against the manifest or the chain schema: exit code and messages. */
export async function validateXsd(file: string, kind: "manifest" | "chain"): Promise<{ code: number; output: string }> {
  const xsd = kind === "manifest" ? path.join(referenceDir(), "xsd/ASCMHL.xsd") : await localChainXsd();
  const p = Bun.spawn(["xmllint", "--nonet", "--noout", "--schema", xsd, file], { stdout: "pipe", stderr: "pipe" });
  const [code, out, err] = await Promise.all([p.exited, new Response(p.stdout).text(), new Response(p.stderr).text()]);
  return { code, output: out + err };
}
