/** Response shapes of /sites (and the `sites` part of /health): one schema for a site's state. */
import { z } from "zod";
import { SiteName } from "../../sites/names.ts";

/** Queue sizes: waiting for a worker, leased by one, waiting for a retry backoff. */
export const QueueDepthView = z.object({ pending: z.number().int(), processing: z.number().int(), delayed: z.number().int() });

/** A live worker as a site lists it. */
export const SiteWorkerView = z.object({
  id: z.string(),
  host: z.string(),
  pid: z.number().int(),
  running: z.number().int(),
  concurrency: z.number().int(),
  lastBeatAt: z.string(),
});

/** One site: when a worker of it was first and last started, its live workers, its queue. */
export const SiteView = z.object({
  name: z.string(),
  firstSeenAt: z.string().nullable().meta({ description: "first start of a worker of this site; null when only portals or jobs name it so far" }),
  lastSeenAt: z.string().nullable().meta({ description: "last start of a worker of this site" }),
  live: z.number().int().meta({ description: "workers whose heartbeat is current" }),
  workers: z.array(SiteWorkerView),
  queue: QueueDepthView,
});
export type SiteView = z.infer<typeof SiteView>;

/** GET /sites and the sites part of /health. */
export const SitesView = z.object({
  sites: z.array(SiteView),
  anySite: QueueDepthView.meta({ description: "jobs between two sftp portals, which any site's worker may take" }),
});
export type SitesView = z.infer<typeof SitesView>;

/** Path parameter of DELETE /sites/{name}. */
export const SiteParams = z.object({ name: SiteName });

const now = "2026-11-25T10:00:00.000Z";
/** Examples shown in Swagger UI. */
export const examples: { sites: SitesView } = {
  sites: {
    sites: [
      { name: "lab-1", firstSeenAt: now, lastSeenAt: now, live: 1, workers: [{ id: "lab-1:4242:k3x9q1", host: "lab-1", pid: 4242, running: 2, concurrency: 2, lastBeatAt: now }], queue: { pending: 3, processing: 2, delayed: 0 } },
      { name: "srvtrf", firstSeenAt: now, lastSeenAt: now, live: 0, workers: [], queue: { pending: 1, processing: 0, delayed: 0 } },
    ],
    anySite: { pending: 0, processing: 0, delayed: 0 },
  },
};
