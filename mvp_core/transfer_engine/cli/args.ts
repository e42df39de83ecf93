/**
 * Command-line parsing for the engine CLI: turns argv into a spec, the two sides' endpoints and
 * the SSH credentials' locations, or a usage error. Each side is an endpoint rooted at its path's
 * parent folder (a local folder, or `sftp://USER@HOST[:PORT]/PATH`'s parent on that host) with the
 * last component as the path below it: the parent must exist, and links above the path (a
 * symlinked /tmp, a home folder) are the user's own choice and followed.
 */
import path from "node:path";
import { parseArgs } from "node:util";
import { HASH_ALGORITHMS } from "../endpoints/endpoint.ts";
import { STRATEGIES, SYNC_LEVELS, TRANSFER_MODES, VERIFY_MODES, type TransferSpecInput } from "../spec.ts";
import type { VerifySpec } from "../verify_history.ts";

/** Printed with every usage error. */
export const USAGE = `usage: bun run engine --from SRC --to DST --mode ${TRANSFER_MODES.join("|")} [--strategy ${STRATEGIES.join("|")}] [--verify ${VERIFY_MODES.slice().reverse().join("|")}]
                  [--hash auto|${HASH_ALGORITHMS.join("|")}] [--mhl] [--overwrite | --sync ${SYNC_LEVELS.join("|")} [--mirror]]
                  [--skip-file-errors] [--json] [--id ID] [--identity KEYFILE] [--host-key SHA256:…] [--streams N] [--max-connections N]
       bun run engine --mode verify --from FOLDER [--mhl] [--hash …] [--json] [--identity KEYFILE] [--host-key SHA256:…]
       bun run engine --help | --version

  Copies or moves SRC (a file or a folder) so that it becomes exactly DST, like \`cp -rT SRC DST\`:
  DST is the name of the copy, not a folder to put it in. DST's parent folder must exist.
  An existing DST is refused unless --overwrite, which replaces it as a whole after verification,
  or --sync, which updates it in place: only files that differ at that level travel (exists, size,
  mtime = size and modification time, checksum = content), each renamed into place once verified;
  --mirror then removes what SRC does not have. --skip-file-errors lets a file that cannot be read
  (or changed while copied) fail alone: the rest completes, the result lists it.
  A DST inside SRC (or SRC inside a DST to replace) is refused before anything is written.
  --verify checksum (default) compares content hashes; size compares sizes only. --hash picks the
  hash (auto: xxh3 where both ends compute it, else crc32; or the format the source's ASC MHL
  history records). --mhl writes an ASC MHL generation (ascmhl/, process transfer) for the copied
  folder at DST, after checking SRC's files against the history SRC carries (docs/mhl.md).
  --mode verify checks FOLDER against its ascmhl/ history (exit 0 all match, 1 mismatched, missing
  or unrecorded files, or a damaged history — each listed); with --mhl it also appends an in-place
  generation recording the verification.
  --json (or a non-terminal stdout) prints one JSON result. Exit: 0 ok, 1 transfer failed, 2 bad
  usage or a refused request, 3 done but some files failed (--skip-file-errors; run again with
  --sync checksum to send them), 130 interrupted (Ctrl-C: staging removed), 143 terminated.
  The transfer id is printed first (stderr): running again with --id <id> after a crash, a kill or a
  dropped link resumes from what arrived (re-checked at both ends) and cleans up the leftovers
  (.ketter-<id>.*) next to DST; Ctrl-C cancels and removes them.
  Big files (64 MiB and more) travel as ranges over several streams when an SSH side gains from it
  (chosen from the link's round trip): --streams N sets the most per transfer (1: one at a time),
  --max-connections N the most SSH connections to the host (default 4).

  Either side may be on an SSH host: sftp://USER@HOST[:PORT]/ABSOLUTE/PATH (percent-encode odd
  characters). It needs --host-key, the server's pinned key fingerprint (on the server:
  ssh-keygen -l -E sha256 -f /etc/ssh/ssh_host_ed25519_key.pub), and --identity with a private key
  (passphrase in KETTER_SSH_PASSPHRASE), or the password in KETTER_SSH_PASSWORD.`;

/** One side of a CLI transfer: where its endpoint is rooted, and the name below that root. */
export type CliSide =
  | { kind: "local"; root: string; rel: string }
  | { kind: "sftp"; host: string; port: number; username: string; root: string; rel: string };

/** How to log in to the SSH side. */
export interface CliSshAuth {
  /** Path of the private key file (null: password from the environment). */
  identity: string | null;
  hostKey: string;
}

