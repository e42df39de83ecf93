/** Small helpers for tests and benchmarks that start real servers on loopback. */
import { createServer } from "node:net";

/** A TCP port that was free on `host` a moment ago (the OS picks it). */
export function freePort(host = "127.0.0.1"): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once("error", reject);
    srv.listen(0, host, () => {
      const addr = srv.address();
      const port = typeof addr === "object" && addr ? addr.port : 0;
      srv.close(() => (port ? resolve(port) : reject(new Error("no port assigned"))));
    });
  });
}

/** Polls `check` until it returns true (errors count as "not yet"); throws after timeoutMs naming `what`. */
export async function waitFor(
  check: () => Promise<boolean> | boolean,
  opts: { what: string; timeoutMs?: number; intervalMs?: number },
): Promise<void> {
  const deadline = Date.now() + (opts.timeoutMs ?? 15_000);
  let last: unknown;
  while (Date.now() < deadline) {
    try {
      if (await check()) return;
    } catch (err) {
      last = err;
    }
    await Bun.sleep(opts.intervalMs ?? 50);
  }
  throw new Error(`timed out waiting for ${opts.what}${last ? `: ${last instanceof Error ? last.message : String(last)}` : ""}`);
}
