/** Command-line parsing for the engine CLI: turns argv into a spec for LocalEndpoint("/"), or a usage error. */
import path from "node:path";
import { parseArgs } from "node:util";
import type { TransferSpecInput } from "./spec.ts";

/** Printed with every usage error. */
export const USAGE = `usage: bun run engine --from SRC --to DST --mode copy|move [--strategy auto|direct|zip] [--verify checksum|size] [--overwrite] [--json] [--id ID]

  Copies or moves SRC (a file or a folder) so that it becomes exactly DST, like \`cp -rT SRC DST\`:
  DST is the name of the copy, not a folder to put it in. DST's parent folder must exist.
  An existing DST is refused unless --overwrite, which replaces it as a whole after verification.
  --verify checksum (default) compares content hashes; size compares sizes only.
  --json (or a non-terminal stdout) prints one JSON result. Exit: 0 ok, 1 transfer failed, 2 bad usage.`;

/** A CLI invocation: the spec plus output preferences, or what to tell the user. */
export type CliArgs = { ok: true; spec: TransferSpecInput; json: boolean } | { ok: true; help: true } | { ok: false; message: string };

const ENUMS = { mode: ["copy", "move"], strategy: ["auto", "direct", "zip"], verify: ["checksum", "size"] } as const;

/** Parses argv (without the runtime and script); relative paths resolve against `cwd`. */
export function parseCliArgs(argv: readonly string[], cwd: string): CliArgs {
  let values: Record<string, string | boolean | undefined>;
  try {
    ({ values } = parseArgs({
      args: [...argv],
      strict: true,
      allowPositionals: false,
      options: {
        from: { type: "string" },
        to: { type: "string" },
        mode: { type: "string" },
        strategy: { type: "string" },
        verify: { type: "string" },
        id: { type: "string" },
        overwrite: { type: "boolean" },
        json: { type: "boolean" },
        help: { type: "boolean", short: "h" },
      },
    }));
  } catch (err) {
    return { ok: false, message: (err as Error).message };
  }
  if (values.help) return { ok: true, help: true };
  const problems: string[] = [];
  for (const name of ["from", "to", "mode"] as const) {
    if (typeof values[name] !== "string" || values[name] === "") problems.push(`--${name} is required`);
  }
  for (const [name, allowed] of Object.entries(ENUMS)) {
    const v = values[name];
    if (typeof v === "string" && !(allowed as readonly string[]).includes(v)) problems.push(`--${name} must be one of ${allowed.join(", ")} (got ${JSON.stringify(v)})`);
  }
  if (problems.length > 0) return { ok: false, message: problems.join("; ") };
  // The CLI works on LocalEndpoint("/"): absolute paths, minus the leading slash.
  const rel = (p: string): string => path.resolve(cwd, p).slice(1);
  const spec: TransferSpecInput = {
    sourcePath: rel(values.from as string),
    targetPath: rel(values.to as string),
    mode: values.mode as "copy" | "move",
    overwrite: values.overwrite === true,
  };
  if (typeof values.strategy === "string") spec.strategy = values.strategy as "auto" | "direct" | "zip";
  if (typeof values.verify === "string") spec.verify = values.verify as "checksum" | "size";
  if (typeof values.id === "string") spec.id = values.id;
  return { ok: true, spec, json: values.json === true };
}
