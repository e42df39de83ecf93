import { afterEach, beforeEach, expect, test } from "bun:test";
import fs from "node:fs";
import path from "node:path";
import { leftovers, snapshot, tempDir, treeDiff, writeTree } from "./test_tree.ts";

const CLI = path.join(import.meta.dir, "cli.ts");
let dir: string;
let cleanup: () => Promise<void>;
beforeEach(async () => ({ dir, cleanup } = await tempDir("ketter-cli-")));
afterEach(() => cleanup());

function start(args: string[]): Bun.Subprocess<"ignore", "pipe", "pipe"> {
  return Bun.spawn(["bun", CLI, ...args], { cwd: dir, stdin: "ignore", stdout: "pipe", stderr: "pipe" });
}

async function cli(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const p = start(args);
  const [stdout, stderr, code] = await Promise.all([new Response(p.stdout).text(), new Response(p.stderr).text(), p.exited]);
  return { code, stdout, stderr };
}

/** Resolves once `file` exists (the transfer is mid-flight), or rejects if the process ends first. */
async function waitFor(file: string, p: Bun.Subprocess): Promise<void> {
  while (!fs.existsSync(file)) {
    if (p.exitCode !== null) throw new Error(`process exited (${p.exitCode}) before ${file} appeared`);
    await Bun.sleep(1);
  }
}

function bigTree(root: string): void {
  const files: Record<string, number> = {};
  for (let i = 0; i < 800; i++) files[`d${i % 8}/f${i}`] = 64 * 1024;
  writeTree(root, files);
}

test("copies with relative paths and prints a JSON result when stdout is not a terminal", async () => {
  writeTree(dir, { "src/a b/ü.txt": "x", "src/n": 100 });
  const r = await cli(["--from", "src", "--to", "dst", "--mode", "copy"]);
  expect(r.code).toBe(0);
  const out = JSON.parse(r.stdout);
  expect(out).toMatchObject({ ok: true, result: { files: 2, strategy: "direct", verified: { mode: "checksum" } } });
  expect(treeDiff(snapshot(path.join(dir, "dst")), snapshot(path.join(dir, "src")))).toEqual([]);
});

test("bad usage exits 2 and says what to fix", async () => {
  const r = await cli(["--from", "src", "--mode", "clone"]);
  expect(r.code).toBe(2);
  expect(r.stderr).toContain("--to is required");
  expect(r.stderr).toContain("--mode must be one of copy, move");
  const unknown = await cli(["--from", "a", "--to", "b", "--mode", "copy", "--fast"]);
  expect(unknown.code).toBe(2);
  expect(unknown.stderr).toContain("--fast");
  writeTree(dir, { "src/x": "x" });
  const inside = await cli(["--from", "src", "--to", "src/copy", "--mode", "copy", "--json"]);
  expect(inside.code).toBe(2);
  expect(JSON.parse(inside.stdout).error.code).toBe("TARGET_INSIDE_SOURCE");
});

test("a failed transfer exits 1 with the error code", async () => {
  const r = await cli(["--from", "missing", "--to", "dst", "--mode", "move"]);
  expect(r.code).toBe(1);
  expect(JSON.parse(r.stdout)).toMatchObject({ ok: false, error: { code: "SOURCE_NOT_FOUND", retryable: false } });
  writeTree(dir, { "src/x": "x", "dst/y": "y" });
  const exists = await cli(["--from", "src", "--to", "dst", "--mode", "copy"]);
  expect(exists.code).toBe(1);
  expect(JSON.parse(exists.stdout).error.code).toBe("TARGET_EXISTS");
  expect((await cli(["--from", "src", "--to", "dst", "--mode", "copy", "--overwrite"])).code).toBe(0);
});

test("kill -9 in the middle of a move leaves the source complete; a retry with the same id finishes", async () => {
  bigTree(path.join(dir, "src"));
  const before = snapshot(path.join(dir, "src"));
  const args = ["--from", "src", "--to", "dst", "--mode", "move", "--strategy", "direct", "--id", "job1"];
  const p = start(args);
  // Files land in scan order (d0, d1, …): a file of d2 existing means the copy is well under way.
  await waitFor(path.join(dir, ".ketter-job1.partial/d2/f2"), p);
  p.kill("SIGKILL");
  expect(await p.exited).not.toBe(0);
  expect(treeDiff(snapshot(path.join(dir, "src")), before)).toEqual([]);
  expect(fs.existsSync(path.join(dir, "dst"))).toBe(false);
  const again = await cli(args);
  expect(again.code).toBe(0);
  expect(fs.existsSync(path.join(dir, "src"))).toBe(false);
  expect(treeDiff(snapshot(path.join(dir, "dst")), before)).toEqual([]);
  expect(leftovers(dir)).toEqual([]);
});

test("SIGINT (Ctrl-C) cancels cleanly: exit 1, CANCELLED, no staging left, source intact", async () => {
  bigTree(path.join(dir, "src"));
  const before = snapshot(path.join(dir, "src"));
  const p = start(["--from", "src", "--to", "dst", "--mode", "move", "--strategy", "direct", "--id", "job2"]);
  await waitFor(path.join(dir, ".ketter-job2.partial"), p);
  p.kill("SIGINT");
  const [stdout, code] = await Promise.all([new Response(p.stdout).text(), p.exited]);
  expect(code).toBe(1);
  expect(JSON.parse(stdout).error.code).toBe("CANCELLED");
  expect(leftovers(dir)).toEqual([]);
  expect(fs.existsSync(path.join(dir, "dst"))).toBe(false);
  expect(treeDiff(snapshot(path.join(dir, "src")), before)).toEqual([]);
});
