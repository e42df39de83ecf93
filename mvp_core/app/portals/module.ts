/** /portals: create, list, get, update, delete (refused while active jobs use it), check. */
import { Elysia } from "elysia";
import { z } from "zod";
import { checkPortal } from "../../portals/endpoints.ts";
import { createPortal, deletePortal, getPortal, listPortals, type NewPortal, PortalError, updatePortal } from "../../portals/repository.ts";
import { portalWarnings } from "../../portals/warnings.ts";
import { defaultPortalSite } from "../../sites/repository.ts";
import type { AppDeps } from "../deps.ts";
import { doc, responses } from "../openapi.ts";
import { examples, PortalCheckView, PortalCreate, PortalParams, PortalSaved, PortalUpdate, PortalView, portalCheckView, portalView } from "./schemas.ts";

const tags = ["portals"];
const CHECK_TIMEOUT_MS = 10_000;

/** The portal to create: a local one without `site` gets the default site (see defaultPortalSite). */
async function withSite(deps: AppDeps, body: PortalCreate): Promise<NewPortal> {
  if (body.kind === "sftp") return body;
  return { ...body, site: body.site ?? (await defaultPortalSite(deps.sql, deps.site)) };
}

async function mustGet(deps: AppDeps, id: string) {
  const p = await getPortal(deps.sql, id);
  if (!p) throw new PortalError("NOT_FOUND", `no portal with id ${id}; list them with GET /portals`, { id });
  return p;
}

/** The portals feature module. */
export function portalsModule(deps: AppDeps) {
  const log = deps.log.child({ module: "portals" });
  return new Elysia({ name: "portals" })
    .get("/portals", async () => ({ portals: (await listPortals(deps.sql)).map(portalView) }), {
      response: responses({ 200: { description: "Every portal, by name", schema: z.object({ portals: z.array(PortalView) }), example: { portals: [examples.view] } } }),
      detail: doc({ summary: "List portals", tags, operationId: "listPortals" }),
    })
    .post(
      "/portals",
      async ({ body, set }) => {
        const p = await createPortal(deps.sql, await withSite(deps, body), deps.secretKey);
        const warnings = await portalWarnings(p, deps.site);
        log.info("portal created", { portalId: p.id, name: p.name, kind: p.kind, site: p.site, allowedSites: p.allowed_sites, warnings: warnings.map((w) => w.code) });
        set.status = 201;
        return { ...portalView(p), warnings };
      },
      {
        parse: "json",
        body: PortalCreate.meta({ examples: [examples.createLocal, examples.createSftp, examples.createLocalAtSite] }),
        response: responses({ 201: { description: "Created; `warnings` says what to fix before jobs can use it", schema: PortalSaved, example: examples.saved } }, [400, 409, 413, 415, 422]),
        detail: doc({
          summary: "Register a portal",
          description:
            "A local folder at a site (the machine whose disk holds it; `site` defaults to the only site ever seen), or a folder on an SFTP host that every site — or only `allowedSites` — may reach. The password or private key is stored encrypted (AES-256-GCM) and never returned. The portal is saved even when its root cannot be seen yet; `warnings` then says so (ROOT_NOT_FOUND: create the folder; the API looks only at folders of its own site). Pin the host key (from POST /portals/{id}/check) before jobs can use an sftp portal.",
          tags, operationId: "createPortal",
        }),
      },
    )
    .get("/portals/:id", async ({ params }) => portalView(await mustGet(deps, params.id)), {
      params: PortalParams,
      response: responses({ 200: { description: "The portal", schema: PortalView, example: examples.view } }, [404, 422]),
      detail: doc({ summary: "Get a portal", tags, operationId: "getPortal" }),
    })
    .patch(
      "/portals/:id",
      async ({ params, body }) => {
        const p = await updatePortal(deps.sql, params.id, body, deps.secretKey);
        const warnings = await portalWarnings(p, deps.site);
        log.info("portal updated", { portalId: p.id, fields: Object.keys(body), warnings: warnings.map((w) => w.code) });
        return { ...portalView(p), warnings };
      },
      {
        params: PortalParams,
        parse: "json",
        body: PortalUpdate.meta({ examples: [{ hostKeyFingerprint: "SHA256:47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU" }] }),
        response: responses({ 200: { description: "Updated; `warnings` as for POST /portals", schema: PortalSaved, example: { ...examples.saved, warnings: [] } } }, [400, 404, 409, 413, 415, 422]),
        detail: doc({
          summary: "Update a portal",
          description: "Changes any subset of fields. `auth` replaces the stored secret; `hostKeyFingerprint: null` unpins. Moving the root, host, port, `site` or `allowedSites` is refused while active jobs use the portal.",
          tags, operationId: "updatePortal",
        }),
      },
    )
    .delete(
      "/portals/:id",
      async ({ params, set }) => {
        await deletePortal(deps.sql, params.id);
        log.info("portal deleted", { portalId: params.id });
        set.status = 204;
        return null;
      },
      {
        params: PortalParams,
        // 204 has no body: an empty schema (the plugin renders a `null` schema as a broken content map).
        response: responses({ 204: { description: "Deleted (no body)", schema: z.unknown() } }, [404, 409, 422]),
        detail: doc({ summary: "Delete a portal", description: "Refused (409) while active jobs use it; finished jobs keep their history.", tags, operationId: "deletePortal" }),
      },
    )
    .post(
      "/portals/:id/check",
      async ({ params }) => {
        const p = await mustGet(deps, params.id);
        const result = await checkPortal(p, deps.secretKey, { connectTimeoutMs: CHECK_TIMEOUT_MS });
        log.info("portal checked", { portalId: p.id, reachable: result.reachable, error: result.error?.code });
        return portalCheckView(p.id, result);
      },
      {
        params: PortalParams,
        response: responses({ 200: { description: "What the check found", schema: PortalCheckView, example: examples.check } }, [404, 422]),
        detail: doc({
          summary: "Check a portal",
          description: "Connects and reports reachability, free space and (sftp) the host-key fingerprint the server presented, so a person can pin it with PATCH. Connection failures are reported in the body, not as an HTTP error.",
          tags, operationId: "checkPortal",
        }),
      },
    );
}
