/** The few API calls the smoke test makes, with the bearer token and readable errors. */
import { apiHeaders } from "./api.ts";

/** A non-2xx answer; `code` is the API's error code when the body had one. */
export class ApiCallError extends Error {
  constructor(readonly status: number, readonly code: string | undefined, message: string) {
    super(message);
    this.name = "ApiCallError";
  }
}

/** A tiny JSON client for the Ketter API. */
export class ApiClient {
  constructor(private readonly baseUrl: string, private readonly token: string | undefined) {}

  /** Sends `method path` with a JSON `body`; returns the parsed body of a 2xx answer, throws ApiCallError otherwise. */
  async call(method: string, path: string, opts: { body?: unknown; headers?: Record<string, string>; signal?: AbortSignal } = {}): Promise<unknown> {
    const headers = apiHeaders(this.token, { ...(opts.body === undefined ? {} : { "content-type": "application/json" }), ...opts.headers });
    const res = await fetch(new URL(path, this.baseUrl), {
      method,
      headers,
      ...(opts.body === undefined ? {} : { body: JSON.stringify(opts.body) }),
      ...(opts.signal ? { signal: opts.signal } : {}),
    });
    const text = await res.text();
    let body: unknown = null;
    if (text.trim() !== "") {
      try {
        body = JSON.parse(text);
      } catch {
        // Not JSON: the status line and the start of the text say more than a parse error would.
        body = { error: { message: text.slice(0, 200) } };
      }
    }
    if (!res.ok) {
      const err = (body as { error?: { code?: string; message?: string } } | null)?.error;
      throw new ApiCallError(res.status, err?.code, `${method} ${path}: HTTP ${res.status}${err?.code ? ` ${err.code}` : ""}${err?.message ? `: ${err.message}` : ""}`);
    }
    return body;
  }
}
