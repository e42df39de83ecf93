import { afterAll, describe, expect, test } from "bun:test";
import { appendFile, cp, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { compareFolder, manifestBytes, writeManyFolder, writeSmallFolder } from "./fixture.ts";

const dirs: string[] = [];
afterAll(() => Promise.all(dirs.map((d) => rm(d, { recursive: true, force: true }))));

describe("smoke fixture", () => {
  test("generates both folders and recognises an exact copy", async () => {
    const dir = await mkdtemp(join(tmpdir(), "ketter-dku-fixture-"));
    dirs.push(dir);
    const small = await writeSmallFolder(join(dir, "small"));
    const many = await writeManyFolder(join(dir, "many"), { smallFiles: 0, manyFiles: 250 });
    expect(small.size).toBe(4);
    expect(manifestBytes(small)).toBeGreaterThan(512 * 1024);
    expect(many.size).toBe(250);
    expect([...many.values()].every((f) => f.size < 1024)).toBe(true);
    await cp(join(dir, "many"), join(dir, "copy"), { recursive: true });
    expect(await compareFolder(join(dir, "copy"), many)).toEqual([]);
  });

  test("reports missing, extra and changed files", async () => {
    const dir = await mkdtemp(join(tmpdir(), "ketter-dku-fixture-"));
    dirs.push(dir);
    const small = await writeSmallFolder(join(dir, "small"));
    await cp(join(dir, "small"), join(dir, "copy"), { recursive: true });
    await rm(join(dir, "copy", "clip_2.mov"));
    await writeFile(join(dir, "copy", "stray.txt"), "x");
    await appendFile(join(dir, "copy", "sub", "clip_1.mov"), "!");
    const size = small.get("sub/clip_1.mov")!.size;
    expect((await compareFolder(join(dir, "copy"), small)).sort()).toEqual(
      ["missing clip_2.mov", `sub/clip_1.mov: ${size + 1} bytes, expected ${size}`, "unexpected file stray.txt"].sort(),
    );
  });
});
