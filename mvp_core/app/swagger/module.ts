/**
 * Swagger UI at /swagger with its assets served from the swagger-ui-dist package: LAB networks are
 * offline, so nothing may come from a CDN (the @elysiajs/swagger page hard-codes unpkg.com).
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

const PAGE = `<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <meta name="viewport" content="width=device-width, initial-scale=1">
  <title>Ketter API</title>
  <link rel="stylesheet" href="/swagger/assets/swagger-ui.css">
  <link rel="icon" type="image/png" href="/swagger/assets/favicon-32x32.png">
</head>
<body>
  <div id="swagger-ui"></div>
  <script src="/swagger/assets/swagger-ui-bundle.js"></script>
  <script>
    window.ui = SwaggerUIBundle({
      url: "/swagger/json",
      dom_id: "#swagger-ui",
      deepLinking: true,
      persistAuthorization: true,
      displayRequestDuration: true,
      validatorUrl: null,
    });
  </script>
</body>
</html>`;

/** The swagger feature module: the page, its assets and the OpenAPI document. */
export function swaggerModule(spec: Record<string, unknown>) {
  const specJson = JSON.stringify(spec);
  return new Elysia({ name: "swagger" })
    .get("/swagger", () => new Response(PAGE, { headers: { "content-type": "text/html; charset=utf-8" } }), { detail: { hide: true } })
    .get("/swagger/json", () => new Response(specJson, { headers: { "content-type": "application/json" } }), { detail: { hide: true } })
    .get(
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
