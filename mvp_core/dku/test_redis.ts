/** Test helper: a redis-server of the DKU tests' own, so a test can stop it or give it settings. */
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import Redis from "ioredis";
import { freePort, waitFor } from "../testing/ports.ts";

/** A running redis-server; `stop()` kills it and removes its folder (safe to call twice). */
export interface OwnRedis {
  url: string;
  stop(): Promise<void>;
}

/** Starts redis-server on a free loopback port with `args` (e.g. ["--appendonly", "yes"]). */
export async function startOwnRedis(args: readonly string[] = []): Promise<OwnRedis> {
  const port = await freePort();
  const dir = await mkdtemp(join(tmpdir(), "ketter-dku-redis-"));
  const proc = Bun.spawn(["redis-server", "--port", String(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", dir, ...args], {
    stdout: "ignore",
    stderr: "ignore",
  });
  const url = `redis://127.0.0.1:${port}/0`;
  const stop = async () => {
    proc.kill("SIGKILL");
    await proc.exited;
    await rm(dir, { recursive: true, force: true });
  };
  try {
    await waitFor(async () => {
      const r = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null });
      // The connect() rejection below carries the failure; the event would only be logged as unhandled.
      r.on("error", () => {});
      try {
        await r.connect();
        return (await r.ping()) === "PONG";
      } finally {
        r.disconnect();
      }
    }, { what: `redis-server on port ${port}`, timeoutMs: 10_000 });
  } catch (err) {
    await stop();
    throw err;
  }
  return { url, stop };
}
