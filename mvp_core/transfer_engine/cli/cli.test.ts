import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, test } from "bun:test";
import { spawn } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { startSshd, type TestSshd } from "../../testing/sshd.ts";
import { parseCliArgs } from "./args.ts";
import { leftovers, snapshot, tempDir, treeDiff, writeTree } from "../test_tree.ts";

const CLI = path.join(import.meta.dir, "cli.ts");
const REPO = path.resolve(import.meta.dir, "../../..");
let dir: string;
let cleanup: () => Promise<void>;
beforeEach(async () => ({ dir, cleanup } = await tempDir("ketter-cli-")));
afterEach(() => cleanup());

function start(args: string[]): Bun.Subprocess<"ignore", "pipe", "pipe"> {
  return Bun.spawn(["bun", CLI, ...args], { cwd: dir, stdin: "ignore", stdout: "pipe", stderr: "pipe" });
}

async function cli(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const p = start(args);
  const [stdout, stderr, code] = await Promise.all([new Response(p.stdout).text(), new Response(p.stderr).text(), p.exited]);
  return { code, stdout, stderr };
}

/** Resolves once `file` exists (the transfer is mid-flight), or rejects if the process ends first. */
async function waitFor(file: string, p: Bun.Subprocess): Promise<void> {
  while (!fs.existsSync(file)) {
    if (p.exitCode !== null) throw new Error(`process exited (${p.exitCode}) before ${file} appeared`);
    await Bun.sleep(1);
  }
}

function bigTree(root: string): void {
  const files: Record<string, number> = {};
  for (let i = 0; i < 800; i++) files[`d${i % 8}/f${i}`] = 64 * 1024;
  writeTree(root, files);
}

test("copies with relative paths and prints a JSON result when stdout is not a terminal", async () => {
  writeTree(dir, { "src/a b/ü.txt": "x", "src/n": 100 });
  const r = await cli(["--from", "src", "--to", "dst", "--mode", "copy"]);
  expect(r.code).toBe(0);
  const out = JSON.parse(r.stdout);
  expect(out).toMatchObject({ ok: true, result: { files: 2, strategy: "direct", verified: { mode: "checksum" } } });
  expect(treeDiff(snapshot(path.join(dir, "dst")), snapshot(path.join(dir, "src")))).toEqual([]);
});

test("--sync re-runs send only what changed; the JSON result counts files by outcome; --overwrite with --sync is bad usage", async () => {
  writeTree(dir, { "src/a": "a", "src/b": "b", "src/c/d": "d" });
  expect((await cli(["--from", "src", "--to", "dst", "--mode", "copy"])).code).toBe(0);
  const again = await cli(["--from", "src", "--to", "dst", "--mode", "copy", "--sync", "mtime"]);
  expect(again.code).toBe(0);
  expect(JSON.parse(again.stdout).result.fileCounts).toEqual({ skipped: 3, verified: 0, failed: 0 });
  fs.writeFileSync(path.join(dir, "src/b"), "b, longer now");
  writeTree(dir, { "dst/extra": "x" });
  const changed = await cli(["--from", "src", "--to", "dst", "--mode", "copy", "--sync", "size", "--mirror"]);
  expect(JSON.parse(changed.stdout).result).toMatchObject({ fileCounts: { skipped: 2, verified: 1, failed: 0 }, mirrored: 1 });
  expect(treeDiff(snapshot(path.join(dir, "dst")), snapshot(path.join(dir, "src")))).toEqual([]);
  const both = await cli(["--from", "src", "--to", "dst", "--mode", "copy", "--sync", "size", "--overwrite"]);
  expect(both.code).toBe(2);
  expect(both.stderr).toContain("choose one");
});

