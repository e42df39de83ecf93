/** The engine CLI itself (cli.ts starts it, normally from a cached bundle): copies or moves local files and folders. */
import { parseCliArgs, USAGE } from "./cli_args.ts";
import { ProgressLine, USAGE_CODES, failureMessage, summary } from "./cli_output.ts";
import { fromSystemError } from "./errors.ts";
import { LocalEndpoint } from "./local.ts";
import { transfer } from "./transfer.ts";

async function main(): Promise<number> {
  const args = parseCliArgs(process.argv.slice(2), process.cwd());
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
  const endpoint = new LocalEndpoint("/");
  try {
    const result = await transfer(args.spec, {
      source: endpoint,
      target: endpoint,
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
  }
}

// No top-level await: it would keep this file from being bundled as precompiled bytecode (cli_bundle.ts).
void main().then((code) => {
  process.exitCode = code;
});
