/** The engine CLI itself (cli.ts starts it, normally from a cached bundle): copies or moves files and folders, locally or to and from an SSH host. */
import fs from "node:fs";
import { type CliRemote, parseCliArgs, USAGE } from "./args.ts";
import { ProgressLine, USAGE_CODES, failureMessage, summary } from "./output.ts";
import type { Endpoint } from "../endpoints/endpoint.ts";
import { TransferError, fromSystemError } from "../errors.ts";
import { LocalEndpoint } from "../endpoints/local/local_endpoint.ts";
import { transfer } from "../transfer.ts";

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
  // process.stdout/stderr are Node streams that take ~7 ms to set up (of a ~20 ms start): with
  // --json (how programs call us) they are never touched, and results go out through Bun.write.
  const json = args.json || !process.stdout.isTTY;
  const live = !json && process.stderr.isTTY;
  const abort = new AbortController();
  const onSignal = (): void => {
    // First Ctrl-C cancels cleanly (staging removed); a second one gives up waiting.
    if (abort.signal.aborted) process.exit(130);
    abort.abort(new Error("interrupted"));
  };
  process.on("SIGINT", onSignal);
  process.on("SIGTERM", onSignal);
  const line = new ProgressLine();
  const local = new LocalEndpoint("/");
  let remote: Endpoint | null = null;
  try {
    if (args.remote) remote = await connectRemote(args.remote, abort.signal);
    const result = await transfer(args.spec, {
      source: args.remote?.side === "source" && remote ? remote : local,
      target: args.remote?.side === "target" && remote ? remote : local,
      signal: abort.signal,
      onProgress: live ? (p) => process.stderr.write(`\r\x1b[2K${line.render(p)}`) : undefined,
    });
    if (live) process.stderr.write("\r\x1b[2K");
    await Bun.write(Bun.stdout, json ? `${JSON.stringify({ ok: true, result })}\n` : `${summary(result)}\n`);
    return 0;
  } catch (caught) {
    const err = fromSystemError(caught, "", "transfer");
    if (live) process.stderr.write("\r\x1b[2K");
    if (json) await Bun.write(Bun.stdout, `${JSON.stringify({ ok: false, error: err.toJSON() })}\n`);
    else await Bun.write(Bun.stderr, `${failureMessage(err)}\n`);
    return USAGE_CODES.has(err.code) ? 2 : 1;
  } finally {
    await remote?.close();
  }
}

/** Opens the SSH side; the SSH code loads only here, so local transfers start as fast as before. */
async function connectRemote(r: CliRemote, signal: AbortSignal): Promise<Endpoint> {
  let privateKey = "";
  if (r.identity !== null) {
    try {
      privateKey = fs.readFileSync(r.identity, "utf8");
    } catch (err) {
      throw new TransferError("INVALID_SPEC", `cannot read --identity ${JSON.stringify(r.identity)}: ${(err as Error).message}`);
    }
  }
  const passphrase = process.env.KETTER_SSH_PASSPHRASE;
  const auth = r.identity !== null
    ? { method: "key" as const, privateKey, ...(passphrase ? { passphrase } : {}) }
    : { method: "password" as const, password: process.env.KETTER_SSH_PASSWORD ?? "" };
  const { connectSsh } = await import("../endpoints/sftp/index.ts");
  try {
    return await connectSsh({ host: r.host, port: r.port, username: r.username, root: r.root, auth, hostKeyFingerprint: r.hostKey }, { signal });
  } catch (err) {
    // The endpoint is rooted at the target's parent: a missing root is a missing parent folder.
    if (r.side === "target" && err instanceof TransferError && err.code === "SOURCE_NOT_FOUND") {
      throw new TransferError("NOT_A_DIRECTORY", `the target's parent folder ${JSON.stringify(r.root)} does not exist on ${r.host}; create it first`, { cause: err });
    }
    throw err;
  }
}

// No top-level await: it would keep this file from being bundled as precompiled bytecode (bundle.ts).
void main().then((code) => {
  process.exitCode = code;
});
