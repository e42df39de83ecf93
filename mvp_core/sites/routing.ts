/**
 * Where a job runs, decided once when it is submitted (stored as jobs.site): at the site whose disk
 * holds its local end, or at any site when both ends are sftp. Pure, so the rule reads in one place
 * and is tested without a database; the claim in Postgres enforces the same placement again.
 */
import type { PortalRow } from "../portals/repository.ts";

/** The portal fields placement depends on. */
export type Placement = Pick<PortalRow, "id" | "name" | "kind" | "site" | "allowed_sites">;

/** Why a job cannot be placed (the API answers 422 with the message). */
export type RouteProblem = "CROSS_SITE" | "SITE_NOT_ALLOWED" | "NO_COMMON_SITE" | "PORTAL_SITE_UNKNOWN";

/** The site a job runs at (null: any site), or why there is none. */
export type Route = { ok: true; site: string | null } | { ok: false; code: RouteProblem; message: string; field: string };

type Side = "source" | "target";

/**
 * A local end pins the job to its portal's site; two local ends must share one. An sftp end with
 * `allowed_sites` must allow that site. Two sftp ends run anywhere when neither restricts, else at
 * the first site of the source's list (then the target's) that both allow: the list is in order of
 * preference.
 */
export function routeJob(source: Placement, target: Placement): Route {
  const ends: Array<[Side, Placement]> = [["source", source], ["target", target]];
  for (const [side, p] of ends) {
    if (p.kind === "local" && p.site === null) {
      return {
        ok: false, code: "PORTAL_SITE_UNKNOWN", field: `${side}.portal`,
        message: `${side}.portal: local portal ${p.name} has no site (it was registered before Ketter had sites and several sites exist now); set it with PATCH /portals/${p.id} {"site": "<the site whose disk holds ${p.name}>"}`,
      };
    }
  }
  const locals = ends.filter(([, p]) => p.kind === "local");
  const [first, second] = locals;
  if (first && second && first[1].site !== second[1].site) {
    return {
      ok: false, code: "CROSS_SITE", field: "target.portal",
      message:
        `source portal ${source.name} is a folder at site ${source.site} and target portal ${target.name} one at site ${target.site}: a job runs on one machine and cannot read one site's disk and write another's. ` +
        `Reach one side over SSH instead: register one of the two folders as an sftp portal (POST /portals {"kind": "sftp", "host": <its machine>, ...}) and use that portal in this job`,
    };
  }
  if (first) {
    const site = first[1].site!;
    const other = ends.find(([, p]) => p.kind === "sftp");
    if (other && other[1].allowed_sites && !other[1].allowed_sites.includes(site)) {
      const [side, p] = other;
      return {
        ok: false, code: "SITE_NOT_ALLOWED", field: `${side}.portal`,
        message: `${side}.portal: sftp portal ${p.name} may only be reached from site(s) ${p.allowed_sites!.join(", ")}, but ${first[1].name} is a folder at site ${site}; add ${site} to its allowedSites (PATCH /portals/${p.id}) or use a portal at an allowed site`,
      };
    }
    return { ok: true, site };
  }
  const [a, b] = [source.allowed_sites, target.allowed_sites];
  if (!a && !b) return { ok: true, site: null };
  const common = a ? a.filter((s) => !b || b.includes(s)) : b!;
  if (common.length === 0) {
    return {
      ok: false, code: "NO_COMMON_SITE", field: "target.portal",
      message: `no site may reach both sftp portals: ${source.name} allows ${a!.join(", ")}, ${target.name} allows ${b!.join(", ")}; widen one portal's allowedSites (PATCH /portals/{id})`,
    };
  }
  return { ok: true, site: common[0]! };
}
