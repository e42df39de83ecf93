/** The transfer engine's public API. */
export { transfer } from "./transfer.ts";
export { verifyHistory, mismatchError, verdict as verificationVerdict } from "./verify_history.ts";
export type { VerifySpec, VerifyContext, HistoryVerification } from "./verify_history.ts";
export type { TransferContext, TransferHooks, GuardedStep } from "./transfer.ts";
export type { TransferSpec, TransferSpecInput, TransferResult, Progress, EngineEvent, Phase, StrategyUsed } from "./spec.ts";
export { STRATEGIES_USED, STRATEGIES, TRANSFER_MODES, VERIFY_MODES, transferOptionsShape } from "./spec.ts";
export type { TransferOptions } from "./spec.ts";
export { TransferError, isTransferError } from "./errors.ts";
export type { ErrorCode } from "./errors.ts";
export type { Endpoint, Entry, Capabilities, HashAlgorithm, Location } from "./endpoints/endpoint.ts";
export { HASH_ALGORITHMS } from "./endpoints/endpoint.ts";
export type { EngineOptions } from "./options.ts";
export { DEFAULT_ENGINE_OPTIONS } from "./options.ts";
export { openEndpoint, type EndpointSpec } from "./endpoints/open.ts";
export type { SshTarget, SshProbe } from "./endpoints/sftp/index.ts";

/** Checks an SSH portal without pinning (host key seen, free space, tools); loads the SSH code only when called. */
export async function probeSsh(t: Parameters<typeof import("./endpoints/sftp/index.ts").probeSsh>[0]): Promise<import("./endpoints/sftp/index.ts").SshProbe> {
  const { probeSsh: probe } = await import("./endpoints/sftp/index.ts");
  return probe(t);
}
