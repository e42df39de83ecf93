/** What a site name may be: the one schema the configuration, the API and the database check share. */
import { z } from "zod";

/** Same shape as a portal name, so it fits a Redis key, a log field and a URL path unquoted. */
export const SITE_NAME_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;

const MESSAGE = "must be 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit (e.g. lab-1)";

/** A site name (KETTER_SITE, a local portal's `site`, an sftp portal's `allowedSites`). */
export const SiteName = z.string().regex(SITE_NAME_PATTERN, MESSAGE).meta({ example: "lab-1" });
