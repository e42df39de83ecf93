/** The transfer engine's public API. */
export { transfer } from "./transfer.ts";
export type { TransferContext, TransferHooks, GuardedStep } from "./transfer.ts";
export type { TransferSpec, TransferSpecInput, TransferResult, Progress, EngineEvent, Phase, StrategyUsed } from "./spec.ts";
export { STRATEGIES_USED } from "./spec.ts";
export { TransferError, isTransferError } from "./errors.ts";
export type { ErrorCode } from "./errors.ts";
export type { Endpoint, Entry, Capabilities, HashAlgorithm } from "./endpoints/endpoint.ts";
export type { EngineOptions } from "./options.ts";
export { DEFAULT_ENGINE_OPTIONS } from "./options.ts";
export { LocalEndpoint } from "./endpoints/local/local_endpoint.ts";