/** Tuning flags: streams per transfer (the engine's maxStreams) and SSH connections per host. */
export interface CliTuning {
  maxStreams?: number;
  maxConnections?: number;
}

/** A CLI invocation: the spec, both sides and output preferences, or what to tell the user. */
export type CliArgs =
  | { ok: true; spec: TransferSpecInput; json: boolean; from: CliSide; to: CliSide; auth: CliSshAuth | null; tuning: CliTuning }
  | { ok: true; verify: VerifySpec; json: boolean; from: CliSide; auth: CliSshAuth | null; tuning: CliTuning }
  | { ok: true; help: true }
  | { ok: true; version: true }
  | { ok: false; message: string };

const ENUMS = { mode: [...TRANSFER_MODES, "verify"], strategy: STRATEGIES, verify: VERIFY_MODES, sync: SYNC_LEVELS, hash: ["auto", ...HASH_ALGORITHMS] } as const;
/** Flags that only mean something for a transfer. */
const TRANSFER_ONLY = ["to", "strategy", "verify", "overwrite", "sync", "mirror", "skip-file-errors", "streams"] as const;

/** Parses argv (without the runtime and script); relative local paths resolve against `cwd`. */
export function parseCliArgs(argv: readonly string[], cwd: string, env: Record<string, string | undefined> = {}): CliArgs {
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
        hash: { type: "string" },
        mhl: { type: "boolean" },
        id: { type: "string" },
        identity: { type: "string" },
        "host-key": { type: "string" },
        overwrite: { type: "boolean" },
        sync: { type: "string" },
        mirror: { type: "boolean" },
        "skip-file-errors": { type: "boolean" },
        json: { type: "boolean" },
        streams: { type: "string" },
        "max-connections": { type: "string" },
        help: { type: "boolean", short: "h" },
        version: { type: "boolean", short: "V" },
      },
    }));
  } catch (err) {
    return { ok: false, message: (err as Error).message };
  }
  if (values.help) return { ok: true, help: true };
  if (values.version) return { ok: true, version: true };
  const problems: string[] = [];
  const verifying = values.mode === "verify";
  for (const name of verifying ? (["from"] as const) : (["from", "to", "mode"] as const)) {
    if (typeof values[name] !== "string" || values[name] === "") problems.push(`--${name} is required`);
  }
  if (verifying) for (const name of TRANSFER_ONLY) if (values[name] !== undefined) problems.push(`--${name} does not apply to --mode verify (it checks --from in place)`);
  for (const [name, allowed] of Object.entries(ENUMS)) {
    const v = values[name];
    if (typeof v === "string" && !(allowed as readonly string[]).includes(v)) problems.push(`--${name} must be one of ${allowed.join(", ")} (got ${JSON.stringify(v)})`);
  }
  if (values.overwrite && typeof values.sync === "string") problems.push("--overwrite replaces the target whole and --sync updates it in place: choose one");
  if (values.mirror && typeof values.sync !== "string") problems.push("--mirror goes with --sync LEVEL");
  const tuning: CliTuning = {};
  const maxStreams = count(values.streams, "--streams", 64, problems);
  const maxConnections = count(values["max-connections"], "--max-connections", 16, problems);
  if (maxStreams !== undefined) tuning.maxStreams = maxStreams;
  if (maxConnections !== undefined) tuning.maxConnections = maxConnections;
  if (problems.length > 0) return { ok: false, message: problems.join("; ") };
  if (verifying) {
    const from = side("--from", values.from as string, cwd, problems);
    const auth = sshAuth(from, null, values, env, problems);
    if (problems.length > 0 || from === null) return { ok: false, message: problems.join("; ") };
    const verify: VerifySpec = { path: from.rel, record: values.mhl === true };
    if (typeof values.hash === "string") verify.hash = values.hash as VerifySpec["hash"];
    if (typeof values.id === "string") verify.id = values.id;
    return { ok: true, verify, json: values.json === true, from, auth, tuning };
  }
  const from = side("--from", values.from as string, cwd, problems);
  const to = side("--to", values.to as string, cwd, problems);
  const auth = sshAuth(from, to, values, env, problems);
  if (problems.length > 0 || from === null || to === null) return { ok: false, message: problems.join("; ") };
  const spec: TransferSpecInput = {
    sourcePath: from.rel,
    targetPath: to.rel,
    mode: values.mode as (typeof TRANSFER_MODES)[number],
    overwrite: values.overwrite === true,
  };
  if (typeof values.strategy === "string") spec.strategy = values.strategy as (typeof STRATEGIES)[number];
  if (typeof values.verify === "string") spec.verify = values.verify as (typeof VERIFY_MODES)[number];
  if (typeof values.id === "string") spec.id = values.id;
  if (typeof values.sync === "string") spec.sync = values.sync as (typeof SYNC_LEVELS)[number];
  if (values.mirror === true) spec.mirror = true;
  if (values["skip-file-errors"] === true) spec.skipFileErrors = true;
  if (typeof values.hash === "string") spec.hash = values.hash as TransferSpecInput["hash"];
  if (values.mhl === true) spec.mhl = true;
  if (maxConnections !== undefined && from.kind !== "sftp" && to.kind !== "sftp") return { ok: false, message: "--max-connections applies only to an sftp:// --from or --to" };
  return { ok: true, spec, json: values.json === true, from, to, auth, tuning };
}

