/**
 * A dying server never takes the engine's process down (issue 13, item 3: sshd killed mid-transfer
 * crashed the whole worker in 4 of 7 rounds with ssh2's "No response from server"). Each round runs
 * a transfer in a child process (dying_server_child.ts), kills sshd while bytes are in flight, and
 * asserts: a retryable CONNECTION_LOST, nothing under the final name, the source untouched, and no
 * uncaught exception or unhandled rejection in the child.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import fs from "node:fs";
import path from "node:path";
import { startSshd, type TestSshd } from "../../../testing/sshd.ts";
import { tempDir, writeTree } from "../../test_tree.ts";
import type { DyingServerJob, DyingServerReport } from "./dying_server_child.ts";
import { chownTree, targetOf } from "./test_support.ts";

const TIMEOUT_MS = 300_000;
const ROUNDS = 10;
const KiB = 1024;
const MiB = 1024 * KiB;
/** Where the kill lands, by round: early, among the small files, inside the big ones. */
const GATES = [16 * KiB, 100 * KiB, 300 * KiB, 700 * KiB, 1 * MiB, 2 * MiB, 3 * MiB, 5 * MiB, 6 * MiB, 8 * MiB];

/** Two files big enough for the exec streams, forty for SFTP: about 10 MiB, every path in use. */
function sourceTree(root: string): void {
  const files: Record<string, number> = { "big/a.bin": 5 * MiB, "big/b.bin": 5 * MiB };
  for (let i = 0; i < 40; i++) files[`small/${i % 4}/f${i}.bin`] = 16 * KiB;
  writeTree(root, files);
}

/** Every file under `root` with its content hash. */
function contents(root: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const rel of fs.readdirSync(root, { recursive: true }) as string[]) {
    const abs = path.join(root, rel);
    if (fs.lstatSync(abs).isFile()) out[rel] = new Bun.CryptoHasher("sha1").update(fs.readFileSync(abs)).digest("hex");
  }
  return out;
}

/** Runs one round in a child: kills sshd at the child's gate, then lets the child go on; returns its report. */
async function round(s: TestSshd, job: DyingServerJob): Promise<DyingServerReport> {
  const child = Bun.spawn(["bun", path.join(import.meta.dir, "dying_server_child.ts")], {
    env: { ...process.env, KETTER_DYING_SERVER: JSON.stringify(job) },
    stdin: "pipe",
    stdout: "pipe",
    stderr: "pipe",
  });
  const stderr = new Response(child.stderr).text();
  let report: DyingServerReport | null = null;
  let buffered = "";
  for await (const chunk of child.stdout) {
    buffered += new TextDecoder().decode(chunk);
    for (let nl = buffered.indexOf("\n"); nl >= 0; nl = buffered.indexOf("\n")) {
      const line = buffered.slice(0, nl);
      buffered = buffered.slice(nl + 1);
      if (line === "gate") {
        await s.kill();
        child.stdin.write("go\n");
        await child.stdin.flush();
      } else if (line.startsWith("{")) report = JSON.parse(line) as DyingServerReport;
    }
  }
  const code = await child.exited;
  if (code !== 0 || report === null) throw new Error(`child exited ${code} without a report: ${await stderr}`);
  return report;
}

describe("sshd killed mid-transfer, repeated", () => {
  let s: TestSshd;
  let local: { dir: string; cleanup: () => Promise<void> };

  beforeAll(async () => {
    s = await startSshd();
    local = await tempDir("ketter-dying-");
  }, TIMEOUT_MS);
  afterAll(async () => {
    await s.stop();
    await local.cleanup();
  }, TIMEOUT_MS);

  for (const direction of ["push", "pull"] as const) {
    test(`${direction}: ${ROUNDS} rounds, each a retryable CONNECTION_LOST with nothing under the final name and nothing uncaught`, async () => {
      const outcomes: string[] = [];
      for (let i = 0; i < ROUNDS; i++) {
        const strategy = i % 2 === 0 ? "direct" : "zip";
        const remoteRoot = path.join(s.root, `${direction}-${i}`);
        const localRoot = path.join(local.dir, `${direction}-${i}`);
        fs.mkdirSync(remoteRoot);
        fs.mkdirSync(localRoot);
        const sourceRoot = direction === "push" ? localRoot : remoteRoot;
        sourceTree(path.join(sourceRoot, "src"));
        chownTree(remoteRoot, s);
        const before = contents(path.join(sourceRoot, "src"));
        const report = await round(s, { target: targetOf(s, remoteRoot), localDir: localRoot, direction, strategy, gateBytes: GATES[i % GATES.length]! });
        await s.restart();
        outcomes.push(`${strategy} @${GATES[i % GATES.length]}: ${report.error?.code ?? "done"}`);
        expect({ round: i, strategy, gated: report.gated, uncaught: report.uncaught }).toEqual({ round: i, strategy, gated: true, uncaught: [] });
        expect({ round: i, code: report.error?.code, retryable: report.error?.retryable }).toEqual({ round: i, code: "CONNECTION_LOST", retryable: true });
        expect(fs.existsSync(path.join(direction === "push" ? remoteRoot : localRoot, "dst"))).toBe(false);
        expect(contents(path.join(sourceRoot, "src"))).toEqual(before);
      }
      expect(outcomes).toHaveLength(ROUNDS);
    }, TIMEOUT_MS);
  }
});
