/** A real redis-server of a test's own on a free loopback port, which the test may kill and restart. */
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import Redis from "ioredis";
import { freePort, waitFor } from "./ports.ts";

/** A running redis-server. `kill()` stops it abruptly (same port and folder kept for `restart()`); `stop()` also removes its folder. */
export interface RedisServer {
  url: string;
  port: number;
  kill(): Promise<void>;
  restart(): Promise<void>;
  stop(): Promise<void>;
}

/** True once `url` answers PING. */
async function answers(url: string): Promise<boolean> {
  const r = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null });
  // Refused connections are expected until the server listens; connect() rejects with them anyway.
  r.on("error", () => {});
  try {
    await r.connect();
    return (await r.ping()) === "PONG";
  } finally {
    r.disconnect();
  }
}

/** Starts redis-server without persistence (plus `args`, e.g. ["--appendonly", "yes"]) and waits until it answers. */
export async function startRedisServer(args: readonly string[] = []): Promise<RedisServer> {
  const port = await freePort();
  const dir = await mkdtemp(join(tmpdir(), "ketter-redis-"));
  const url = `redis://127.0.0.1:${port}/0`;
  let proc: ReturnType<typeof Bun.spawn> | undefined;

  const launch = async () => {
    proc = Bun.spawn(["redis-server", "--port", String(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", dir, ...args], {
      stdout: "ignore",
      stderr: "ignore",
    });
    await waitFor(() => answers(url), { what: `redis-server on port ${port}`, timeoutMs: 10_000 });
  };
  const kill = async () => {
    proc?.kill("SIGKILL");
    await proc?.exited;
    proc = undefined;
  };
  const stop = async () => {
    await kill();
    await rm(dir, { recursive: true, force: true });
  };

  try {
    await launch();
  } catch (err) {
    await stop();
    throw err;
  }
  return { url, port, kill, restart: launch, stop };
}
