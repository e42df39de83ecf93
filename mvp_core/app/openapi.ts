/**
 * The OpenAPI 3.1 document, generated from the routes actually registered: request schemas come
 * from each route's zod `body`/`params`/`query`/`headers`, responses and examples from `doc()`.
 * (@elysiajs/swagger only understands TypeBox schemas, so it cannot describe zod routes.)
 */
import { z } from "zod";

type Json = Record<string, unknown>;

/** Every error answer. */
export const ErrorSchema = z
  .object({
    error: z.object({
      code: z.string().meta({ example: "VALIDATION_FAILED" }),
      message: z.string().meta({ example: "invalid body: body.source.portal: Invalid UUID" }),
      details: z.record(z.string(), z.unknown()),
    }),
  })
;

const ERROR_TEXT: Record<number, string> = {
  400: "Malformed request (bad JSON, bad cursor)",
  401: "Missing or wrong bearer token",
  404: "Unknown id",
  409: "Conflict with the current state",
  413: "Body too large",
  415: "Body is not JSON",
  422: "Invalid input; the message names the field to fix",
  503: "Degraded",
};

/** One documented response: a zod schema (or none) and an example. */
export interface DocResponse {
  description: string;
  schema?: z.ZodType;
  example?: unknown;
}

/** Route documentation, stored in Elysia's `detail` and read back by buildOpenApi. */
export interface DocInput {
  summary: string;
  description?: string;
  tags: string[];
  operationId: string;
  responses: Record<number, DocResponse>;
  errors?: number[];
  bodyExample?: unknown;
  /** Public routes (no bearer token). */
  public?: boolean;
}

const jsonSchema = (s: z.ZodType, io: "input" | "output"): Json => {
  const { $schema: _, ...rest } = z.toJSONSchema(s, { io, unrepresentable: "any" }) as Json;
  return rest;
};

/** Builds a route's `detail` from `d` (OpenAPI fields plus what buildOpenApi needs). */
export function doc(d: DocInput): Json {
  const responses: Json = {};
  for (const [status, r] of Object.entries(d.responses)) {
    responses[status] = {
      description: r.description,
      ...(r.schema ? { content: { "application/json": { schema: jsonSchema(r.schema, "output"), ...(r.example === undefined ? {} : { example: r.example }) } } } : {}),
    };
  }
  for (const status of [...(d.errors ?? []), ...(d.public ? [] : [401])]) {
    responses[String(status)] ??= { description: ERROR_TEXT[status] ?? "Error", content: { "application/json": { schema: { $ref: "#/components/schemas/Error" } } } };
  }
  return {
    summary: d.summary,
    ...(d.description ? { description: d.description } : {}),
    tags: d.tags,
    operationId: d.operationId,
    responses,
    ...(d.public ? { security: [] } : {}),
    ...(d.bodyExample === undefined ? {} : { "x-body-example": d.bodyExample }),
  };
}

/** The slice of an Elysia route buildOpenApi reads. */
export interface RouteLike {
  method: string;
  path: string;
  hooks?: { body?: unknown; params?: unknown; query?: unknown; headers?: unknown; detail?: unknown };
}

function parameters(where: "path" | "query" | "header", schema: unknown): Json[] {
  if (!(schema instanceof z.ZodType)) return [];
  const js = jsonSchema(schema, "input") as { properties?: Record<string, Json>; required?: string[] };
  return Object.entries(js.properties ?? {}).map(([name, s]) => {
    const { description, ...rest } = s;
    return { name, in: where, required: where === "path" || (js.required ?? []).includes(name), ...(description ? { description } : {}), schema: rest };
  });
}

/** The OpenAPI document for `routes`. */
export function buildOpenApi(routes: readonly RouteLike[], info: { title: string; version: string; description: string }): Json {
  const paths: Record<string, Json> = {};
  for (const r of routes) {
    const detail = r.hooks?.detail as Json | undefined;
    if (!detail || detail.hide === true || !detail.operationId) continue;
    const path = r.path.replace(/:(\w+)/g, "{$1}");
    const { "x-body-example": bodyExample, ...op } = detail;
    const body = r.hooks?.body;
    paths[path] ??= {};
    paths[path]![r.method.toLowerCase()] = {
      ...op,
      parameters: [...parameters("path", r.hooks?.params), ...parameters("query", r.hooks?.query), ...parameters("header", r.hooks?.headers)],
      ...(body instanceof z.ZodType
        ? { requestBody: { required: true, content: { "application/json": { schema: jsonSchema(body, "input"), ...(bodyExample === undefined ? {} : { example: bodyExample }) } } } }
        : {}),
    };
  }
  return {
    openapi: "3.1.0",
    info,
    paths,
    components: {
      schemas: { Error: jsonSchema(ErrorSchema, "output") },
      securitySchemes: { bearer: { type: "http", scheme: "bearer", description: "KETTER_API_TOKEN (only when the server sets one)" } },
    },
    security: [{ bearer: [] }],
  };
}
