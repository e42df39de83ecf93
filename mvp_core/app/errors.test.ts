import { describe, expect, test } from "bun:test";
import { JobError } from "../jobs/repository.ts";
import { PortalError } from "../portals/repository.ts";
import { TransferError } from "../transfer_engine/errors.ts";
import { ApiError, toApiError } from "./errors.ts";

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
