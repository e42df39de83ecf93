import { describe, expect, test } from "bun:test";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { DISK_FAIL_BYTES, DISK_WARN_BYTES, checkBunVersion, checkDiskSpace, compareBunVersion, judgeDiskSpace, pinnedBunVersion } from "./runtime.ts";

describe("bun version", () => {
  test("the running Bun is compared with package.json's pin", async () => {
    const pinned = await pinnedBunVersion();
    expect(pinned).toMatch(/^\d+\.\d+\.\d+/);
    const r = await checkBunVersion();
    expect(r.details).toEqual({ running: Bun.version, pinned });
  });

  test("same: ok; other patch: warn; other minor: fail, each with the install command", () => {
    expect(compareBunVersion("1.4.5", "1.4.5").status).toBe("ok");
    const warn = compareBunVersion("1.4.2", "1.4.5");
    expect(warn.status).toBe("warn");
    expect(warn.hint).toContain("bun-v1.4.5");
    expect(compareBunVersion("1.3.5", "1.4.5").status).toBe("fail");
  });
});

describe("disk space", () => {
  test("measures a folder that does not exist yet through its parent", async () => {
    const dir = await mkdtemp(join(tmpdir(), "ketter-dku-disk-"));
    try {
      const r = checkDiskSpace([{ label: "reports", path: join(dir, "not", "yet") }]);
      expect(r.value).toContain("free at reports");
      expect(r.details?.places).toHaveLength(1);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  test("a portal root missing on this machine is a warning naming it", async () => {
    const dir = await mkdtemp(join(tmpdir(), "ketter-dku-disk-"));
    try {
      const r = checkDiskSpace([{ label: "reports", path: dir }, { label: "portal gone", path: join(dir, "nope"), mustExist: true }]);
      expect(r.status).toBe("warn");
      expect(r.value).toContain(`missing on this machine: portal gone (${join(dir, "nope")})`);
      expect(r.hint).toContain("rootPath");
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  test("the tightest place decides", () => {
    const place = (label: string, freeBytes: number) => ({ label, path: `/${label}`, freeBytes });
    expect(judgeDiskSpace([place("a", DISK_WARN_BYTES * 2)]).status).toBe("ok");
    const warn = judgeDiskSpace([place("a", DISK_WARN_BYTES * 2), place("b", DISK_WARN_BYTES - 1)]);
    expect(warn).toMatchObject({ status: "warn", hint: expect.stringContaining("/b") });
    expect(warn.value).toContain("at b (/b), 2 places");
    expect(judgeDiskSpace([place("a", DISK_FAIL_BYTES - 1), place("b", DISK_WARN_BYTES - 1)])).toMatchObject({ status: "fail", hint: expect.stringContaining("/a") });
  });
});
