/**
 * The engine's option schemas, as the API's zod. The engine defines its transfer options once
 * (transfer_engine/spec.ts) with zod/mini, which keeps the CLI's start-up small; the OpenAPI plugin
 * renders schemas through zod's classic layer only (a mini schema has no JSON Schema of its own
 * there). This rebuilds the few kinds the options use — enums, booleans, defaults — as classic
 * schemas with the same description, so the API still derives everything from the one definition.
 */
import { z } from "zod";
import type * as zm from "zod/mini";

type MiniDef = { type: string; innerType?: zm.ZodMiniType; defaultValue?: unknown; entries?: Record<string, string> };

/** The classic twin of a mini option schema (enum, boolean, or either with a default or optional). */
export function classicOf(s: zm.ZodMiniType): z.ZodType {
  const def = s._zod.def as MiniDef;
  const meta = z.globalRegistry.get(s);
  let out: z.ZodType;
  if (def.type === "default" && def.innerType) out = (classicOf(def.innerType) as z.ZodType<unknown>).default(def.defaultValue);
  else if (def.type === "optional" && def.innerType) out = classicOf(def.innerType).optional();
  else if (def.type === "enum" && def.entries) out = z.enum(Object.values(def.entries) as [string, ...string[]]);
  else if (def.type === "boolean") out = z.boolean();
  else throw new Error(`classicOf: no classic twin for a mini ${def.type} schema; add it here`);
  return meta ? out.meta(meta) : out;
}

/** A shape of mini option schemas (each with a default, or optional) as classic ones, key for key. */
export function classicShape<T extends Record<string, zm.ZodMiniType>>(shape: T): ClassicShape<T> {
  return Object.fromEntries(Object.entries(shape).map(([k, v]) => [k, classicOf(v)])) as ClassicShape<T>;
}

/** The classic types of a mini shape: optional stays optional, everything else has a default. */
type ClassicShape<T extends Record<string, zm.ZodMiniType>> = {
  [K in keyof T]: T[K] extends zm.ZodMiniOptional<infer I> ? z.ZodOptional<z.ZodType<zm.output<I>>> : z.ZodDefault<z.ZodType<zm.output<T[K]>>>;
};
