/** Names inside a history (spec 5.3, 6.3, 7.3): the ascmhl folder, the chain file, manifest file names. */
import { fileNameStamp } from "./date_time.ts";

/** The folder at the root of a history's scope that holds its manifests and chain. */
export const ASCMHL_DIR = "ascmhl";

/** The chain file inside ASCMHL_DIR. */
export const CHAIN_FILE = "ascmhl_chain.xml";

/** The patterns every history ignores (spec 5.6.1.2), written as the reference implementation writes them. */
export const DEFAULT_IGNORE = [".DS_Store", "ascmhl", "ascmhl/"] as const;

/** <numbering>_<foldername>_<date>_<time>.mhl: 4 digits or more, UTC stamp with a trailing Z. */
export function manifestFileName(sequence: number, folderName: string, createdAt: Date): string {
  return `${String(sequence).padStart(4, "0")}_${folderName}_${fileNameStamp(createdAt)}.mhl`;
}

/** The generation number a manifest file name starts with, or null if it is not a manifest name. */
export function manifestSequence(fileName: string): number | null {
  const m = /^(\d{4,})(?:_.+)?\.mhl$/.exec(fileName);
  return m === null ? null : Number(m[1]);
}
