import { describe, expect, test } from "bun:test";
import { isSameOrInside, PortalPathError, resolvePortalPath } from "./paths.ts";

describe("resolvePortalPath", () => {
  const root = "/data/footage";
  test("normalises relative paths and makes absolute paths inside the root relative", () => {
    expect(resolvePortalPath(root, "shoot_01")).toBe("shoot_01");
    expect(resolvePortalPath(root, "./a//b/./c/")).toBe("a/b/c");
    expect(resolvePortalPath(root, "/data/footage/a/b")).toBe("a/b");
    expect(resolvePortalPath("/data/footage/", "/data/footage/a")).toBe("a");
  });
  test.each([
    ["..", /contains "\.\."/],
    ["a/../../etc", /contains "\.\."/],
    ["/data/footage/../x", /outside the portal root/],
    ["/etc/passwd", /outside the portal root/],
    ["/data/footagex/a", /outside the portal root/],
    ["/data/footage", /outside the portal root/],
    ["a\0b", /NUL byte/],
    ["a\nb", /control character/],
    ["", /portal root itself/],
    [".", /portal root itself/],
    ["x".repeat(5000), /limit is 4096/],
  ])("refuses %#", (input, message) => {
    expect(() => resolvePortalPath(root, input)).toThrow(PortalPathError);
    expect(() => resolvePortalPath(root, input)).toThrow(message);
  });
  test("isSameOrInside", () => {
    expect(isSameOrInside("a", "a")).toBe(true);
    expect(isSameOrInside("a", "a/b")).toBe(true);
    expect(isSameOrInside("a", "ab")).toBe(false);
  });
});
