import { describe, expect, test } from "bun:test";
import { CheckFailure, errorMessage, runCheck } from "./check.ts";

describe("runCheck", () => {
  test("an outcome gets the name, start time and duration", async () => {
    const r = await runCheck({ name: "x", timeoutMs: 1_000, failHint: "h", run: async () => ({ status: "ok", value: "fine" }) });
    expect(r).toMatchObject({ name: "x", status: "ok", value: "fine" });
    expect(r.durationMs).toBeGreaterThanOrEqual(0);
    expect(Date.parse(r.at)).not.toBeNaN();
  });

  test("a throw becomes fail with the check's hint, a CheckFailure with its own", async () => {
    const plain = await runCheck({ name: "x", timeoutMs: 1_000, failHint: "do this", run: async () => { throw new Error("boom\n  at line"); } });
    expect(plain).toMatchObject({ status: "fail", value: "boom at line", hint: "do this" });
    const own = await runCheck({ name: "x", timeoutMs: 1_000, failHint: "generic", run: async () => { throw new CheckFailure("bad", "specific", { n: 1 }); } });
    expect(own).toMatchObject({ status: "fail", value: "bad", hint: "specific", details: { n: 1 } });
  });

  test("a check that never answers fails at its deadline and sees its signal abort", async () => {
    let aborted = false;
    const r = await runCheck({
      name: "slow", timeoutMs: 50, failHint: "wake it up",
      run: (signal) => new Promise((_, reject) => signal.addEventListener("abort", () => { aborted = true; reject(signal.reason); })),
    });
    expect(r).toMatchObject({ status: "fail", value: "no answer within 50 ms", hint: "wake it up" });
    expect(aborted).toBe(true);
  });

  test("errorMessage digs the cause out of an empty AggregateError", () => {
    expect(errorMessage(new AggregateError([Object.assign(new Error("connect ECONNREFUSED"), { code: "ECONNREFUSED" })], ""))).toBe("connect ECONNREFUSED");
    expect(errorMessage(Object.assign(new Error(""), { code: "ETIMEDOUT" }))).toBe("ETIMEDOUT");
    expect(errorMessage("text")).toBe("text");
  });

  test("an interrupt fails a running check at once, and a check not yet begun never starts", async () => {
    const ctl = new AbortController();
    const running = runCheck({ name: "long", timeoutMs: 60_000, failHint: "h", run: (signal) => new Promise((_, reject) => signal.addEventListener("abort", () => reject(signal.reason))) }, ctl.signal);
    ctl.abort();
    expect(await running).toMatchObject({ status: "fail", value: "interrupted", hint: expect.stringContaining("rerun") });
    let started = false;
    const late = await runCheck({ name: "late", timeoutMs: 60_000, failHint: "h", run: async () => ((started = true), { status: "ok", value: "" }) }, ctl.signal);
    expect(late.status).toBe("fail");
    expect(started).toBe(false);
  });
});
