import { describe, expect, test } from "bun:test";
import { UsageError, parseFlags } from "./flags.ts";

describe("parseFlags", () => {
  test("defaults: smoke on, portals off, table output", () => {
    expect(parseFlags([])).toEqual({ portals: false, smoke: true, json: false, reportDir: undefined, smokeDir: undefined, help: false, version: false });
  });

  test("every flag, both spellings of values", () => {
    expect(parseFlags(["--portals", "--no-smoke", "--json", "--report-dir", "/tmp/r", "--smoke-dir=/srv/s"])).toEqual({
      portals: true, smoke: false, json: true, reportDir: "/tmp/r", smokeDir: "/srv/s", help: false, version: false,
    });
    expect(parseFlags(["--report-dir=/x"]).reportDir).toBe("/x");
  });

  test("unknown flags and missing values are usage errors that say what is wrong", () => {
    expect(() => parseFlags(["--portal"])).toThrow(new UsageError('unknown argument "--portal"'));
    expect(() => parseFlags(["--report-dir"])).toThrow(/--report-dir needs a folder/);
    expect(() => parseFlags(["--report-dir", "--json"])).toThrow(/--report-dir needs a folder/);
    expect(() => parseFlags(["--smoke-dir="])).toThrow(/--smoke-dir needs a folder/);
  });
});
