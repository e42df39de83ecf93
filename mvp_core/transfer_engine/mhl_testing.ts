/** Helpers for the engine's ASC MHL tests (used by *.test.ts only): reference scenarios, and checking what a transfer wrote. */
import fs from "node:fs";
import path from "node:path";
import { type FolderVerification, localMhlFs, verifyFolder } from "../mhl/index.ts";
import { referenceDir, validateXsd } from "../mhl/test_support.ts";

/** Copies the reference scenario's folder `rel` (e.g. "scenario_02/file_server/A002R2EC") to `to`, as an offload would arrive. */
export function copyScenario(rel: string, to: string): void {
  fs.cpSync(path.join(referenceDir(), "examples/scenarios/Output", rel), to, { recursive: true });
}

/** Every manifest and chain file below `root` (any ascmhl folder), relative to it, sorted. */
export function historyFiles(root: string): string[] {
  return (fs.readdirSync(root, { recursive: true }) as string[]).filter((p) => p.split(path.sep).includes("ascmhl") && /\.(mhl|xml)$/.test(p)).sort();
}

/** Manifests below `root`, relative, sorted. */
export function manifests(root: string): string[] {
  return historyFiles(root).filter((p) => p.endsWith(".mhl"));
}

/**
 * What an ASC MHL tool would check of a folder Ketter wrote: every manifest and chain file
 * validates against the ASC's XSDs (xmllint --schema), and the folder verifies against its history.
 */
export async function checkHistory(root: string): Promise<{ invalid: { file: string; output: string }[]; verification: FolderVerification }> {
  const invalid: { file: string; output: string }[] = [];
  for (const rel of historyFiles(root)) {
    const v = await validateXsd(path.join(root, rel), rel.endsWith(".mhl") ? "manifest" : "chain");
    if (v.code !== 0) invalid.push({ file: rel, output: v.output });
  }
  return { invalid, verification: await verifyFolder(localMhlFs(), root) };
}

/** The text of the newest manifest of the history at `root` (its own ascmhl folder). */
export function newestManifest(root: string): string {
  const names = fs.readdirSync(path.join(root, "ascmhl")).filter((n) => n.endsWith(".mhl")).sort();
  return fs.readFileSync(path.join(root, "ascmhl", names.at(-1) as string), "utf8");
}
