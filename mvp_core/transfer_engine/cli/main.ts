/** The engine CLI itself (cli.ts starts it, normally from a cached bundle): copies or moves files and folders, locally or to and from an SSH host. */
import fs from "node:fs";
import pkg from "../../../package.json" with { type: "json" };
import { type CliSide, type CliSshAuth, type CliTuning, parseCliArgs, USAGE } from "./args.ts";
import { ProgressLine, USAGE_CODES, failureMessage, summary, verificationSummary } from "./output.ts";
import type { Endpoint } from "../endpoints/endpoint.ts";
import { openEndpoint } from "../endpoints/open.ts";
import { TransferError, fromSystemError } from "../errors.ts";
import { transfer } from "../transfer.ts";
import { verifyHistory } from "../verify_history.ts";

/**
 * A second signal this soon after the first is the same keypress relayed: a terminal signals the
 * whole process group, and `bun run` forwards the SIGINT it got to this process, which got its own.
 * Only a second Ctrl-C after this pause forces an exit (leaving the staging behind).
 */
const FORCE_AFTER_MS = 1500;
const SIGNAL_EXIT = { SIGINT: 130, SIGTERM: 143 } as const;

async function main(): Promise<number> {
  const args = parseCliArgs(process.argv.slice(2), process.cwd(), process.env);
  if (!args.ok) {
    await Bun.write(Bun.stderr, `bad usage: ${args.message}\n${USAGE}\n`);
    return 2;
  }
  if ("help" in args) {
    await Bun.write(Bun.stdout, `${USAGE}\n`);
    return 0;
  }
  if ("version" in args) {
    await Bun.write(Bun.stdout, `ketter engine ${pkg.version} (bun ${Bun.version})\n`);
    return 0;
  }
  // process.stdout/stderr are Node streams that take ~7 ms to set up (of a ~20 ms start): with
  // --json (how programs call us) they are never touched, and results go out through Bun.write.
  const json = args.json || !process.stdout.isTTY;
  const live = !json && process.stderr.isTTY;
  const id = ("spec" in args ? args.spec.id : args.verify.id) ?? crypto.randomUUID();
  const abort = new AbortController();
  let interrupted: keyof typeof SIGNAL_EXIT | null = null;
  let firstSignalAt = 0;
  const onSignal = (sig: keyof typeof SIGNAL_EXIT): void => {
    const now = performance.now();
    if (interrupted === null) {
      interrupted = sig;
      firstSignalAt = now;
      fs.writeSync(2, `${live ? "\r\x1b[2K" : ""}cancelling… (removing what transfer ${id} wrote; Ctrl-C again in a moment to stop at once)\n`);
      abort.abort(new Error(`interrupted by ${sig}`));
      return;
    }
    if (now - firstSignalAt < FORCE_AFTER_MS) return;
    fs.writeSync(2, `stopped without cleaning up: run again with --id ${id} to remove the .ketter-${id}.* leftovers next to the target\n`);
    process.exit(SIGNAL_EXIT[sig]);
  };
  process.on("SIGINT", () => onSignal("SIGINT"));
  process.on("SIGTERM", () => onSignal("SIGTERM"));
  const verifying = "verify" in args;
  await Bun.write(Bun.stderr, `${verifying ? "verify" : "transfer"} ${id}\n`);
  const line = new ProgressLine();
  const onProgress = live ? (p: Parameters<ProgressLine["render"]>[0]) => process.stderr.write(`\r\x1b[2K${line.render(p)}`) : undefined;
  const opened: Endpoint[] = [];
  try {
    const source = await openSide(args.from, "source", args.auth, args.tuning, abort.signal);
    opened.push(source);
    if (verifying) {
      const r = await verifyHistory({ ...args.verify, id }, { endpoint: source, signal: abort.signal, onProgress });
      if (live) process.stderr.write("\r\x1b[2K");
      await Bun.write(Bun.stdout, json ? `${JSON.stringify({ ok: r.ok, verification: r })}\n` : `${verificationSummary(r)}\n`);
      return r.ok ? 0 : 1;
    }
    const target = await openSide(args.to, "target", args.auth, args.tuning, abort.signal);
    opened.push(target);
    const result = await transfer({ ...args.spec, id }, {
      source,
      target,
      signal: abort.signal,
      onProgress,
      ...(args.tuning.maxStreams !== undefined ? { options: { maxStreams: args.tuning.maxStreams } } : {}),
    });
    if (live) process.stderr.write("\r\x1b[2K");
    await Bun.write(Bun.stdout, json ? `${JSON.stringify({ ok: true, result })}\n` : `${summary(result)}\n`);
    return result.fileCounts.failed > 0 ? 3 : 0;
  } catch (caught) {
    const err = fromSystemError(caught, "", "transfer");
    if (live) process.stderr.write("\r\x1b[2K");
    if (json) await Bun.write(Bun.stdout, `${JSON.stringify({ ok: false, error: err.toJSON() })}\n`);
    else await Bun.write(Bun.stderr, `${failureMessage(err)}\n`);
    if (interrupted !== null && err.code === "CANCELLED") return SIGNAL_EXIT[interrupted];
    return USAGE_CODES.has(err.code) ? 2 : 1;
  } finally {
    await Promise.all(opened.map((e) => e.close()));
  }
}

