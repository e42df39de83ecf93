/** The MHL library's one error class: a closed set of codes, each saying what the caller did wrong or found. */

/**
 * BAD_INPUT: the caller's data cannot become a valid manifest (fix the input).
 * MALFORMED: a manifest or chain file on disk is not valid ASC MHL (the history is damaged or foreign).
 */
export type MhlErrorCode = "BAD_INPUT" | "MALFORMED";

/** An MHL failure with its code and, where useful, the file or entry concerned. */
export class MhlError extends Error {
  override readonly name = "MhlError";
  constructor(
    readonly code: MhlErrorCode,
    message: string,
    readonly details?: Record<string, unknown>,
  ) {
    super(message);
  }
}
