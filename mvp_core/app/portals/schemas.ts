/** Request and response shapes of /portals, and the row → response view. Secrets are write-only. */
import { z } from "zod";
import type { PortalCheck } from "../../portals/endpoints.ts";
import { text } from "../text.ts";
import type { PortalRow } from "../../portals/repository.ts";
import { SiteName } from "../../sites/names.ts";
import { apiMessage } from "../errors.ts";

const name = text()
  .regex(/^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/, "must be 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit")
  .meta({ example: "lab-footage" });
const rootPath = text()
  .max(4096)
  .regex(/^\/[^\x00-\x1f\x7f]*$/, "must be an absolute folder path such as /data/footage, without control characters")
  .refine((p) => !p.split("/").includes(".."), 'must not contain ".."')
  .meta({ example: "/data/footage" });
const host = text().min(1).max(253).regex(/^[^\s/@\x00-\x1f\x7f]+$/, "must be a host name or IP address without spaces, control characters, '/' or '@'").meta({ example: "srvtrf.lab" });
const port = z.number().int().min(1).max(65535);
const username = text().min(1).max(64).regex(/^[^\s:@\x00-\x1f\x7f]+$/, "must not contain spaces, control characters, ':' or '@'").meta({ example: "ketter" });
const fingerprint = text()
  .regex(/^SHA256:[A-Za-z0-9+/]{43}=?$/, 'must look like "SHA256:" + 43 base64 characters, as POST /portals/{id}/check reports it')
  .meta({ example: "SHA256:47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU" });

const site = SiteName.meta({ description: "the site (machine) whose disk holds this folder; default: the only site ever seen, else (no worker ever started) the API's KETTER_SITE; required when several sites exist", example: "lab-1" });
const allowedSites = z
  .array(SiteName)
  .min(1)
  .max(64)
  .refine((l) => new Set(l).size === l.length, "must not name a site twice")
  .meta({ description: "only workers of these sites may use this sftp portal, most preferred first (a job between two sftp portals runs at the first site both allow); omit or null: every site", example: ["srvtrf", "lab-1"] });

const maxConnections = z
  .number()
  .int()
  .min(1)
  .max(16)
  .meta({ description: "SSH connections a transfer may open to this host at once (several streams per big file spread over them; docs/ssh.md); omit or null: Ketter's default, 4. Lower it for a server that limits connections (sshd MaxStartups, per-user limits)", example: 2 });

const auth = z.discriminatedUnion("method", [
  z.object({ method: z.literal("password"), password: text().min(1).max(1024) }).strict(),
  z
    .object({
      method: z.literal("key"),
      privateKey: text().min(1).max(16 * 1024).refine((k) => k.includes("PRIVATE KEY"), "must be a PEM/OpenSSH private key (-----BEGIN … PRIVATE KEY-----)"),
      passphrase: text().min(1).max(1024).optional(),
    })
    .strict(),
]);

const mhl = z.boolean().meta({ description: "jobs into this portal write an ASC MHL generation (ascmhl/ folder) for the folder they transfer, unless a job's own `mhl` option says otherwise; default false (docs/mhl.md)" });

/** POST /portals. */
export const PortalCreate = z.discriminatedUnion("kind", [
  z.object({ kind: z.literal("local"), name, rootPath, site: site.optional(), mhl: mhl.optional() }).strict(),
  z
    .object({
      kind: z.literal("sftp"),
      name,
      rootPath,
      host,
      port: port.default(22),
      username,
      auth,
      hostKeyFingerprint: fingerprint.optional(),
      allowedSites: allowedSites.nullable().optional(),
      mhl: mhl.optional(),
      maxConnections: maxConnections.nullable().optional(),
    })
    .strict(),
]);

export type PortalCreate = z.infer<typeof PortalCreate>;

/** PATCH /portals/{id}: any subset; `auth` replaces the secret; `hostKeyFingerprint: null` unpins; `allowedSites: null` opens an sftp portal to every site. */
export const PortalUpdate = z
  .object({ name, rootPath, host, port, username, auth, hostKeyFingerprint: fingerprint.nullable(), site, allowedSites: allowedSites.nullable(), mhl, maxConnections: maxConnections.nullable() })
  .partial()
  .strict()
  .refine((o) => Object.keys(o).length > 0, "give at least one field to change");

/** Path parameter of every /portals/{id} route. */
export const PortalParams = z.object({ id: z.uuid("must be a portal id (UUID) as returned by GET /portals") });

/** A portal as the API shows it: never its secret, only whether one is stored. */
export const PortalView = z.object({
  id: z.uuid(),
  name: z.string(),
  kind: z.enum(["local", "sftp"]),
  rootPath: z.string(),
  host: z.string().nullable(),
  port: z.number().int().nullable(),
  username: z.string().nullable(),
  authMethod: z.enum(["password", "key"]).nullable(),
  hasSecret: z.boolean(),
  hostKeyFingerprint: z.string().nullable(),
  site: z.string().nullable().meta({ description: "local: the site whose disk holds it (null only for a portal from before sites existed, until it is adopted); sftp: null" }),
  allowedSites: z.array(z.string()).nullable().meta({ description: "sftp: the sites allowed to reach it, preferred first; null: every site" }),
  mhl: mhl,
  maxConnections: z.number().int().nullable().meta({ description: "sftp: SSH connections a transfer may open to the host at once; null: Ketter's default (4)" }),
  createdAt: z.string(),
  updatedAt: z.string(),
});
export type PortalView = z.infer<typeof PortalView>;