test("--mhl writes an ASC MHL generation; --mode verify exits 0 on the copy, 1 listing a tampered file; verify takes no --to", async () => {
  writeTree(dir, { "card/Clips/A.mov": 50_000, "card/Sidecar.txt": "notes" });
  const copied = await cli(["--from", "card", "--to", "copy", "--mode", "copy", "--mhl", "--hash", "xxh64"]);
  expect(copied.code).toBe(0);
  expect(JSON.parse(copied.stdout).result).toMatchObject({ verified: { algorithm: "xxh64" }, mhl: { format: "xxh64", files: 2, manifests: [{ sequence: 1 }] } });
  const ok = await cli(["--mode", "verify", "--from", "copy"]);
  expect(ok.code).toBe(0);
  expect(JSON.parse(ok.stdout)).toMatchObject({ ok: true, verification: { ok: true, verified: 2 } });
  fs.writeFileSync(path.join(dir, "copy/Sidecar.txt"), "NOTES");
  const bad = await cli(["--mode", "verify", "--from", "copy"]);
  expect(bad.code).toBe(1);
  expect(JSON.parse(bad.stdout)).toMatchObject({ ok: false, verification: { mismatched: [{ path: "Sidecar.txt", format: "xxh64" }] } });
  const usage = await cli(["--mode", "verify", "--from", "copy", "--to", "x"]);
  expect(usage.code).toBe(2);
  expect(usage.stderr).toContain("--to does not apply to --mode verify");
  const badHash = await cli(["--from", "card", "--to", "c2", "--mode", "copy", "--hash", "xxh4"]);
  expect(badHash.code).toBe(2);
  expect(badHash.stderr).toContain("--hash must be one of auto, xxh3");
});

test("bad usage exits 2 and says what to fix", async () => {
  const r = await cli(["--from", "src", "--mode", "clone"]);
  expect(r.code).toBe(2);
  expect(r.stderr).toContain("--to is required");
  expect(r.stderr).toContain("--mode must be one of copy, move");
  const unknown = await cli(["--from", "a", "--to", "b", "--mode", "copy", "--fast"]);
  expect(unknown.code).toBe(2);
  expect(unknown.stderr).toContain("--fast");
  writeTree(dir, { "src/x": "x" });
  const inside = await cli(["--from", "src", "--to", "src/copy", "--mode", "copy", "--json"]);
  expect(inside.code).toBe(2);
  expect(JSON.parse(inside.stdout).error.code).toBe("TARGET_INSIDE_SOURCE");
});

test("a failed transfer exits 1 with the error code", async () => {
  const r = await cli(["--from", "missing", "--to", "dst", "--mode", "move"]);
  expect(r.code).toBe(1);
  expect(JSON.parse(r.stdout)).toMatchObject({ ok: false, error: { code: "SOURCE_NOT_FOUND", retryable: false } });
  writeTree(dir, { "src/x": "x", "dst/y": "y" });
  const exists = await cli(["--from", "src", "--to", "dst", "--mode", "copy"]);
  expect(exists.code).toBe(1);
  expect(JSON.parse(exists.stdout).error.code).toBe("TARGET_EXISTS");
  expect((await cli(["--from", "src", "--to", "dst", "--mode", "copy", "--overwrite"])).code).toBe(0);
});

test("kill -9 in the middle of a move leaves the source complete; a retry with the same id finishes", async () => {
  bigTree(path.join(dir, "src"));
  const before = snapshot(path.join(dir, "src"));
  const args = ["--from", "src", "--to", "dst", "--mode", "move", "--strategy", "direct", "--id", "job1"];
  const p = start(args);
  // Files land in scan order (d0, d1, …): a file of d2 existing means the copy is well under way.
  await waitFor(path.join(dir, ".ketter-job1.partial/d2/f2"), p);
  p.kill("SIGKILL");
  expect(await p.exited).not.toBe(0);
  expect(treeDiff(snapshot(path.join(dir, "src")), before)).toEqual([]);
  expect(fs.existsSync(path.join(dir, "dst"))).toBe(false);
  const again = await cli(args);
  expect(again.code).toBe(0);
  expect(fs.existsSync(path.join(dir, "src"))).toBe(false);
  expect(treeDiff(snapshot(path.join(dir, "dst")), before)).toEqual([]);
  expect(leftovers(dir)).toEqual([]);
});

test("SIGINT (Ctrl-C) cancels cleanly: exit 130, CANCELLED, no staging left, source intact", async () => {
  bigTree(path.join(dir, "src"));
  const before = snapshot(path.join(dir, "src"));
  const p = start(["--from", "src", "--to", "dst", "--mode", "move", "--strategy", "direct", "--id", "job2"]);
  await waitFor(path.join(dir, ".ketter-job2.partial"), p);
  p.kill("SIGINT");
  const [stdout, stderr, code] = await Promise.all([new Response(p.stdout).text(), new Response(p.stderr).text(), p.exited]);
  expect(code).toBe(130);
  expect(JSON.parse(stdout).error.code).toBe("CANCELLED");
  expect(stderr).toStartWith("transfer job2\n");
  expect(stderr).toContain("cancelling");
  expect(leftovers(dir)).toEqual([]);
  expect(fs.existsSync(path.join(dir, "dst"))).toBe(false);
  expect(treeDiff(snapshot(path.join(dir, "src")), before)).toEqual([]);
});

