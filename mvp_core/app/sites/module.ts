/** /sites: the machines Ketter runs on, their live workers and queues; retiring one. */
import { Elysia } from "elysia";
import { z } from "zod";
import { forgetSite, SiteError } from "../../sites/repository.ts";
import type { AppDeps } from "../deps.ts";
import { doc, responses } from "../openapi.ts";
import { examples, SiteParams, SitesView } from "./schemas.ts";
import { siteOverview } from "./service.ts";

const tags = ["sites"];

/** Retires a site: refused while one of its workers beats, a local portal is at it, or a job must run there. */
async function retireSite(deps: AppDeps, name: string): Promise<void> {
  const live = (await deps.queue.liveWorkers()).filter((w) => w.site === name);
  if (live.length > 0) {
    throw new SiteError("IN_USE", `site ${name} has ${live.length} live worker(s) (${live.map((w) => w.id).join(", ")}): stop them first (SIGTERM lets their jobs finish)`, { name, workers: live.map((w) => w.id) });
  }
  await forgetSite(deps.sql, name);
  // Postgres holds no unfinished job for it any more, so its Redis list can only hold stale copies.
  const stale = await deps.queue.forgetSite(name);
  if (stale > 0) deps.log.info("dropped stale entries of a retired site's queue", { site: name, stale });
}

/** The sites feature module. */
export function sitesModule(deps: AppDeps) {
  const log = deps.log.child({ module: "sites" });
  return new Elysia({ name: "sites" })
    .get("/sites", () => siteOverview(deps), {
      response: responses({ 200: { description: "Sites by name", schema: SitesView, example: examples.sites } }),
      detail: doc({
        summary: "List sites",
        description: "Every site a worker has run for (or a job or portal names), with its live workers (Redis heartbeats) and queue depths, and the any-site queue of jobs between two sftp portals.",
        tags, operationId: "listSites",
      }),
    })
    .delete(
      "/sites/:name",
      async ({ params, set }) => {
        await retireSite(deps, params.name);
        log.info("site retired", { site: params.name });
        set.status = 204;
        return null;
      },
      {
        params: SiteParams,
        // 204 has no body: an empty schema (the plugin renders a `null` schema as a broken content map).
        response: responses({ 204: { description: "Forgotten (no body)", schema: z.unknown() } }, [404, 409, 422]),
        detail: doc({
          summary: "Retire a site",
          description: "Forgets a site no longer in use, so it stops counting when a new local portal's site is defaulted. Refused (409) while a worker of it is live, a local portal is at it, or an unfinished job must run there.",
          tags, operationId: "retireSite",
        }),
      },
    );
}
