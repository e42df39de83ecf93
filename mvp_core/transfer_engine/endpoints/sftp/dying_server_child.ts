/**
 * Child process of dying_server.test.ts: runs one transfer between a local folder and a test sshd,
 * holds it at a gate once `gateBytes` have moved (prints "gate"), lets it go on when the parent —
 * which killed sshd meanwhile — writes a line, and reports the outcome and every uncaught exception
 * or unhandled rejection it counted as one JSON line. A process of its own, so a crash of the
 * engine's process is observed from outside, as the worker would suffer it.
 */
import { transfer, type TransferSpecInput } from "../../index.ts";
import { isTransferError } from "../../errors.ts";
import { localEndpoint } from "../testing.ts";
import { connectSsh, type SshTarget } from "./index.ts";
import { metered } from "./test_support.ts";

/** What the parent passes in KETTER_DYING_SERVER (JSON). */
export interface DyingServerJob {
  target: SshTarget;
  localDir: string;
  direction: "push" | "pull";
  strategy: "direct" | "zip";
  gateBytes: number;
}

/** What the child prints last (one JSON line). */
export interface DyingServerReport {
  gated: boolean;
  error: { code: string; retryable: boolean; message: string } | null;
  uncaught: string[];
}

const uncaught: string[] = [];
process.on("uncaughtException", (e) => uncaught.push(`uncaughtException: ${String(e)}`));
process.on("unhandledRejection", (e) => uncaught.push(`unhandledRejection: ${String(e)}`));

const job = JSON.parse(process.env.KETTER_DYING_SERVER ?? "{}") as DyingServerJob;
let moved = 0;
let gate: Promise<void> | null = null;

/** Holds everything once gateBytes have moved, until the parent answers on stdin. */
async function count(n: number): Promise<void> {
  moved += n;
  if (moved < job.gateBytes) return;
  gate ??= (async () => {
    process.stdout.write("gate\n");
    for await (const _ of console) return; // the parent's line: sshd is dead now
  })();
  await gate;
}

const remote = await connectSsh(job.target);
const local = metered(localEndpoint(job.localDir), job.direction === "push" ? "reads" : "writes", count);
const spec: TransferSpecInput = { id: "dying", sourcePath: "src", targetPath: "dst", mode: "copy", strategy: job.strategy, verify: "checksum" };
let error: DyingServerReport["error"] = null;
try {
  await transfer(spec, job.direction === "push" ? { source: local, target: remote } : { source: remote, target: local });
} catch (err) {
  error = isTransferError(err) ? { code: err.code, retryable: err.retryable, message: err.message } : { code: "not a TransferError", retryable: false, message: String(err) };
}
await remote.close().catch((e: unknown) => uncaught.push(`close: ${String(e)}`));
// ssh2 reports some failures after the request they belong to was answered (a channel's error,
// the SFTP client's "No response from server"): give them a few turns of the event loop to surface.
for (let i = 0; i < 20; i++) await new Promise((r) => setTimeout(r, 10));
const report: DyingServerReport = { gated: gate !== null, error, uncaught };
process.stdout.write(`${JSON.stringify(report)}\n`);
process.exit(0);