/** A whole number from 1 to `max` given as `flag`, or undefined when absent. */
function count(v: string | boolean | undefined, flag: string, max: number, problems: string[]): number | undefined {
  if (typeof v !== "string") return undefined;
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1 || n > max) {
    problems.push(`${flag} must be a whole number from 1 to ${max} (got ${JSON.stringify(v)})`);
    return undefined;
  }
  return n;
}

/** A local path (rooted at its parent folder) or an sftp:// URL (rooted at its path's parent on the host). */
function side(flag: string, text: string, cwd: string, problems: string[]): CliSide | null {
  if (!/^[a-z][a-z0-9+.-]*:\/\//i.test(text)) {
    const abs = path.resolve(cwd, text);
    if (abs === "/") {
      problems.push(`${flag}: name a file or folder below /, not the root itself`);
      return null;
    }
    return { kind: "local", root: path.dirname(abs), rel: path.basename(abs) };
  }
  const shape = `${flag} ${JSON.stringify(text)}: expected sftp://USER@HOST[:PORT]/ABSOLUTE/PATH`;
  const before = problems.length;
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    problems.push(shape);
    return null;
  }
  if (url.protocol !== "sftp:") problems.push(`${flag}: only sftp:// locations are supported (got ${url.protocol}//)`);
  else if (!url.username) problems.push(`${shape} (the user name is missing)`);
  else if (url.search || url.hash) problems.push(`${shape} (no ?query or #fragment; percent-encode ? and # in names)`);
  let remotePath = "";
  try {
    remotePath = path.posix.normalize(decodeURIComponent(url.pathname));
  } catch {
    problems.push(`${shape} (bad percent-encoding)`);
  }
  if (remotePath === "/" || remotePath === "") problems.push(`${flag}: name a file or folder below / on ${url.hostname}, not the root itself`);
  if (problems.length > before) return null;
  const trimmed = remotePath.replace(/\/+$/, "");
  return {
    kind: "sftp",
    host: url.hostname.replace(/^\[(.*)\]$/, "$1"), // IPv6 literals come bracketed
    port: url.port ? Number(url.port) : 22,
    username: decodeURIComponent(url.username),
    root: path.posix.dirname(trimmed),
    rel: path.posix.basename(trimmed),
  };
}

/** The SSH credentials' whereabouts; null for a local → local transfer. */
function sshAuth(from: CliSide | null, to: CliSide | null, values: Record<string, string | boolean | undefined>, env: Record<string, string | undefined>, problems: string[]): CliSshAuth | null {
  const identity = typeof values.identity === "string" && values.identity !== "" ? values.identity : null;
  const hostKey = typeof values["host-key"] === "string" ? values["host-key"] : "";
  if (from?.kind === "sftp" && to?.kind === "sftp") {
    problems.push("only one of --from and --to may be an sftp:// location (remote → remote runs through the worker)");
    return null;
  }
  const remote = from?.kind === "sftp" ? from : to?.kind === "sftp" ? to : null;
  if (remote === null) {
    if (identity !== null || hostKey !== "") problems.push("--identity and --host-key apply only to an sftp:// --from or --to");
    return null;
  }
  if (hostKey === "") problems.push(`--host-key is required for ${remote.host}: the server's key fingerprint, e.g. from ssh-keygen -l -E sha256 -f /etc/ssh/ssh_host_ed25519_key.pub on the server`);
  if (identity === null && !env.KETTER_SSH_PASSWORD) problems.push("--identity KEYFILE (a private key) is required, or the password in KETTER_SSH_PASSWORD");
  return { identity, hostKey };
}
