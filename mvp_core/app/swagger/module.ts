/**
 * Swagger UI's assets, served from the swagger-ui-dist package: LAB networks are offline, so nothing
 * may come from a CDN. The page itself and the document come from @elysiajs/openapi (openapi.ts),
 * pointed at these files.
 */
import { Elysia } from "elysia";
import { dirname, join } from "node:path";
import { ApiError } from "../errors.ts";

const DIST = dirname(Bun.resolveSync("swagger-ui-dist/package.json", import.meta.dir));
const ASSETS: Record<string, string> = {
  "swagger-ui.css": "text/css; charset=utf-8",
  "swagger-ui-bundle.js": "text/javascript; charset=utf-8",
  "favicon-32x32.png": "image/png",
  "favicon-16x16.png": "image/png",
};

/** Where the Swagger UI page finds its script and style sheet. */
export const SWAGGER_ASSETS = { bundle: "/swagger/assets/swagger-ui-bundle.js", css: "/swagger/assets/swagger-ui.css" } as const;

/** The swagger feature module: Swagger UI's static files. */
export function swaggerModule() {
  return new Elysia({ name: "swagger" }).get(
    "/swagger/assets/:file",
    ({ params }) => {
      const type = ASSETS[params.file];
      // Only the listed files: the parameter must never reach the file system as a path.
      if (!type) throw new ApiError(404, "ROUTE_NOT_FOUND", `no Swagger UI asset ${JSON.stringify(params.file)}`);
      return new Response(Bun.file(join(DIST, params.file)), { headers: { "content-type": type, "cache-control": "public, max-age=86400" } });
    },
    { detail: { hide: true } },
  );
}
