/**
 * A TCP relay that adds latency: whatever arrives on `listenHost:port` reaches `targetHost:targetPort`
 * `oneWayMs` later, and the answers come back `oneWayMs` later too (round trip = 2 × oneWayMs).
 *
 * It runs as a child process (`startLatencyRelay`) so that its timers are not delayed by whatever
 * the caller's event loop is busy with (hashing, polling): a late timer would add latency we did not
 * ask for. Being a user-space relay, it delays application data (SSH packets, SFTP requests and
 * their answers), not TCP's own ACKs: TCP congestion control never sees the delay, which is what a
 * clean, loss-free WAN link looks like to SSH, but not a lossy one.
 *
 * Child mode: `bun mvp_core/testing/latency_relay.ts '{"listenHost":…,"targetHost":…,"targetPort":…,"oneWayMs":…}'`
 * prints `listening <port>` once ready and runs until killed.
 */
import net from "node:net";
import { fileURLToPath } from "node:url";

/** Where the relay listens, where it forwards to, and the delay of each direction. */
export interface LatencyRelayOptions {
  listenHost: string;
  targetHost: string;
  targetPort: number;
  oneWayMs: number;
  /** Port to listen on; 0 (default) lets the OS pick a free one. */
  listenPort?: number;
}

/** A running relay. */
export interface LatencyRelay {
  port: number;
  /** Stops the relay: listening socket and every relayed connection close. */
  stop(): Promise<void>;
}

// Bytes a direction may hold in its delay line before it stops reading: bounds memory when the
// receiver is slower than the sender, without limiting a fast link (20 ms × 1 GB/s = 20 MB).
const MAX_QUEUED_BYTES = 64 * 1024 * 1024;
const SELF = fileURLToPath(import.meta.url);

/** Relays `from` into `into`, each chunk `oneWayMs` after it arrived, in order. */
function delayLine(from: net.Socket, into: net.Socket, oneWayMs: number): void {
  const queue: Array<{ due: number; data: Buffer }> = [];
  let queued = 0;
  let timer: ReturnType<typeof setTimeout> | null = null;
  let ended = false;
  let waitingForDrain = false;

  const resumeIfRoom = (): void => {
    if (!waitingForDrain && queued < MAX_QUEUED_BYTES && from.isPaused()) from.resume();
  };
  const release = (): void => {
    timer = null;
    const now = performance.now();
    while (queue.length > 0 && queue[0]!.due <= now && !into.destroyed) {
      const { data } = queue.shift()!;
      queued -= data.length;
      if (!into.write(data) && !waitingForDrain) {
        waitingForDrain = true;
        from.pause();
        into.once("drain", () => {
          waitingForDrain = false;
          resumeIfRoom();
        });
      }
    }
    resumeIfRoom();
    if (queue.length > 0) timer = setTimeout(release, Math.max(0, queue[0]!.due - performance.now()));
    else if (ended) into.end();
  };

  from.on("data", (data: Buffer) => {
    queue.push({ due: performance.now() + oneWayMs, data });
    queued += data.length;
    if (queued >= MAX_QUEUED_BYTES) from.pause();
    timer ??= setTimeout(release, oneWayMs);
  });
  // A half-close travels with the same delay as the data before it.
  from.on("end", () => {
    ended = true;
    if (queue.length === 0 && timer === null) timer = setTimeout(release, oneWayMs);
  });
}

/** Runs the relay in this process; resolves once it listens. */
export async function runLatencyRelay(opts: LatencyRelayOptions): Promise<LatencyRelay> {
  const sockets = new Set<net.Socket>();
  const server = net.createServer((client) => {
    const upstream = net.connect(opts.targetPort, opts.targetHost);
    for (const s of [client, upstream]) {
      s.setNoDelay(true);
      sockets.add(s);
      // A reset on one side (sshd killed, client gone) must reach the other side as a closed
      // connection, exactly as it would through a router; there is nothing else to do with it.
      s.on("error", () => {
        client.destroy();
        upstream.destroy();
      });
      s.on("close", () => {
        sockets.delete(s);
        (s === client ? upstream : client).destroy();
      });
    }
    delayLine(client, upstream, opts.oneWayMs);
    delayLine(upstream, client, opts.oneWayMs);
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(opts.listenPort ?? 0, opts.listenHost, () => resolve());
  });
  const address = server.address();
  if (typeof address !== "object" || address === null) throw new Error("the relay has no listening address");
  return {
    port: address.port,
    stop: () =>
      new Promise<void>((resolve, reject) => {
        for (const s of sockets) s.destroy();
        server.close((err) => (err ? reject(err) : resolve()));
      }),
  };
}

/** Starts the relay as a child process (accurate timers); resolves once it listens. */
export async function startLatencyRelay(opts: LatencyRelayOptions): Promise<LatencyRelay> {
  const child = Bun.spawn(["bun", SELF, JSON.stringify(opts)], { stdin: "ignore", stdout: "pipe", stderr: "pipe" });
  const reader = child.stdout.getReader();
  let text = "";
  const deadline = setTimeout(() => child.kill("SIGKILL"), 15_000);
  try {
    while (!text.includes("\n")) {
      const { value, done } = await reader.read();
      if (done) {
        const stderr = await new Response(child.stderr).text();
        throw new Error(`latency relay exited before listening (code ${await child.exited}): ${stderr.trim()}`);
      }
      text += new TextDecoder().decode(value);
    }
  } finally {
    clearTimeout(deadline);
    reader.releaseLock();
  }
  const match = /^listening (\d+)$/m.exec(text);
  if (!match) throw new Error(`latency relay said ${JSON.stringify(text.trim())} instead of "listening <port>"`);
  return {
    port: Number(match[1]),
    stop: async () => {
      if (child.exitCode === null && child.signalCode === null) child.kill("SIGTERM");
      await child.exited;
    },
  };
}

if (import.meta.main) {
  const opts = JSON.parse(process.argv[2] ?? "{}") as LatencyRelayOptions;
  const relay = await runLatencyRelay(opts);
  process.stdout.write(`listening ${relay.port}\n`);
  process.on("SIGTERM", () => void relay.stop().then(() => process.exit(0), () => process.exit(1)));
}