// A terminal's Ctrl-C signals the whole process group: `bun run engine` gets it and forwards one
// more to the CLI, which got its own. The second must not force an exit that leaves staging behind.
test("Ctrl-C to the process group of `bun run engine` (two SIGINTs at once) cancels cleanly; SIGTERM exits 143", async () => {
  const files: Record<string, number> = { "big/footage.mov": 192 << 20 };
  for (let i = 0; i < 200; i++) files[`small/f${i}`] = 64 * 1024;
  writeTree(path.join(dir, "src"), files);
  const before = snapshot(path.join(dir, "src"));
  for (const [signal, exit] of [["SIGINT", 130], ["SIGTERM", 143]] as const) {
    const p = spawn("bun", ["run", "engine", "--from", path.join(dir, "src"), "--to", path.join(dir, "dst"), "--mode", "copy", "--strategy", "direct", "--id", `grp-${signal}`], {
      cwd: REPO, detached: true, stdio: ["ignore", "pipe", "pipe"],
    });
    let stderr = "";
    p.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
    const exited = new Promise<number | null>((resolve) => p.on("exit", (code) => resolve(code)));
    while (!fs.existsSync(path.join(dir, `.ketter-grp-${signal}.partial/big`))) {
      if (p.exitCode !== null) throw new Error(`exited before copying: ${stderr}`);
      await Bun.sleep(2);
    }
    process.kill(-(p.pid as number), signal); // the whole group, as a terminal does
    expect(await exited).toBe(exit);
    expect(stderr).toContain(`transfer grp-${signal}`);
    expect(stderr).toContain("cancelling");
    expect(leftovers(dir)).toEqual([]);
    expect(fs.existsSync(path.join(dir, "dst"))).toBe(false);
  }
  expect(treeDiff(snapshot(path.join(dir, "src")), before)).toEqual([]);
});

describe("sftp:// locations (a real sshd)", () => {
  let sshd: TestSshd;
  beforeAll(async () => {
    sshd = await startSshd();
  });
  afterAll(() => sshd.stop());
  const url = (p: string): string => `sftp://${sshd.username}@${sshd.host}:${sshd.port}${sshd.root}/${p}`;
  const creds = (): string[] => ["--identity", sshd.privateKeyPath, "--host-key", sshd.hostKeyFingerprint];
  /** snapshot() with mtimes in whole seconds: SFTP v3 carries no more. */
  const seconds = (root: string): ReturnType<typeof snapshot> =>
    Object.fromEntries(Object.entries(snapshot(root)).map(([p, s]) => [p, { ...s, mtimeMs: Math.floor(s.mtimeMs / 1000) * 1000 }]));

  test("pushes a folder to the host and pulls it back, bytes, modes and mtimes intact", async () => {
    writeTree(dir, { "src/a b/ü.txt": "x", "src/n": 100, "src/deep/er/f": 70_000, "src/empty/": "" });
    fs.chmodSync(path.join(dir, "src/n"), 0o640);
    const up = await cli(["--from", "src", "--to", url("up"), "--mode", "copy", ...creds(), "--json"]);
    expect(up.code).toBe(0);
    expect(JSON.parse(up.stdout)).toMatchObject({ ok: true, result: { files: 3, verified: { mode: "checksum" } } });
    expect(treeDiff(seconds(path.join(sshd.root, "up")), seconds(path.join(dir, "src")))).toEqual([]);
    const down = await cli(["--from", url("up"), "--to", "back", "--mode", "move", "--strategy", "zip", ...creds()]);
    expect(down.code).toBe(0);
    expect(treeDiff(seconds(path.join(dir, "back")), seconds(path.join(dir, "src")))).toEqual([]);
    expect(fs.existsSync(path.join(sshd.root, "up"))).toBe(false); // moved: the remote source is gone
    expect(leftovers(sshd.root)).toEqual([]);
  }, 60_000);

  test("a wrong pinned key exits 1 with HOST_KEY_MISMATCH and writes nothing; a missing parent is NOT_A_DIRECTORY", async () => {
    writeTree(dir, { "src/x": "x" });
    const wrong = `SHA256:${"A".repeat(43)}`;
    const r = await cli(["--from", "src", "--to", url("dst"), "--mode", "copy", "--identity", sshd.privateKeyPath, "--host-key", wrong, "--json"]);
    expect(r.code).toBe(1);
    const err = JSON.parse(r.stdout).error;
    expect(err).toMatchObject({ code: "HOST_KEY_MISMATCH", retryable: false });
    expect(err.message).toContain(sshd.hostKeyFingerprint);
    expect(fs.existsSync(path.join(sshd.root, "dst"))).toBe(false);
    const parent = await cli(["--from", "src", "--to", url("no/such/dst"), "--mode", "copy", ...creds(), "--json"]);
    expect(parent.code).toBe(1);
    expect(JSON.parse(parent.stdout).error.code).toBe("NOT_A_DIRECTORY");
  }, 60_000);
});

