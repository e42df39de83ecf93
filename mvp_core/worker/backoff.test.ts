import { expect, test } from "bun:test";
import { retryDelayMs } from "./backoff.ts";

test("the delay doubles per attempt, stays within [half, full] and is capped", () => {
  expect(retryDelayMs(1, 1000, 60_000, () => 0)).toBe(500);
  expect(retryDelayMs(1, 1000, 60_000, () => 1)).toBe(1000);
  expect(retryDelayMs(3, 1000, 60_000, () => 0)).toBe(2000);
  expect(retryDelayMs(3, 1000, 60_000, () => 1)).toBe(4000);
  expect(retryDelayMs(20, 1000, 60_000, () => 1)).toBe(60_000);
  for (let i = 0; i < 100; i++) {
    const d = retryDelayMs(2, 1000, 60_000);
    expect(d).toBeGreaterThanOrEqual(1000);
    expect(d).toBeLessThanOrEqual(2000);
  }
});
