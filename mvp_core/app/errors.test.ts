import { describe, expect, test } from "bun:test";
import { Elysia } from "elysia";
import { z } from "zod";
import { JobError } from "../jobs/repository.ts";
import { PortalError } from "../portals/repository.ts";
import { TransferError } from "../transfer_engine/errors.ts";
import { ApiError, apiMessage, errorBody, toApiError } from "./errors.ts";

describe("toApiError", () => {
  test("domain and engine errors keep their message and get a fitting status", () => {
    expect(toApiError(new PortalError("IN_USE", "busy"), "r").error).toMatchObject({ status: 409, code: "PORTAL_IN_USE", message: "busy" });
    expect(toApiError(new JobError("BAD_CURSOR", "bad"), "r").error).toMatchObject({ status: 400, code: "BAD_CURSOR" });
    expect(toApiError(new TransferError("PATH_ESCAPE", "escapes"), "r").error).toMatchObject({ status: 422, code: "PATH_ESCAPE" });
    expect(toApiError(new TransferError("TIMEOUT", "slow"), "r")).toMatchObject({ error: { status: 504 }, internal: true });
    expect(toApiError(new ApiError(418, "TEAPOT", "t"), "r").error.status).toBe(418);
  });

  test("anything unexpected is a 500 that names the request id and hides the original message", () => {
    const { error, internal } = toApiError(new Error("password=hunter2 leaked in a driver message"), "req-123");
    expect([error.status, error.code, internal]).toEqual([500, "INTERNAL", true]);
    expect(error.message).toContain("req-123");
    expect(error.message).not.toContain("hunter2");
  });
});

describe("answers and messages", () => {
  test("a handler whose answer breaks its declared response schema gets a 500, never a client 422", async () => {
    const app = new Elysia()
      .onError(({ error }) => {
        const { error: e } = toApiError(error, "req-9");
        return Response.json(errorBody(e), { status: e.status });
      })
      // The types agree; the value at run time does not (as when a row holds what the view never expected).
      .get("/broken", () => JSON.parse('{"n":"not a number"}') as { n: number }, { response: { 200: z.object({ n: z.number() }) } });
    const res = await app.handle(new Request("http://localhost/broken"));
    expect(res.status).toBe(500);
    expect(((await res.json()) as { error: { code: string; message: string } }).error).toMatchObject({ code: "INTERNAL", message: expect.stringContaining("req-9") });
  });

  test("engine messages lose their CLI flags: options the client sets instead", () => {
    const engine = 'target "/srv/in/shoot" already exists; pass overwrite (--overwrite) to replace it, or choose another target';
    expect(apiMessage(engine, "TARGET_EXISTS")).toBe('target "/srv/in/shoot" already exists; set options.overwrite to true to replace it, or choose another target');
    expect(toApiError(new TransferError("TARGET_EXISTS", engine), "r").error.message).not.toContain("--");
    const parent = `the target's parent folder "incoming" on /srv/in does not exist or is not a folder; create it first`;
    expect(apiMessage(parent, "NOT_A_DIRECTORY")).toContain("set options.createParents to true");
    expect(apiMessage("limit it with --max-bytes-per-sec")).toBe("limit it with options.maxBytesPerSec");
  });
});
