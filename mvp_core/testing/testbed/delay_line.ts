/**
 * The packet-level delay line (delay_line.c) seen from TypeScript: compiled with gcc on first use
 * (cached by a hash of its source), started in a network namespace, and driven by one-line
 * commands. One process serves every queue of its namespace; each queue is one testbed path.
 */
import fs from "node:fs";
import path from "node:path";

const SOURCE = path.join(import.meta.dir, "delay_line.c");
const CACHE = path.resolve(import.meta.dir, "../../../node_modules/.cache/ketter-testbed");

/** Counters of one queue (packets; a GSO super-packet counts once). */
export interface QueueStats {
  passed: number;
  dropped: number;
  held: number;
}

/** A running delay line. */
export interface DelayLine {
  /** Binds (or re-tunes) queue `queue`: packets wait `oneWayMs`, `lossPct` % of them are dropped. */
  set(queue: number, oneWayMs: number, lossPct: number): Promise<void>;
  stats(queue: number): Promise<QueueStats>;
  /** Ends the process: every packet it still holds is dropped by the kernel. */
  stop(): Promise<void>;
}

/** Compiles delay_line.c unless a binary of this exact source exists; returns the binary's path. */
export function buildDelayLine(): string {
  const source = fs.readFileSync(SOURCE);
  const binary = path.join(CACHE, `delay_line-${new Bun.CryptoHasher("sha256").update(source).digest("hex").slice(0, 16)}`);
  if (fs.existsSync(binary)) return binary;
  if (!Bun.which("gcc")) throw new Error("the WAN testbed compiles its delay line with gcc: apt-get install gcc");
  fs.mkdirSync(CACHE, { recursive: true });
  // Built under a temporary name and renamed: two test processes may build at once.
  const tmp = `${binary}.${process.pid}.tmp`;
  const p = Bun.spawnSync(["gcc", "-O2", "-Wall", "-o", tmp, SOURCE], { stdout: "pipe", stderr: "pipe" });
  if (p.exitCode !== 0) throw new Error(`gcc could not build ${SOURCE}: ${p.stderr.toString().trim()}`);
  fs.renameSync(tmp, binary);
  return binary;
}

/** Starts a delay line in network namespace `netns` (null: this process's namespace). */
export async function startDelayLine(netns: string | null): Promise<DelayLine> {
  const binary = buildDelayLine();
  const argv = netns === null ? [binary] : ["nsenter", `--net=/run/netns/${netns}`, binary];
  // stdin is its lifeline: when this process dies, the pipe closes and the delay line exits.
  const child = Bun.spawn(argv, { stdin: "pipe", stdout: "pipe", stderr: "pipe" });
  const lines = lineReader(child.stdout);
  const stderr = new Response(child.stderr).text();
  const failed = async (what: string): Promise<Error> => {
    child.kill("SIGKILL");
    await child.exited;
    return new Error(`delay line${netns ? ` in ${netns}` : ""}: ${what}: ${(await stderr).trim()}`);
  };
  const hello = await lines.next();
  if (hello === null || !hello.startsWith("ready")) throw await failed(`did not start (said ${JSON.stringify(hello)})`);
  // One command at a time: every command is answered by exactly one line, in order.
  let chain: Promise<unknown> = Promise.resolve();
  const ask = (command: string): Promise<string> => {
    const next = chain.then(async () => {
      child.stdin.write(`${command}\n`);
      child.stdin.flush();
      const answer = await lines.next();
      if (answer === null) throw await failed(`exited while answering "${command}"`);
      if (answer.startsWith("error")) throw new Error(`delay line refused "${command}": ${answer}`);
      return answer;
    });
    chain = next.catch(() => undefined); // the caller gets the error; the next command still runs
    return next;
  };
  return {
    async set(queue, oneWayMs, lossPct) {
      if (!(oneWayMs >= 0) || !(lossPct >= 0 && lossPct <= 100)) throw new Error(`delay ${oneWayMs} ms / loss ${lossPct} %: both must be ≥ 0, loss ≤ 100`);
      await ask(`set ${queue} ${Math.round(oneWayMs * 1000)} ${Math.round(lossPct * 10_000)}`);
    },
    async stats(queue) {
      const [, , passed, dropped, held] = (await ask(`stats ${queue}`)).split(" ").map(Number);
      return { passed: passed ?? 0, dropped: dropped ?? 0, held: held ?? 0 };
    },
    async stop() {
      if (child.exitCode === null && child.signalCode === null) child.stdin.end();
      const timer = setTimeout(() => child.kill("SIGKILL"), 5000);
      await child.exited;
      clearTimeout(timer);
    },
  };
}

/** Reads a stream line by line; next() is null at its end. */
function lineReader(stream: ReadableStream<Uint8Array>): { next(): Promise<string | null> } {
  const reader = stream.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  return {
    async next() {
      for (;;) {
        const at = buffer.indexOf("\n");
        if (at >= 0) {
          const line = buffer.slice(0, at);
          buffer = buffer.slice(at + 1);
          return line;
        }
        const { value, done } = await reader.read();
        if (done) return null;
        buffer += decoder.decode(value, { stream: true });
      }
    },
  };
}