describe("sftp:// usage errors (exit 2, nothing connects)", () => {
  const cases: [string, string[], string][] = [
    ["no host key", ["--to", "sftp://u@h/srv/x", "--identity", "k"], "--host-key is required for h"],
    ["no credentials", ["--to", "sftp://u@h/srv/x", "--host-key", "SHA256:x"], "--identity KEYFILE"],
    ["no user", ["--to", "sftp://h/srv/x", "--identity", "k", "--host-key", "SHA256:x"], "the user name is missing"],
    ["another scheme", ["--to", "ftp://u@h/srv/x"], "only sftp:// locations"],
    ["the remote root", ["--to", "sftp://u@h/", "--identity", "k", "--host-key", "SHA256:x"], "not the root itself"],
    ["both remote", ["--from", "sftp://u@h/a", "--to", "sftp://u@h/b", "--identity", "k", "--host-key", "SHA256:x"], "only one of --from and --to"],
    ["ssh flags for a local copy", ["--to", "dst", "--host-key", "SHA256:x"], "apply only to an sftp://"],
    ["zero streams", ["--to", "dst", "--streams", "0"], "--streams must be a whole number from 1 to 64"],
    ["fractional connections", ["--to", "sftp://u@h/srv/x", "--identity", "k", "--host-key", "SHA256:x", "--max-connections", "1.5"], "--max-connections must be a whole number from 1 to 16"],
    ["connections for a local copy", ["--to", "dst", "--max-connections", "2"], "--max-connections applies only to an sftp://"],
  ];
  for (const [name, extra, message] of cases) {
    test(name, () => {
      const argv = ["--from", "src", "--mode", "copy", ...extra];
      const r = parseCliArgs(argv, "/work");
      expect(r.ok).toBe(false);
      if (!r.ok) expect(r.message).toContain(message);
    });
  }

  test("parsed: the endpoint is rooted at the parent, odd characters percent-decoded, IPv6 unbracketed", () => {
    const r = parseCliArgs(["--from", "src", "--to", "sftp://ann@[::1]:2222/srv/in/shoot%2042", "--mode", "copy", "--host-key", "SHA256:x"], "/work", { KETTER_SSH_PASSWORD: "pw" });
    expect(r).toMatchObject({
      ok: true,
      spec: { sourcePath: "src", targetPath: "shoot 42" },
      from: { kind: "local", root: "/work", rel: "src" },
      to: { kind: "sftp", host: "::1", port: 2222, username: "ann", root: "/srv/in", rel: "shoot 42" },
      auth: { identity: null, hostKey: "SHA256:x" },
      tuning: {},
    });
    const tuned = parseCliArgs(["--from", "src", "--to", "sftp://ann@h/srv/x", "--mode", "copy", "--host-key", "SHA256:x", "--streams", "4", "--max-connections", "2"], "/work", { KETTER_SSH_PASSWORD: "pw" });
    expect(tuned).toMatchObject({ ok: true, tuning: { maxStreams: 4, maxConnections: 2 } });
  });

  test("an unreadable key file and a malformed fingerprint exit 2 from the CLI", async () => {
    writeTree(dir, { "src/x": "x" });
    const key = await cli(["--from", "src", "--to", "sftp://u@127.0.0.1:1/srv/x", "--mode", "copy", "--identity", "missing-key", "--host-key", `SHA256:${"A".repeat(43)}`, "--json"]);
    expect(key.code).toBe(2);
    expect(JSON.parse(key.stdout).error.message).toContain("cannot read --identity");
    fs.writeFileSync(path.join(dir, "k"), "not a key");
    const fp = await cli(["--from", "src", "--to", "sftp://u@127.0.0.1:1/srv/x", "--mode", "copy", "--identity", "k", "--host-key", "SHA256:short", "--json"]);
    expect(fp.code).toBe(2);
    expect(JSON.parse(fp.stdout).error.message).toContain("hostKeyFingerprint must look like");
  });
});
