/** Ignore patterns behave as gitignore lines (Appendix C). */
import { expect, test } from "bun:test";
import { IgnoreSpec } from "./ignore.ts";

const cases: [string[], string, boolean, boolean][] = [
  [[".DS_Store"], ".DS_Store", false, true],
  [[".DS_Store"], "Clips/.DS_Store", false, true],
  [["ascmhl", "ascmhl/"], "Card/ascmhl/0001_x.mhl", false, true],
  [["ascmhl/"], "ascmhl", false, false],
  [["*.RMD"], "A/B/clip.RMD", false, true],
  [["*.RMD"], "A/B/clip.R3D", false, false],
  [["/tmp"], "tmp/x", false, true],
  [["/tmp"], "a/tmp", false, false],
  [["doc/frotz/"], "doc/frotz/f", false, true],
  [["doc/frotz/"], "a/doc/frotz/f", false, false],
  [["frotz/"], "a/frotz/f", false, true],
  [["**/foo"], "x/y/foo", false, true],
  [["**/foo/bar"], "x/foo/bar", false, true],
  [["abc/**"], "abc/d/e", false, true],
  [["abc/**"], "abc", true, false],
  [["a/**/b"], "a/b", false, true],
  [["a/**/b"], "a/x/y/b", false, true],
  [["clip?.mov"], "clip1.mov", false, true],
  [["clip?.mov"], "clip10.mov", false, false],
  [["clip[0-4].mov"], "clip3.mov", false, true],
  [["clip[!0-4].mov"], "clip3.mov", false, false],
  [["*.log", "!keep.log"], "x/keep.log", false, false],
  [["logs/", "!logs/keep.log"], "logs/keep.log", false, true],
  [["\\!important.txt"], "!important.txt", false, true],
  [["# comment", ""], "# comment", false, false],
  [["name\\ "], "name ", false, true],
];

test.each(cases)("%j on %s (dir %s) → %s", (patterns, p, isDir, want) => {
  expect(new IgnoreSpec(patterns).ignores(p, isDir)).toBe(want);
});
