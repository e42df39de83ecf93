/**
 * The guarantee of the remote programs (programs/rooted.pl): every path below the root is opened one
 * component at a time without following links, so a link at any component — as a swap mid-run
 * leaves it — is refused with "ketter-escape" (exit 5), and nothing outside the root is read or
 * written. Each program runs here exactly as the endpoint sends it, through OpenSSH's own client,
 * with no SFTP check in front: the link is already in place when the program starts, which is what
 * a swap after the endpoint's check looks like to the program.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import fs from "node:fs";
import { inflateSync } from "node:zlib";
import path from "node:path";
import { startSshd, type TestSshd } from "../../../testing/sshd.ts";
import {
  type RemoteTools, hashCommand, laneHeader, packCommand, parseProbe, perlLaneCommand, perlSetAttrs, perlUnzipCommand, perlUnzipStreamCommand,
  perlWriteCommand, probeCommand, readCommand, removeCommand, statManyCommand, unzipStreamPreamble, walkCommand,
} from "./remote_shell.ts";
import { chownTree, exactSnapshot as snapshot, storedZip } from "./test_support.ts";

const TIMEOUT_MS = 120_000;

describe("remote programs refuse links at every component", () => {
  let s: TestSshd;
  let portal: string;
  let outside: string;
  let tools: RemoteTools;
  let before: Record<string, string>;

  /** Runs `command` on the test host with OpenSSH's client. */
  const remote = (command: string, stdin: Uint8Array | string = ""): { code: number; stdout: Buffer; stderr: string } => {
    const r = Bun.spawnSync(["ssh", ...s.sshArgs(), s.host, command], { stdin: typeof stdin === "string" ? Buffer.from(stdin) : stdin, stdout: "pipe", stderr: "pipe" });
    return { code: r.exitCode, stdout: r.stdout, stderr: r.stderr.toString() };
  };
  /** Asserts the program stopped at a link (exit 5, "ketter-escape") and left everything outside as it was. */
  const refused = (r: { code: number; stdout: Buffer; stderr: string }, at: string): void => {
    expect({ code: r.code, escape: r.stderr.trim() }).toEqual({ code: 5, escape: `ketter-escape: ${at}` });
    expect(r.stdout.toString("latin1")).not.toContain("SECRET");
    expect(snapshot(outside)).toEqual(before);
  };
  const chown = (p: string): void => chownTree(p, s);
  const zipOf = (files: Record<string, string>): Uint8Array => storedZip(Object.entries(files));

  beforeAll(async () => {
    s = await startSshd();
    // The portal is one folder of the user's; "outside" is another the user may read and write, so
    // a program that followed a link there would succeed — and show.
    portal = path.join(s.root, "portal");
    outside = path.join(s.root, "outside");
    fs.mkdirSync(path.join(portal, "t/real"), { recursive: true });
    fs.mkdirSync(path.join(outside, "d"), { recursive: true });
    fs.writeFileSync(path.join(outside, "secret.txt"), "SECRET outside the portal");
    fs.writeFileSync(path.join(portal, "t/real/f.bin"), "REAL");
    fs.symlinkSync(outside, path.join(portal, "t/link"));
    fs.symlinkSync(path.join(outside, "secret.txt"), path.join(portal, "t/flink"));
    chown(s.root);
    tools = parseProbe(remote(probeCommand(portal)).stdout.toString());
    expect({ shell: tools.shell, perl: tools.perlZlib, digest: tools.perlDigest, find: tools.gnuFind }).toEqual({ shell: true, perl: true, digest: true, find: true });
    before = snapshot(outside);
  }, TIMEOUT_MS);
  afterAll(() => s.stop(), TIMEOUT_MS);

  test("read: a link in the folders or as the file itself is refused; a real file streams", () => {
    refused(remote(readCommand(tools, portal, "t/link/secret.txt", 0)), "t/link");
    refused(remote(readCommand(tools, portal, "t/flink", 0)), "t/flink");
    expect(remote(readCommand(tools, portal, "t/real/f.bin", 1)).stdout.toString()).toBe("EAL");
  });

  test("write, lane: nothing is created or changed through a link", () => {
    refused(remote(perlWriteCommand(portal, "t/link/planted", 0o644), "X"), "t/link");
    refused(remote(perlWriteCommand(portal, "t/flink", undefined), "X"), "t/flink");
    refused(remote(perlLaneCommand(portal), Buffer.concat([laneHeader("t/link/d/planted", 1, undefined), Buffer.from("X")])), "t/link");
    const ok = remote(perlWriteCommand(portal, "t/real/new", 0o640), "NEW");
    expect({ code: ok.code, out: ok.stdout.toString().trim() }).toEqual({ code: 0, out: `${(Bun.hash.crc32("NEW") >>> 0).toString(16).padStart(8, "0")} 3` });
    expect(fs.readFileSync(path.join(portal, "t/real/new"), "utf8")).toBe("NEW");
  });

  test("unpackers: neither the destination nor an entry's folders may be a link", () => {
    const zip = zipOf({ planted: "X" });
    const stream = (into: string, z: Uint8Array, names: number): ReturnType<typeof remote> =>
      remote(perlUnzipStreamCommand(portal, into), Buffer.concat([unzipStreamPreamble(Array.from({ length: names }, () => ({ size: 1 }))), z]));
    refused(stream("t/link", zip, 1), "t/link");
    refused(stream("t", zipOf({ "link/planted": "X" }), 1), "t/link");
    fs.writeFileSync(path.join(portal, "t/real/a.zip"), zipOf({ "link/d/planted": "X" }));
    chown(path.join(portal, "t/real/a.zip"));
    refused(remote(perlUnzipCommand(portal, "t/real/a.zip", "t", 1)), "t/link");
    refused(remote(perlUnzipCommand(portal, "t/link/secret.txt", "t/real", 1)), "t/link");
    expect(stream("t/real", zipOf({ "sub/ok.txt": "Y" }), 1).code).toBe(0);
    expect(fs.readFileSync(path.join(portal, "t/real/sub/ok.txt"), "utf8")).toBe("Y");
  });

  test("hash, walk, statMany, pack: nothing outside is read or listed", () => {
    expect(tools.commands.has("xxhsum")).toBe(true); // test.sh installs xxhash
    for (const alg of ["crc32", "sha256", "md5", "xxh3", "xxh128"] as const) refused(remote(hashCommand(tools, portal, alg), "t/link/secret.txt\0"), "t/link");
    for (const alg of ["crc32", "xxh64"] as const) refused(remote(hashCommand(tools, portal, alg), "t/real/f.bin\0t/flink\0"), "t/flink");
    refused(remote(walkCommand(tools, portal, "t/link")), "t/link");
    refused(remote(statManyCommand(portal), "t/link/secret.txt\0"), "t/link");
    refused(remote(packCommand(portal, "t/link")), "t/link");
    // The real tree: the link is listed as a link and left out of the archive, its target never read.
    // (The walk's listing travels deflated: inflate it as the endpoint does.)
    const walked = inflateSync(remote(walkCommand(tools, portal, "t")).stdout).toString().split("\0");
    expect(walked).toContain("link");
    expect(walked.filter((f) => f.startsWith("link/") || f.startsWith("flink/"))).toEqual([]);
    const packed = remote(packCommand(portal, "t"));
    expect(packed.code).toBe(0);
    expect(packed.stdout.toString("latin1")).toContain("real/f.bin");
    expect(packed.stdout.toString("latin1")).not.toContain("SECRET");
    expect(snapshot(outside)).toEqual(before);
  });

  test("remove and set attributes never act through a link", () => {
    refused(remote(removeCommand(tools, portal, "t/link/secret.txt")), "t/link");
    refused(remote(removeCommand(tools, portal, "t/link/d")), "t/link");
    const attrs = perlSetAttrs(portal, [{ rel: "t/link/secret.txt", mode: 0o777, mtimeMs: 0 }]);
    refused(remote(attrs.command, attrs.stdin), "t/link");
    // A link as the entry itself is skipped (its target keeps its mode and mtime).
    const onLink = perlSetAttrs(portal, [{ rel: "t/flink", mode: 0o777, mtimeMs: 0 }]);
    expect(remote(onLink.command, onLink.stdin).code).toBe(0);
    expect(snapshot(outside)).toEqual(before);
    // Removing the link removes the link, not what it points to.
    fs.symlinkSync(outside, path.join(portal, "t/link2"));
    chown(path.join(portal, "t/link2"));
    expect(remote(removeCommand(tools, portal, "t/link2")).code).toBe(0);
    expect(fs.existsSync(path.join(portal, "t/link2"))).toBe(false);
    expect(snapshot(outside)).toEqual(before);
  });

  test("a folder moved out of the root while a lane writes into it is refused, not written into", async () => {
    fs.mkdirSync(path.join(portal, "t/m"));
    chown(path.join(portal, "t/m"));
    const lane = Bun.spawn(["ssh", ...s.sshArgs(), s.host, perlLaneCommand(portal)], { stdin: "pipe", stdout: "pipe", stderr: "pipe" });
    const lines = lane.stdout.getReader();
    lane.stdin.write(Buffer.concat([laneHeader("t/m/f1", 2, undefined), Buffer.from("F1")]));
    await lane.stdin.flush();
    const first = await lines.read(); // the lane's report: f1 is closed, and t/m is its working folder
    expect(new TextDecoder().decode(first.value)).toMatch(/^[0-9a-f]{8} 2\n$/);
    fs.renameSync(path.join(portal, "t/m"), path.join(outside, "m"));
    lane.stdin.write(Buffer.concat([laneHeader("t/m/f2", 2, undefined), Buffer.from("F2")]));
    lane.stdin.end();
    expect(await lane.exited).toBe(5);
    expect(await new Response(lane.stderr).text()).toBe("ketter-escape: t/m\n");
    expect(fs.readdirSync(path.join(outside, "m"))).toEqual(["f1"]);
    fs.rmSync(path.join(outside, "m"), { recursive: true });
    expect(snapshot(outside)).toEqual(before);
  });
});
