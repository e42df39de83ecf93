// The latency relay against a real echo server: bytes arrive intact and in order, and a round trip
// takes at least twice the one-way delay. There is no upper bound: a loaded machine only ever adds
// time, so a ceiling would measure the machine, not the relay (bench:sftp reports real timings).
import { afterAll, beforeAll, expect, test } from "bun:test";
import net from "node:net";
import { startLatencyRelay, type LatencyRelay } from "./latency_relay.ts";

let echo: net.Server;
let relay: LatencyRelay;
const ONE_WAY_MS = 20;

beforeAll(async () => {
  echo = net.createServer((s) => s.pipe(s));
  await new Promise<void>((resolve) => echo.listen(0, "127.0.0.1", () => resolve()));
  const port = (echo.address() as net.AddressInfo).port;
  relay = await startLatencyRelay({ listenHost: "127.0.0.1", targetHost: "127.0.0.1", targetPort: port, oneWayMs: ONE_WAY_MS });
});
afterAll(async () => {
  await relay.stop();
  await new Promise<void>((resolve) => echo.close(() => resolve()));
});

/** Sends `data` through the relay to the echo server and collects the echo; resolves with it and the time to the first byte back. */
function roundTrip(data: Buffer): Promise<{ back: Buffer; firstByteMs: number }> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let received = 0;
    let firstByteMs = -1;
    const t0 = performance.now();
    const s = net.connect(relay.port, "127.0.0.1", () => s.write(data));
    s.on("data", (c: Buffer) => {
      if (firstByteMs < 0) firstByteMs = performance.now() - t0;
      chunks.push(c);
      received += c.length;
      if (received >= data.length) {
        s.end();
        resolve({ back: Buffer.concat(chunks), firstByteMs });
      }
    });
    s.on("error", reject);
  });
}

test("a round trip takes at least 2 × oneWayMs", async () => {
  const { back, firstByteMs } = await roundTrip(Buffer.from("ping"));
  expect(back.toString()).toBe("ping");
  expect(firstByteMs).toBeGreaterThanOrEqual(2 * ONE_WAY_MS - 1);
}, 30_000);

test("32 MiB arrive intact and in order", async () => {
  const data = Buffer.alloc(32 * 1024 * 1024);
  for (let i = 0; i < data.length; i += 4) data.writeUInt32LE(i, i);
  const { back } = await roundTrip(data);
  expect(back.length).toBe(data.length);
  expect(back.equals(data)).toBe(true);
}, 30_000);