/** Opens one side. The SSH code loads only for an sftp:// side, so local transfers start fast. */
async function openSide(side: CliSide, role: "source" | "target", auth: CliSshAuth | null, tuning: CliTuning, signal: AbortSignal): Promise<Endpoint> {
  if (side.kind === "local") {
    if (role === "target" && !isFolder(side.root)) {
      throw new TransferError("NOT_A_DIRECTORY", `the target's parent folder ${JSON.stringify(side.root)} does not exist or is not a folder; create it first`, { details: { path: side.root } });
    }
    return openEndpoint({ kind: "local", root: side.root });
  }
  if (auth === null) throw new TransferError("INVALID_SPEC", "an sftp:// side needs --host-key and --identity");
  try {
    const target = { host: side.host, port: side.port, username: side.username, root: side.root, auth: sshCredentials(auth), hostKeyFingerprint: auth.hostKey };
    return await openEndpoint({ kind: "sftp", ...target, ...(tuning.maxConnections !== undefined ? { maxConnections: tuning.maxConnections } : {}) }, { signal });
  } catch (err) {
    // The endpoint is rooted at the target's parent: a missing root is a missing parent folder.
    if (role === "target" && err instanceof TransferError && err.code === "SOURCE_NOT_FOUND") {
      throw new TransferError("NOT_A_DIRECTORY", `the target's parent folder ${JSON.stringify(side.root)} does not exist on ${side.host}; create it first`, { cause: err });
    }
    throw err;
  }
}

function isFolder(p: string): boolean {
  try {
    return fs.statSync(p).isDirectory();
  } catch {
    return false;
  }
}

function sshCredentials(auth: CliSshAuth): { method: "key"; privateKey: string; passphrase?: string } | { method: "password"; password: string } {
  if (auth.identity === null) return { method: "password", password: process.env.KETTER_SSH_PASSWORD ?? "" };
  let privateKey: string;
  try {
    privateKey = fs.readFileSync(auth.identity, "utf8");
  } catch (err) {
    throw new TransferError("INVALID_SPEC", `cannot read --identity ${JSON.stringify(auth.identity)}: ${(err as Error).message}`);
  }
  const passphrase = process.env.KETTER_SSH_PASSPHRASE;
  return { method: "key", privateKey, ...(passphrase ? { passphrase } : {}) };
}

// No top-level await: it would keep this file from being bundled as precompiled bytecode (bundle.ts).
void main().then((code) => {
  process.exitCode = code;
});
