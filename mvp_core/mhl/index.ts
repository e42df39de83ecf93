/**
 * The ASC MHL library's public API: read and verify a folder's history, build its next generation.
 * See docs/mhl.md for how the engine uses it.
 */
export { buildGeneration } from "./generation.ts";
export type { GenerationResult, NewManifest, PlannedWrite } from "./generation.ts";
export { verifyFolder } from "./verify_folder.ts";
export type { FolderVerification, VerifiedFile, VerifyOptions } from "./verify_folder.ts";
export { readHistory, allProblems, closestHistory } from "./history.ts";
export type { Generation, HistoryProblem, MhlHistory } from "./history.ts";
export { knownFiles, expectedHash, VERIFY_PREFERENCE } from "./known_files.ts";
export type { KnownFile, KnownHash } from "./known_files.ts";
export { formatsToVerify } from "./file_actions.ts";
export type { FailedHash } from "./file_actions.ts";
export { scanTree } from "./scan.ts";
export type { ScannedFile, TreeScan } from "./scan.ts";
export { localMhlFs } from "./io.ts";
export type { MhlDirEntry, MhlFs } from "./io.ts";
export { MHL_HASH_FORMATS, createFormatHasher, isHashFormat } from "./hash_format.ts";
export type { MhlHashFormat } from "./hash_format.ts";
export { GenerationInputSchema } from "./model.ts";
export type { GenerationInput, Manifest, ChainEntry, HashAction } from "./model.ts";
export { parseManifest } from "./manifest_reader.ts";
export { parseChain } from "./chain.ts";
export { ASCMHL_DIR, CHAIN_FILE } from "./naming.ts";
export { MhlError } from "./errors.ts";
export type { MhlErrorCode } from "./errors.ts";
