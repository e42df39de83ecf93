import { describe, expect, test } from "bun:test";
import { type Placement, routeJob } from "./routing.ts";

const local = (name: string, site: string | null): Placement => ({ id: `id-${name}`, name, kind: "local", site, allowed_sites: null });
const sftp = (name: string, allowed: string[] | null = null): Placement => ({ id: `id-${name}`, name, kind: "sftp", site: null, allowed_sites: allowed });

describe("routeJob", () => {
  test("a local end pins the job to its site; the same site on both ends is fine", () => {
    expect(routeJob(local("lab", "lab-1"), sftp("srv"))).toEqual({ ok: true, site: "lab-1" });
    expect(routeJob(sftp("srv"), local("lab", "lab-1"))).toEqual({ ok: true, site: "lab-1" });
    expect(routeJob(local("in", "lab-1"), local("out", "lab-1"))).toEqual({ ok: true, site: "lab-1" });
  });

  test("two sftp ends run at any site unless one restricts; then at the first site both allow, source's order first", () => {
    expect(routeJob(sftp("a"), sftp("b"))).toEqual({ ok: true, site: null });
    expect(routeJob(sftp("a", ["s2", "s1"]), sftp("b"))).toEqual({ ok: true, site: "s2" });
    expect(routeJob(sftp("a"), sftp("b", ["s3"]))).toEqual({ ok: true, site: "s3" });
    expect(routeJob(sftp("a", ["s1", "s2", "s3"]), sftp("b", ["s3", "s2"]))).toEqual({ ok: true, site: "s2" });
  });

  test("local → local across two sites is refused, saying to reach one side over sftp", () => {
    const r = routeJob(local("lab", "lab-1"), local("srv", "srvtrf"));
    expect(r).toMatchObject({ ok: false, code: "CROSS_SITE", field: "target.portal" });
    if (!r.ok) {
      expect(r.message).toContain("site lab-1");
      expect(r.message).toContain("site srvtrf");
      expect(r.message).toContain("sftp portal");
    }
  });

  test("an sftp portal that does not allow the local end's site, or two with nothing in common, are refused", () => {
    expect(routeJob(local("lab", "lab-1"), sftp("srv", ["srvtrf"]))).toMatchObject({ ok: false, code: "SITE_NOT_ALLOWED", field: "target.portal" });
    expect(routeJob(sftp("srv", ["srvtrf"]), local("lab", "lab-1"))).toMatchObject({ ok: false, code: "SITE_NOT_ALLOWED", field: "source.portal" });
    expect(routeJob(sftp("a", ["s1"]), sftp("b", ["s2"]))).toMatchObject({ ok: false, code: "NO_COMMON_SITE" });
  });

  test("a local portal without a site cannot be placed; the message says how to set it", () => {
    const r = routeJob(local("old", null), sftp("srv"));
    expect(r).toMatchObject({ ok: false, code: "PORTAL_SITE_UNKNOWN", field: "source.portal" });
    if (!r.ok) expect(r.message).toContain("PATCH /portals/id-old");
  });
});
