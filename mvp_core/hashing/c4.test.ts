/** C4 ids against ascmhl's own: the chain files of the reference scenarios record each manifest's C4. */
import { expect, test } from "bun:test";
import { readFileSync, readdirSync } from "node:fs";
import path from "node:path";
import { referenceDir } from "../mhl/test_support.ts";
import { c4FromDigest, c4Of, c4ToDigest, createC4Hasher, isC4 } from "./c4.ts";

test("the C4 of every reference manifest equals the one ascmhl recorded in its chain", () => {
  const out = path.join(referenceDir(), "examples/scenarios/Output");
  const chains = readdirSync(out, { recursive: true, encoding: "utf8" }).filter((f) => f.endsWith("ascmhl_chain.xml"));
  let checked = 0;
  for (const c of chains) {
    const text = readFileSync(path.join(out, c), "utf8");
    for (const m of text.matchAll(/<path>([^<]+)<\/path>\s*<c4>([^<]+)<\/c4>/g)) {
      const bytes = readFileSync(path.join(out, path.dirname(c), m[1] as string));
      expect(c4Of(bytes)).toBe(m[2] as string);
      const h = createC4Hasher();
      h.update(bytes.subarray(0, 100));
      h.update(bytes.subarray(100));
      expect(h.digest()).toBe(m[2] as string);
      checked++;
    }
  }
  expect(checked).toBe(17);
});

test("ids are 90 characters, zero digits pad with '1', and decode back to the digest", () => {
  const zero = new Uint8Array(64);
  expect(c4FromDigest(zero)).toBe(`c4${"1".repeat(88)}`);
  const one = new Uint8Array(64);
  one[63] = 1;
  expect(c4FromDigest(one)).toBe(`c4${"1".repeat(87)}2`);
  for (let i = 0; i < 50; i++) {
    const d = crypto.getRandomValues(new Uint8Array(64));
    if (i === 0) d.fill(0xff);
    const id = c4FromDigest(d);
    expect(id.length).toBe(90);
    expect(isC4(id)).toBe(true);
    expect(c4ToDigest(id)).toEqual(d);
  }
  expect(() => c4ToDigest("c4O")).toThrow("is not a C4 id");
  expect(() => c4FromDigest(new Uint8Array(32))).toThrow("64-byte");
});
