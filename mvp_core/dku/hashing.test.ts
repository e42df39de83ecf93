import { describe, expect, test } from "bun:test";
import { checkHashing, judgeHashing } from "./hashing.ts";

describe("hash tools", () => {
  test("this machine streams every xxHash from libxxhash (test.sh installs xxhash, which brings libxxhash0)", async () => {
    const r = await checkHashing();
    expect(r).toMatchObject({ status: "ok", details: { xxh3: "system", xxh64: "system", xxh128: "system" } });
  });

  test("fallbacks warn, naming the reason and the package", () => {
    const r = judgeHashing({ xxh3: "native", xxh64: "native", xxh128: "wasm", unavailable: { system: "libxxhash.so.0: cannot open shared object file" } });
    expect(r.status).toBe("warn");
    expect(r.value).toContain("xxh128 wasm");
    expect(r.value).toContain("cannot open shared object file");
    expect(r.hint).toContain("apt-get install libxxhash0");
  });
});