/** POST and PATCH /portals answer the portal and what to fix before jobs can use it. */
export const PortalSaved = PortalView.extend({
  warnings: z
    .array(z.object({ code: z.enum(["ROOT_NOT_FOUND", "ROOT_NOT_A_FOLDER", "ROOT_UNREADABLE", "HOST_KEY_NOT_PINNED"]), message: z.string() }))
    .meta({ description: "empty when nothing is known to be wrong; the portal is saved either way" }),
});

/** Row → view. */
export function portalView(p: PortalRow): PortalView {
  return {
    id: p.id,
    name: p.name,
    kind: p.kind,
    rootPath: p.root_path,
    host: p.host,
    port: p.port,
    username: p.username,
    authMethod: p.auth_method,
    hasSecret: p.secret_encrypted !== null,
    hostKeyFingerprint: p.host_key_fingerprint,
    site: p.site,
    allowedSites: p.allowed_sites,
    mhl: p.mhl,
    maxConnections: p.max_connections,
    createdAt: p.created_at.toISOString(),
    updatedAt: p.updated_at.toISOString(),
  };
}

/** POST /portals/{id}/check. */
export const PortalCheckView = z.object({
  portalId: z.uuid(),
  reachable: z.boolean(),
  hostKeyFingerprint: z.string().nullable().meta({ description: "host key the server presented; pin it with PATCH" }),
  pinnedFingerprint: z.string().nullable(),
  fingerprintMatches: z.boolean().nullable(),
  freeBytes: z.number().nullable(),
  totalBytes: z.number().nullable(),
  tools: z.object({ shell: z.boolean(), unzip: z.boolean(), zip: z.boolean(), hashes: z.array(z.string()) }).nullable(),
  error: z.object({ code: z.string(), message: z.string() }).nullable(),
  checkedAt: z.string(),
});

/** Check result → view. */
export function portalCheckView(portalId: string, c: PortalCheck): z.infer<typeof PortalCheckView> {
  // The check's error comes from the engine's endpoints: in the API's words, like every engine message.
  return { portalId, ...c, error: c.error && { code: c.error.code, message: apiMessage(c.error.message, c.error.code) }, checkedAt: new Date().toISOString() };
}

const now = "2026-11-25T10:00:00.000Z";
/** Examples shown in Swagger UI. */
export const examples = {
  // No `site`: on a one-site installation it defaults to that site (first contact runs this example as is).
  createLocal: { kind: "local", name: "lab-footage", rootPath: "/data/footage" },
  createLocalAtSite: { kind: "local", name: "ingest-2-cards", rootPath: "/data/cards", site: "ingest-2" },
  createSftp: {
    kind: "sftp", name: "srvtrf-in", rootPath: "/srv/ketter/in", host: "srvtrf.lab", port: 22, username: "ketter",
    auth: { method: "key", privateKey: "-----BEGIN OPENSSH PRIVATE KEY-----\n…\n-----END OPENSSH PRIVATE KEY-----\n" },
    allowedSites: ["srvtrf", "lab-1"],
  },
  view: {
    id: "0b6f5e4c-2a55-4a36-9d0c-1f3e2c9a7b10", name: "srvtrf-in", kind: "sftp", rootPath: "/srv/in", host: "srvtrf.lab", port: 22,
    username: "ketter", authMethod: "key", hasSecret: true, hostKeyFingerprint: "SHA256:47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU",
    site: null, allowedSites: null, mhl: false, maxConnections: null, createdAt: now, updatedAt: now,
  },
  saved: {
    id: "0b6f5e4c-2a55-4a36-9d0c-1f3e2c9a7b10", name: "lab-footage", kind: "local", rootPath: "/data/footage", host: null, port: null,
    username: null, authMethod: null, hasSecret: false, hostKeyFingerprint: null, site: "lab-1", allowedSites: null, mhl: false, maxConnections: null, createdAt: now, updatedAt: now,
    warnings: [{ code: "ROOT_NOT_FOUND", message: "folder /data/footage does not exist on the API's machine; jobs using this portal fail until it exists where the worker runs — create it there (or mount its disk); POST /portals/0b6f5e4c-2a55-4a36-9d0c-1f3e2c9a7b10/check checks again" }],
  },
  check: {
    portalId: "0b6f5e4c-2a55-4a36-9d0c-1f3e2c9a7b10", reachable: true, hostKeyFingerprint: "SHA256:47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU",
    pinnedFingerprint: null, fingerprintMatches: null, freeBytes: 912_345_678_901, totalBytes: null,
    tools: { shell: true, unzip: true, zip: false, hashes: ["sha256", "md5"] }, error: null, checkedAt: now,
  },
};
