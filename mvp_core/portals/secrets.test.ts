import { describe, expect, test } from "bun:test";
import { randomBytes } from "node:crypto";
import { decryptSecret, encryptSecret, SecretError } from "./secrets.ts";

describe("portal secrets", () => {
  const key = randomBytes(32);
  const id = crypto.randomUUID();

  test("round trip; the envelope never contains the clear text; every envelope differs", () => {
    const secret = { password: "hunter2-very-secret" };
    const a = encryptSecret(secret, key, id);
    const b = encryptSecret(secret, key, id);
    expect(decryptSecret(a, key, id)).toEqual(secret);
    expect(a.includes(Buffer.from("hunter2"))).toBe(false);
    expect(a.equals(b)).toBe(false);
    expect(a[0]).toBe(1);
  });

  test("another key, another portal or a flipped bit does not decrypt", () => {
    const env = encryptSecret({ privateKey: "-----BEGIN OPENSSH PRIVATE KEY-----x", passphrase: "p" }, key, id);
    expect(() => decryptSecret(env, randomBytes(32), id)).toThrow(SecretError);
    expect(() => decryptSecret(env, key, crypto.randomUUID())).toThrow(SecretError);
    const flipped = Buffer.from(env);
    flipped[flipped.length - 1]! ^= 1;
    expect(() => decryptSecret(flipped, key, id)).toThrow(SecretError);
    expect(() => decryptSecret(Buffer.from([2, 1, 2]), key, id)).toThrow(/not a Ketter v1 envelope/);
  });

  test("a key of the wrong size is refused", () => {
    expect(() => encryptSecret({ password: "x" }, randomBytes(16), id)).toThrow(/32 bytes/);
  });
});
