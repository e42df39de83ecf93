/**
 * Builds the API: one Elysia instance per feature module (health, metrics, portals, jobs, sites, swagger) under a
 * root that owns the cross-cutting parts — request id, bearer token, JSON bodies, error mapping
 * and the access log. Tests drive it through `app.handle(new Request(...))` or `app.listen`.
 */
import { Elysia, NotFoundError } from "elysia";
import type { AppDeps } from "./deps.ts";
import { errorBody, toApiError } from "./errors.ts";
import { healthModule } from "./health/module.ts";
import { allowedMethods, bearerChecker, checkBodyHeaders, isPublicPath, parseJsonBody } from "./http.ts";
import { jobsModule } from "./jobs/module.ts";
import { metricsModule } from "./metrics/module.ts";
import { openapiModule } from "./openapi.ts";
import { portalsModule } from "./portals/module.ts";
import { sitesModule } from "./sites/module.ts";
import { swaggerModule } from "./swagger/module.ts";

const API_DESCRIPTION =
  "Ketter moves footage folders between portals (local folders and SFTP hosts). Register two portals, create a job, then watch `GET /jobs/{id}` and its events. When the server sets KETTER_API_TOKEN, click Authorize and enter it.";

/** Per-request values the root keeps for logging and error answers. */
interface RequestMeta {
  id: string;
  start: number;
}

/** The API application for `deps` (not listening). */
export function createApp(deps: AppDeps) {
  const log = deps.log.child({ module: "http" });
  const checkToken = deps.apiToken ? bearerChecker(deps.apiToken) : null;
  const meta = new WeakMap<Request, RequestMeta>();
  const metaOf = (request: Request): RequestMeta => {
    let m = meta.get(request);
    if (!m) meta.set(request, (m = { id: crypto.randomUUID(), start: performance.now() }));
    return m;
  };

  const root = new Elysia()
    .onRequest(({ request, set }) => {
      set.headers["x-request-id"] = metaOf(request).id;
      const path = pathOf(request.url);
      if (checkToken && !isPublicPath(path)) checkToken(request.headers.get("authorization"));
      checkBodyHeaders(request);
    })
    .onParse(({ request, contentType }) => parseJsonBody(request, contentType))
    .onError(({ error, request, set }) => {
      const m = metaOf(request);
      const path = pathOf(request.url);
      const { error: e, internal } = toApiError(error, m.id, error instanceof NotFoundError ? methodsFor(path) : []);
      if (internal) log.error("request failed", { requestId: m.id, method: request.method, path, error });
      set.status = e.status; // read back by the access log
      const headers: Record<string, string> = { "x-request-id": m.id };
      if (e.status === 401) headers["www-authenticate"] = 'Bearer realm="ketter"';
      if (e.status === 405) headers.allow = (e.details.allowed as string[]).join(", ");
      return Response.json(errorBody(e), { status: e.status, headers });
    })
    .onAfterResponse(({ request, set }) => {
      const m = metaOf(request);
      log.info("request", { requestId: m.id, method: request.method, path: pathOf(request.url), status: set.status, ms: Math.round((performance.now() - m.start) * 10) / 10 });
    })
    .use(openapiModule({ title: "Ketter API", version: deps.version, description: API_DESCRIPTION }))
    .use(swaggerModule())
    .use(healthModule(deps))
    .use(metricsModule(deps))
    .use(portalsModule(deps))
    .use(jobsModule(deps))
    .use(sitesModule(deps));

  // Every route is registered by now; the table is built once, at the first wrong method.
  let methods: ((path: string) => string[]) | undefined;
  const methodsFor = (path: string) => (methods ??= allowedMethods(root.routes))(path);
  return root;
}

/** The type of the built app (for tests and main). */
export type App = ReturnType<typeof createApp>;

function pathOf(url: string): string {
  // Faster than new URL() on every request; the URL is always absolute here.
  const start = url.indexOf("/", url.indexOf("//") + 2);
  const q = url.indexOf("?", start);
  return start < 0 ? "/" : url.slice(start, q < 0 ? undefined : q);
}
