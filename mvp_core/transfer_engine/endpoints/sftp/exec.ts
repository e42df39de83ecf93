/**
 * Exec channels: a remote command run to completion (output gathered), a command's stdout streamed
 * with backpressure, and the state of a long-lived channel (exit status, stderr, stdout lines).
 * ssh2 reports a command's exit status on `exit` and again on `close`; both are read, because the
 * `exit` event alone was missed at times under load.
 */
import { collectGarbageEvery } from "../../gc.ts";
import type { ClientChannel } from "ssh2";
import { throwIfCancelled } from "../../cancel.ts";
import { TransferError } from "../../errors.ts";
import { raceTimeout } from "../../timeout.ts";
import { widenReceiveWindow } from "./connection.ts";
import type { ExecSource } from "./connection_pool.ts";
import { commandError } from "./remote_shell.ts";

/** Exec reads pause the channel above this much unread data and resume below the low mark. */
const STREAM_QUEUE_HIGH = 8 * 1024 * 1024;
const STREAM_QUEUE_LOW = 2 * 1024 * 1024;
/** Keeps at most this much of a command's stderr (for messages). */
const STDERR_MAX = 65536;

/** Options of a remote command run to completion. */
export interface RunOptions {
  stdin?: Uint8Array;
  signal?: AbortSignal;
  timeoutMs?: number;
}

/** Exit code and output of a remote command. */
export interface RunResult {
  code: number | null;
  stdout: Buffer;
  stderr: string;
}

/** Runs one remote command to completion, feeding `stdin`; returns exit code and output. */
export async function runRemote(conn: ExecSource, label: string, command: string, opts: RunOptions = {}): Promise<RunResult> {
  throwIfCancelled(opts.signal);
  conn.check();
  const state = new ChannelState(await conn.exec(command, opts.signal), true);
  const onAbort = (): void => {
    state.ch.close();
  };
  opts.signal?.addEventListener("abort", onAbort, { once: true });
  if (opts.stdin) state.ch.end(opts.stdin);
  else state.ch.end();
  try {
    if (opts.timeoutMs) {
      await raceTimeout(state.closed, opts.timeoutMs, () => {
        state.ch.close();
        throw new TransferError("TIMEOUT", `remote command on ${label} did not finish within ${opts.timeoutMs} ms`);
      });
    } else await state.closed;
  } finally {
    opts.signal?.removeEventListener("abort", onAbort);
  }
  throwIfCancelled(opts.signal);
  const lost = conn.lostFor(state.ch);
  if (lost) throw lost;
  return { code: state.exitCode, stdout: Buffer.concat(state.stdout), stderr: state.stderr };
}

/**
 * Streams a remote command's stdout; a non-zero exit (other than `okCodes`) becomes an error after
 * the data (see commandError), and the generator returns the exit code.
 */
export async function* streamCommand(conn: ExecSource, command: string, rel: string, action: string, signal?: AbortSignal, okCodes: readonly number[] = [0]): AsyncGenerator<Uint8Array, number | null> {
  throwIfCancelled(signal);
  conn.check();
  const ch = await conn.exec(command, signal, true);
  // A fast command's exit status can arrive before a listener exists (the channel is handed over a
  // microtask later); ssh2 repeats the code on close, which waits for the data to be read.
  const state = new ChannelState(ch, "ignore");
  const onAbort = (): void => {
    ch.close();
  };
  signal?.addEventListener("abort", onAbort, { once: true });
  ch.end(); // no stdin
  // Not `for await (… of ch)`: at EOF that destroys the channel, and sshd may send the exit
  // status after EOF, so the status was lost under load. Data is queued until the channel closes.
  const queue: Buffer[] = [];
  let queued = 0;
  let wake: (() => void) | null = null;
  ch.on("data", (d: Buffer) => {
    queue.push(d);
    queued += d.length;
    if (queued > STREAM_QUEUE_HIGH) ch.pause(); // the window stops growing: the remote waits
    else widenReceiveWindow(ch);
    wake?.();
  });
  void state.closed.then(() => wake?.());
  let complete = false;
  try {
    for (;;) {
      const chunk = queue.shift();
      if (chunk) {
        queued -= chunk.length;
        if (queued < STREAM_QUEUE_LOW && ch.isPaused()) ch.resume();
        collectGarbageEvery(chunk.length);
        yield chunk;
        continue;
      }
      if (state.isClosed) break;
      await new Promise<void>((r) => {
        wake = r;
      });
      wake = null;
    }
    complete = true;
  } finally {
    signal?.removeEventListener("abort", onAbort);
    if (!complete) ch.close(); // consumer stopped early or failed: free the channel
  }
  throwIfCancelled(signal);
  const lost = conn.lostFor(ch);
  if (lost) throw lost;
  if (state.exitCode === null || !okCodes.includes(state.exitCode)) throw commandError(action, rel, state.exitCode, state.stderr);
  return state.exitCode;
}

/** An exec channel's exit status, stderr and stdout (lines, raw bytes, or left to the caller), gathered as they arrive. */
export class ChannelState {
  exitCode: number | null = null;
  stderr = "";
  isClosed = false;
  readonly closed: Promise<void>;
  private lines: string[] = [];
  private partial = "";
  private lineWaiters: ((line: string | null) => void)[] = [];
  /** With `stdout` true, stdout is kept as bytes (NUL-separated reports may hold any name) instead of lines. */
  readonly stdout: Buffer[] = [];

  constructor(readonly ch: ClientChannel, stdout: "lines" | true | "ignore" = "lines") {
    this.closed = new Promise<void>((r) => ch.once("close", (closeCode?: number | null) => {
      if (this.exitCode === null && typeof closeCode === "number") this.exitCode = closeCode;
      this.isClosed = true;
      for (const w of this.lineWaiters.splice(0)) w(null);
      r();
    }));
    ch.on("exit", (c: number | null) => {
      this.exitCode = c;
    });
    ch.stderr.on("data", (d: Buffer) => {
      if (this.stderr.length < STDERR_MAX) this.stderr += d.toString();
    });
    if (stdout === "ignore") return;
    ch.on("data", (d: Buffer) => {
      if (stdout === true) {
        this.stdout.push(d);
        return;
      }
      this.partial += d.toString();
      if (this.partial.length > 65536) this.partial = this.partial.slice(-65536); // never expected: reports are short lines
      for (let nl = this.partial.indexOf("\n"); nl >= 0; nl = this.partial.indexOf("\n")) {
        const line = this.partial.slice(0, nl);
        this.partial = this.partial.slice(nl + 1);
        const w = this.lineWaiters.shift();
        if (w) w(line);
        else this.lines.push(line);
      }
    });
  }

  /** Everything printed so far that is not a complete line. */
  get tail(): string {
    return this.partial;
  }

  /** The next stdout line, or null once the channel closed without one. */
  nextLine(): Promise<string | null> {
    const line = this.lines.shift();
    if (line !== undefined) return Promise.resolve(line);
    if (this.isClosed) return Promise.resolve(null);
    return new Promise((r) => this.lineWaiters.push(r));
  }
}

