/**
 * Portal secrets at rest: AES-256-GCM under KETTER_SECRET_KEY. The envelope is
 * `version (1 byte) | nonce (12) | tag (16) | ciphertext`, and the portal id is bound in as
 * additional data so a ciphertext copied onto another portal's row does not decrypt there.
 */
import { createCipheriv, createDecipheriv, randomBytes } from "node:crypto";

const VERSION = 1;
const NONCE_BYTES = 12;
const TAG_BYTES = 16;
const HEADER_BYTES = 1 + NONCE_BYTES + TAG_BYTES;

/** What an SFTP portal needs to log in; never returned, logged or put in events. */
export type PortalSecret = { password: string } | { privateKey: string; passphrase?: string };

/** Raised when an envelope is malformed or was sealed under another key or for another portal. */
export class SecretError extends Error {
  override readonly name = "SecretError";
}

function checkKey(key: Buffer): void {
  if (key.length !== 32) throw new SecretError(`secret key must be 32 bytes, got ${key.length}`);
}

function aad(portalId: string): Buffer {
  return Buffer.from(`ketter:portal:${portalId}`, "utf8");
}

/** Seals `secret` for portal `portalId` under `key` (32 bytes); a fresh nonce every call. */
export function encryptSecret(secret: PortalSecret, key: Buffer, portalId: string): Buffer {
  checkKey(key);
  const nonce = randomBytes(NONCE_BYTES);
  const cipher = createCipheriv("aes-256-gcm", key, nonce, { authTagLength: TAG_BYTES });
  cipher.setAAD(aad(portalId));
  const ciphertext = Buffer.concat([cipher.update(JSON.stringify(secret), "utf8"), cipher.final()]);
  return Buffer.concat([Buffer.from([VERSION]), nonce, cipher.getAuthTag(), ciphertext]);
}

/** Opens an envelope made by encryptSecret for the same portal and key; throws SecretError otherwise. */
export function decryptSecret(envelope: Uint8Array, key: Buffer, portalId: string): PortalSecret {
  checkKey(key);
  const buf = Buffer.from(envelope);
  if (buf.length <= HEADER_BYTES || buf[0] !== VERSION) {
    throw new SecretError("portal secret is not a Ketter v1 envelope (was the row edited by hand?)");
  }
  const decipher = createDecipheriv("aes-256-gcm", key, buf.subarray(1, 1 + NONCE_BYTES), { authTagLength: TAG_BYTES });
  decipher.setAAD(aad(portalId));
  decipher.setAuthTag(buf.subarray(1 + NONCE_BYTES, HEADER_BYTES));
  let clear: string;
  try {
    clear = Buffer.concat([decipher.update(buf.subarray(HEADER_BYTES)), decipher.final()]).toString("utf8");
  } catch (err) {
    throw new SecretError("portal secret cannot be decrypted: KETTER_SECRET_KEY differs from the key it was saved with", { cause: err });
  }
  return JSON.parse(clear) as PortalSecret;
}
