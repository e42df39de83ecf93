/**
 * Endpoints for tests outside the adapters' folders, which name no concrete adapter: a local one,
 * and any endpoint with some methods replaced (a fault injector). The replacement passes every
 * other method through, optional fast paths included, so it hides nothing the engine would use.
 */
import type { Endpoint } from "./endpoint.ts";
import { LocalEndpoint } from "./local/local_endpoint.ts";

/** An endpoint on the local folder `root`. */
export function localEndpoint(root: string): Endpoint {
  return new LocalEndpoint(root);
}

/**
 * `inner` with the methods in `overrides` replaced (they may call `inner`'s own). It is not `inner`
 * to an adapter either: a fast path that needs its own kind of source (the local copyFilesFrom)
 * declines it, so every read of a wrapped source goes through the wrapper.
 */
export function withOverrides(inner: Endpoint, overrides: Partial<Endpoint>): Endpoint {
  return new Proxy(inner, {
    getPrototypeOf: () => Object.prototype,
    get(target, prop, receiver) {
      if (Object.hasOwn(overrides, prop)) return (overrides as Record<string | symbol, unknown>)[prop];
      const v = Reflect.get(target, prop, receiver) as unknown;
      return typeof v === "function" ? (v as (...a: unknown[]) => unknown).bind(target) : v;
    },
  });
}
