/**
 * A folder swapped for a symbolic link while a local transfer streams must not make the engine
 * read or write outside the portal's root (issue: the fast path once resolved folders once, then
 * opened files by path). The swap happens inside the progress callback, so it lands exactly while
 * files are being copied, on the engine's thread and the helper thread alike; an in-place rewrite
 * that restores the mtime (`touch -r`) must not produce a torn copy either.
 */
import { afterEach, beforeEach, expect, test } from "bun:test";
import fs from "node:fs";
import path from "node:path";
import { isTransferError, transfer, type TransferSpecInput } from "../../index.ts";
import type { TransferContext } from "../../transfer.ts";
import { leftovers, tempDir, writeTree } from "../../test_tree.ts";
import { localEndpoint } from "../testing.ts";

let dir: string;
let cleanup: () => Promise<void>;
beforeEach(async () => ({ dir, cleanup } = await tempDir("ketter-races-")));
afterEach(() => cleanup());

const SECRET = "secret outside the portal root";

/** Every file's content below `root`, as text. */
function contents(root: string): string[] {
  const out: string[] = [];
  const visit = (p: string): void => {
    const st = fs.lstatSync(p);
    if (st.isDirectory()) for (const n of fs.readdirSync(p)) visit(path.join(p, n));
    else if (st.isFile()) out.push(fs.readFileSync(p, "latin1"));
  };
  if (fs.existsSync(root)) visit(root);
  return out;
}

async function outcome(spec: TransferSpecInput, ctx: Partial<TransferContext>): Promise<string> {
  try {
    await transfer(spec, { source: localEndpoint(path.join(dir, "portal")), target: localEndpoint(path.join(dir, "portal")), ...ctx });
    return "done";
  } catch (err) {
    if (!isTransferError(err)) throw err;
    return err.code;
  }
}

/** 600 small files in `early/` (copied first, on two threads) and a few in `late/`. */
function tree(): void {
  const files: Record<string, string> = {};
  for (let i = 0; i < 600; i++) files[`portal/src/early/f${String(i).padStart(3, "0")}`] = `early ${i}`;
  for (let i = 0; i < 5; i++) files[`portal/src/late/g${i}`] = `late ${i}`;
  files["outside/secret"] = SECRET;
  writeTree(dir, files);
}

for (const strategy of ["direct", "zip"] as const) {
  test(`a source folder swapped for a link to outside the root mid-copy (${strategy}) → PATH_ESCAPE; nothing from outside is copied`, async () => {
    tree();
    // The link has the same names as the folder it replaces, so following it would copy the secret.
    for (let i = 0; i < 5; i++) fs.writeFileSync(path.join(dir, `outside/g${i}`), SECRET);
    let swapped = false;
    const code = await outcome({ sourcePath: "src", targetPath: "dst", mode: "copy", strategy }, {
      options: { progressIntervalMs: 0 },
      onProgress: (p) => {
        if (swapped || p.phase !== "transfer" || p.filesDone < 50) return;
        swapped = true;
        fs.renameSync(path.join(dir, "portal/src/late"), path.join(dir, "late-away"));
        fs.symlinkSync(path.join(dir, "outside"), path.join(dir, "portal/src/late"));
      },
    });
    expect(swapped).toBe(true);
    expect(code).toBe("PATH_ESCAPE");
    expect(contents(path.join(dir, "portal")).filter((c) => c === SECRET)).toEqual([]);
    expect(leftovers(path.join(dir, "portal"))).toEqual([]);
  });
}

test("a staging folder swapped for a link to outside the root mid-copy → the copy fails; nothing is written outside", async () => {
  tree();
  const outsideBefore = fs.readdirSync(path.join(dir, "outside")).sort();
  let swapped = false;
  const code = await outcome({ id: "race1", sourcePath: "src", targetPath: "dst", mode: "copy", strategy: "direct" }, {
    options: { progressIntervalMs: 0 },
    onProgress: (p) => {
      if (swapped || p.phase !== "transfer" || p.filesDone < 50) return;
      swapped = true;
      const staged = path.join(dir, "portal/.ketter-race1.partial/late");
      fs.renameSync(staged, path.join(dir, "staged-away"));
      fs.symlinkSync(path.join(dir, "outside"), staged);
    },
  });
  expect(swapped).toBe(true);
  expect(code).toBe("PATH_ESCAPE");
  expect(fs.readdirSync(path.join(dir, "outside")).sort()).toEqual(outsideBefore);
  expect(fs.readFileSync(path.join(dir, "outside/secret"), "utf8")).toBe(SECRET);
  expect(fs.existsSync(path.join(dir, "portal/dst"))).toBe(false);
});

test("an in-place rewrite that restores size and mtime (touch -r) is caught: SOURCE_CHANGED, no torn copy committed", async () => {
  writeTree(dir, { "portal/src/a": "a".repeat(1000), "portal/src/b": "b".repeat(1000) });
  const b = path.join(dir, "portal/src/b");
  const st = fs.statSync(b);
  let rewritten = false;
  const code = await outcome({ sourcePath: "src", targetPath: "dst", mode: "move", strategy: "direct" }, {
    options: { progressIntervalMs: 0 },
    onProgress: (p) => {
      // After the scan, before the copy: same size, same mtime, other bytes.
      if (rewritten || p.phase !== "plan") return;
      rewritten = true;
      fs.writeFileSync(b, "B".repeat(1000));
      fs.utimesSync(b, st.atime, st.mtime);
    },
  });
  expect(rewritten).toBe(true);
  expect(code).toBe("SOURCE_CHANGED");
  expect(fs.existsSync(path.join(dir, "portal/dst"))).toBe(false);
  expect(fs.readFileSync(b, "utf8")).toBe("B".repeat(1000)); // the source is kept, as it now is
  expect(leftovers(path.join(dir, "portal"))).toEqual([]);
});
