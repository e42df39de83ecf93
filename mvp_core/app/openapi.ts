/**
 * The OpenAPI 3.1 document and Swagger UI, from Elysia's official plugin (@elysiajs/openapi): it
 * reads every route's zod schemas (zod 4's own JSON Schema, through Standard Schema) — `body`,
 * `params`, `query`, `headers` and the `response` map, whose examples sit in `.meta` — and the
 * `detail` built by doc(). Swagger UI's assets come from the app (swagger/module.ts): LAB networks
 * are offline. No `mapJsonSchema`: z.toJSONSchema renders outputs, and GET /jobs's query
 * parameters are transforms whose output is not representable, so they would vanish.
 */
import { openapi } from "@elysiajs/openapi";
import { z } from "zod";
import { SWAGGER_ASSETS } from "./swagger/module.ts";

/** Every error answer. */
export const ErrorSchema = z.object({
  error: z.object({
    code: z.string().meta({ example: "VALIDATION_FAILED" }),
    message: z.string().meta({ example: "invalid body: body.source.portal: Invalid UUID" }),
    details: z.record(z.string(), z.unknown()),
  }),
});

const ERROR_TEXT: Record<number, string> = {
  400: "Malformed request (bad JSON, bad cursor)",
  401: "Missing or wrong bearer token",
  404: "Unknown id",
  409: "Conflict with the current state",
  413: "Body too large",
  415: "Body is not JSON",
  422: "Invalid input; the message names the field to fix",
};

/** One documented answer: its schema, what it means and an example. */
export interface DocResponse {
  schema: z.ZodType;
  description: string;
  example?: unknown;
}

/**
 * A route's `response` map: the successful answers, then the error answers by status (each the
 * Error body, described), and 401 unless the route is public. Elysia checks a handler's answer
 * against it at run time (a mismatch is a 500: errors.ts).
 */
export function responses(ok: Record<number, DocResponse>, errors: number[] = [], opts: { public?: boolean } = {}): Record<number, z.ZodType> {
  const out: Record<number, z.ZodType> = {};
  for (const [status, r] of Object.entries(ok)) {
    out[Number(status)] = r.schema.meta({ description: r.description, ...(r.example === undefined ? {} : { examples: [r.example] }) });
  }
  for (const status of [...errors, ...(opts.public ? [] : [401])]) {
    out[status] ??= ErrorSchema.meta({ description: ERROR_TEXT[status] ?? "Error" });
  }
  return out;
}

/** What doc() turns into a route's OpenAPI `detail`. */
export interface DocInput {
  summary: string;
  description?: string;
  tags: string[];
  operationId: string;
  /** Public routes (no bearer token). */
  public?: boolean;
}

/** A route's `detail` (summary, tags, operation id, and an empty `security` for public routes). */
export function doc(d: DocInput): { summary: string; description?: string; tags: string[]; operationId: string; security?: [] } {
  return {
    summary: d.summary,
    ...(d.description ? { description: d.description } : {}),
    tags: d.tags,
    operationId: d.operationId,
    ...(d.public ? { security: [] } : {}),
  };
}

/** The plugin, configured: document at /swagger/json, Swagger UI at /swagger from local assets. */
export function openapiModule(info: { title: string; version: string; description: string }) {
  return openapi({
    path: "/swagger",
    specPath: "/swagger/json",
    provider: "swagger-ui",
    documentation: {
      info,
      components: { securitySchemes: { bearer: { type: "http", scheme: "bearer", description: "KETTER_API_TOKEN (only when the server sets one)" } } },
      security: [{ bearer: [] }],
    },
    swagger: {
      cdn: SWAGGER_ASSETS.bundle,
      theme: SWAGGER_ASSETS.css,
      // Its dark mode is an inline CSS filter that inverts the page; Swagger UI's own look is kept.
      autoDarkMode: false,
      deepLinking: true,
      persistAuthorization: true,
      displayRequestDuration: true,
      // "none" turns off the online validator badge (swagger.io would be contacted otherwise).
      validatorUrl: "none",
    },
  });
}
