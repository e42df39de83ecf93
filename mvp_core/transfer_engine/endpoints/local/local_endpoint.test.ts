import { describe, expect, test } from "bun:test";
import fs from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { describeEndpointConformance } from "../conformance.ts";
import { LocalEndpoint } from "./local_endpoint.ts";
import { randomBytes } from "../../test_tree.ts";

describeEndpointConformance("LocalEndpoint", async () => {
  const root = await mkdtemp(path.join(os.tmpdir(), "ketter-local-"));
  return { endpoint: new LocalEndpoint(root), cleanup: () => rm(root, { recursive: true, force: true }) };
});

describe("LocalEndpoint hashing of large files", () => {
  test("gives the whole-buffer digest for sizes around the read size (incl. 0 bytes), for CRC-32 and sha256", async () => {
    const root = await mkdtemp(path.join(os.tmpdir(), "ketter-hash-"));
    try {
      const ep = new LocalEndpoint(root);
      const read = 256 * 1024;
      const sizes = [0, 1, read - 1, read, read + 1, 4 * 1024 * 1024 - 1, 4 * 1024 * 1024, 5 * read + 12345];
      for (const n of sizes) fs.writeFileSync(path.join(root, `f${n}`), randomBytes(n));
      for (const alg of ["crc32", "sha256"] as const) {
        const got = await ep.hashFiles(sizes.map((n) => `f${n}`), alg);
        for (const n of sizes) {
          const data = fs.readFileSync(path.join(root, `f${n}`));
          const want = alg === "crc32" ? (Bun.hash.crc32(data) >>> 0).toString(16).padStart(8, "0") : new Bun.CryptoHasher("sha256").update(data).digest("hex");
          expect([n, got.get(`f${n}`)]).toEqual([n, want]);
        }
      }
    } finally {
      await rm(root, { recursive: true, force: true });
    }
  });
});
