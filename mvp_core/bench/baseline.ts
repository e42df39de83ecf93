/**
 * `--baseline DIR[,DIR…]` of the transfer benchmarks: the engine CLI of other checkouts (say the
 * commit before a change, in a git worktree with its dependencies installed) runs as extra methods in the
 * same interleaved rounds, so a before/after comparison shares one run's machine state instead of
 * comparing ratios from runs minutes apart (these machines drift 2-5× between minutes).
 */
import fs from "node:fs";
import path from "node:path";

/** Another checkout's engine CLI and the name its methods carry. */
export interface Baseline {
  cli: string;
  /** "base <short commit>" (or the folder's name outside git). */
  label: string;
}

/** `--baseline DIR[,DIR…]`: each checkout's CLI, or an error saying what to fix. */
export function findBaselines(dirs: string): Baseline[] | string {
  const found: Baseline[] = [];
  for (const dir of dirs.split(",").filter((d) => d !== "")) {
    const b = findBaseline(dir);
    if (typeof b === "string") return b;
    if (found.some((f) => f.label === b.label)) return `--baseline ${dirs}: two checkouts named ${b.label}`;
    found.push(b);
  }
  return found.length > 0 ? found : "--baseline needs a folder";
}

/** The CLI entry of the checkout at `dir` (the engine tree moved its CLI into cli/ in issue 12), or an error saying what to fix. */
export function findBaseline(dir: string): Baseline | string {
  const root = path.resolve(dir);
  const cli = ["mvp_core/transfer_engine/cli/cli.ts", "mvp_core/transfer_engine/cli.ts"].map((p) => path.join(root, p)).find((p) => fs.existsSync(p));
  if (cli === undefined) return `--baseline ${dir}: no engine CLI there (mvp_core/transfer_engine/cli/cli.ts or cli.ts); give a Ketter checkout`;
  if (!fs.existsSync(path.join(root, "node_modules"))) return `--baseline ${dir}: its dependencies are not installed; run \`bun install\` there first`;
  const rev = Bun.spawnSync(["git", "-C", root, "rev-parse", "--short", "HEAD"], { stdout: "pipe", stderr: "ignore" });
  const name = rev.exitCode === 0 ? rev.stdout.toString().trim() : path.basename(root);
  return { cli, label: `base ${name}` };
}
