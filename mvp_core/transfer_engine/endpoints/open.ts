/**
 * The one place outside the adapters' own folders that knows which adapters exist: an Endpoint
 * from a plain description (a local folder, or a folder on an SSH host). Everything else — the
 * engine's steps, the worker, the CLI — sees only the Endpoint interface.
 */
import type { Endpoint } from "./endpoint.ts";
import { TransferError } from "../errors.ts";
import { LocalEndpoint } from "./local/local_endpoint.ts";
import type { SshTarget } from "./sftp/index.ts";

/** Where an endpoint is rooted: a local folder, or a folder on an SSH host (see SshTarget). */
export type EndpointSpec = { kind: "local"; root: string } | ({ kind: "sftp" } & SshTarget);

/**
 * Opens `spec`, checking that its root is a folder (SOURCE_NOT_FOUND when missing): a local one
 * opens its root's handle; an SSH one connects, checks the pinned host key and the root (its code
 * loads only then).
 */
export async function openEndpoint(spec: EndpointSpec, opts: { signal?: AbortSignal } = {}): Promise<Endpoint> {
  if (spec.kind === "local") {
    const ep = new LocalEndpoint(spec.root);
    const root = await ep.stat("");
    if (root?.type !== "dir") throw new TransferError("NOT_A_DIRECTORY", `${JSON.stringify(spec.root)} is not a folder`, { details: { path: spec.root } });
    return ep;
  }
  const { connectSsh } = await import("./sftp/index.ts");
  const { kind: _, ...target } = spec;
  return connectSsh(target, opts);
}
