import { afterEach, beforeEach, expect, test } from "bun:test";
import fs from "node:fs";
import path from "node:path";
import { bundledEntry } from "./bundle.ts";
import { tempDir, writeTree } from "../test_tree.ts";

let dir: string;
let cleanup: () => Promise<void>;
beforeEach(async () => ({ dir, cleanup } = await tempDir("ketter-bundle-")));
afterEach(() => cleanup());

function run(file: string): string {
  const p = Bun.spawnSync(["bun", file], { stdout: "pipe", stderr: "pipe" });
  if (p.exitCode !== 0) throw new Error(p.stderr.toString());
  return p.stdout.toString();
}

test("builds once (with bytecode), reuses the bundle, and rebuilds when any input changes or vanishes", async () => {
  writeTree(dir, { "src/main.ts": 'import { word } from "./word.ts";\nvoid Bun.write(Bun.stdout, word);\n', "src/word.ts": 'export const word = "one";\n' });
  const main = path.join(dir, "src/main.ts");
  const cache = path.join(dir, "cache");
  const first = await bundledEntry(main, cache);
  expect(run(first)).toBe("one");
  expect(fs.existsSync(`${first}.jsc`)).toBe(true);
  expect(JSON.parse(fs.readFileSync(path.join(cache, "inputs.json"), "utf8"))).toEqual([main, path.join(dir, "src/word.ts")]);
  const mtime = fs.statSync(first).mtimeMs;
  expect(await bundledEntry(main, cache)).toBe(first);
  expect(fs.statSync(first).mtimeMs).toBe(mtime); // reused, not rewritten

  fs.writeFileSync(path.join(dir, "src/word.ts"), 'export const word = "two";\n');
  const second = await bundledEntry(main, cache);
  expect(second).not.toBe(first);
  expect(run(second)).toBe("two");
  expect(fs.existsSync(first)).toBe(true); // a concurrent start may still be importing it

  // A top-level await cannot be CommonJS bytecode: a plain ES module bundle instead.
  fs.writeFileSync(path.join(dir, "src/main.ts"), 'await Bun.write(Bun.stdout, "three");\n');
  fs.rmSync(path.join(dir, "src/word.ts"));
  const third = await bundledEntry(main, cache);
  expect(run(third)).toBe("three");
  expect(fs.existsSync(`${third}.jsc`)).toBe(false);
  expect(JSON.parse(fs.readFileSync(path.join(cache, "inputs.json"), "utf8"))).toEqual([main]);
});

test("a source that does not compile is reported, not bundled", async () => {
  writeTree(dir, { "src/main.ts": "export const = ;\n" });
  await expect(bundledEntry(path.join(dir, "src/main.ts"), path.join(dir, "cache"))).rejects.toThrow(/bundling .* failed: .*Expected identifier/);
  expect(fs.existsSync(path.join(dir, "cache"))).toBe(false);
});

test("the CLI gives the same result from its bundle and from its sources (direct and zip)", async () => {
  writeTree(dir, { "src/a": 1000, "src/b/c": "c" });
  const cli = path.join(import.meta.dir, "cli.ts");
  const runs = [["1", "direct"], ["0", "direct"], ["1", "zip"], ["0", "zip"]] as const;
  const outputs = runs.map(([bundle, strategy], i) => {
    const p = Bun.spawnSync(["bun", cli, "--from", "src", "--to", `dst${i}`, "--mode", "copy", "--strategy", strategy, "--json", "--id", "same"], { cwd: dir, env: { ...process.env, KETTER_ENGINE_BUNDLE: bundle }, stdout: "pipe", stderr: "pipe" });
    expect(p.stderr.toString()).toBe("transfer same\n"); // the id, and no "running from sources" fallback
    expect(p.exitCode).toBe(0);
    const { result } = JSON.parse(p.stdout.toString()) as { result: { durationsMs: unknown } };
    result.durationsMs = {};
    return result;
  });
  expect(outputs[0]).toEqual(outputs[1]);
  expect(outputs[2]).toEqual(outputs[3]);
  expect(outputs[2]).toMatchObject({ strategy: "zip", archives: 1 });
  for (const i of [0, 2]) expect(fs.readFileSync(path.join(dir, `dst${i}/a`))).toEqual(fs.readFileSync(path.join(dir, "src/a")));
});
