// --baseline of the transfer benchmarks: a checkout's CLI is found, a folder that is not one is
// refused with exit 2 and a message saying what to give, before anything is mounted or started.
import { describe, expect, test } from "bun:test";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { findBaseline, findBaselines } from "./baseline.ts";

const REPO = path.join(import.meta.dir, "../..");

describe("--baseline", () => {
  test("a checkout: its engine CLI, named by its commit", () => {
    const base = findBaseline(REPO);
    if (typeof base === "string") throw new Error(base);
    expect(base.cli).toBe(path.join(REPO, "mvp_core/transfer_engine/cli/cli.ts"));
    expect(base.label).toMatch(/^base [0-9a-f]{7,}$/);
  });

  test("several checkouts, comma-separated; the same one twice is refused", () => {
    const both = findBaselines(REPO);
    expect(typeof both === "string" ? both : both.map((b) => b.cli)).toEqual([path.join(REPO, "mvp_core/transfer_engine/cli/cli.ts")]);
    expect(findBaselines(`${REPO},${REPO}`)).toContain("two checkouts named base");
    expect(findBaselines(",")).toBe("--baseline needs a folder");
  });

  test("a checkout without its dependencies, or no checkout: refused with what to fix", () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "ketter-baseline-"));
    try {
      expect(findBaseline(dir)).toContain("no engine CLI there");
      fs.mkdirSync(path.join(dir, "mvp_core/transfer_engine"), { recursive: true });
      fs.writeFileSync(path.join(dir, "mvp_core/transfer_engine/cli.ts"), "");
      expect(findBaseline(dir)).toContain("run `bun install` there first");
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  for (const entry of ["mvp_core/bench/engine.ts", "mvp_core/bench/sftp.ts"]) {
    test(`${entry} --baseline /nonexistent: exit 2 before starting anything`, async () => {
      const p = Bun.spawn(["bun", entry, "--baseline", "/nonexistent/ketter"], { cwd: REPO, stdout: "pipe", stderr: "pipe" });
      const [code, err] = await Promise.all([p.exited, new Response(p.stderr).text()]);
      expect(code).toBe(2);
      expect(err).toContain("--baseline /nonexistent/ketter: no engine CLI there");
    }, 30_000);
  }
});
