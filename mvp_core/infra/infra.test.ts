import { describe, expect, test } from "bun:test";
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import pkg from "../../package.json" with { type: "json" };
import { freePort } from "../testing/ports.ts";

const INFRA = import.meta.dir;
const COMPOSE = join(INFRA, "docker-compose.yml");

function run(cmd: string[], env: Record<string, string | undefined> = {}) {
  const p = Bun.spawnSync(cmd, { env: { ...process.env, ...env }, stdout: "pipe", stderr: "pipe" });
  return { code: p.exitCode, out: p.stdout.toString(), err: p.stderr.toString() };
}

/** Every Compose this machine has: v2 (`docker compose`) and v1 (`docker-compose`, Debian's package). */
function composeCommands(): string[][] {
  const found: string[][] = [];
  if (run(["docker", "compose", "version"]).code === 0) found.push(["docker", "compose"]);
  if (run(["docker-compose", "version"]).code === 0) found.push(["docker-compose"]);
  return found;
}

describe("docker-compose.yml", () => {
  const composes = composeCommands();

  test("at least one Compose version is installed to validate the file (test.sh installs docker-compose)", () => {
    expect(composes.length).toBeGreaterThan(0);
  });

  for (const compose of composes) {
    const name = compose.join(" ");
    test(`${name}: validates; API on loopback, key as a file secret, exec-form commands without bun run`, () => {
      const r = run([...compose, "-f", COMPOSE, "config"], { KETTER_COMPOSE_SECRET_FILE: "/run/ketter-test/secret_key", KETTER_SECRET_KEY: undefined, API_HOST: undefined, API_PORT: undefined });
      expect(r.err).not.toContain("ERROR");
      expect(r.code).toBe(0);
      const config = Bun.YAML.parse(r.out) as {
        services: Record<string, {
          healthcheck?: { test?: string[]; disable?: boolean };
          volumes?: unknown[];
          command?: string[];
          environment?: Record<string, string>;
          ports?: (string | { host_ip?: string; published?: string | number; target?: number })[];
          secrets?: (string | { source: string })[];
          depends_on?: Record<string, { condition: string }>;
        }>;
        volumes: Record<string, unknown>;
        secrets: Record<string, { file: string }>;
      };
      const s = config.services;
      expect(Object.keys(s).sort()).toEqual(["api", "migrate", "postgres", "redis", "worker"]);
      for (const n of ["postgres", "redis"]) expect(s[n]!.healthcheck?.test).toBeDefined();
      expect(s.redis!.command).toContain("--appendonly");
      expect(Object.keys(config.volumes).sort()).toEqual(["ketterdata", "pgdata", "redisdata"]);
      expect(s.api!.depends_on?.migrate?.condition).toBe("service_completed_successfully");
      // Published on the host's loopback only (v1 prints "127.0.0.1:8080:8080/tcp", v2 an object).
      const port = s.api!.ports![0]!;
      expect(typeof port === "string" ? port.startsWith("127.0.0.1:8080:8080") : port.host_ip === "127.0.0.1" && String(port.published) === "8080").toBe(true);
      // The key is a file secret, never an environment value.
      expect(config.secrets.ketter_secret_key!.file).toBe("/run/ketter-test/secret_key");
      for (const n of ["api", "worker", "migrate"]) {
        const svc = s[n]!;
        expect(svc.environment?.KETTER_SECRET_KEY).toBeUndefined();
        expect(svc.environment?.KETTER_SECRET_KEY_FILE).toBe("/run/secrets/ketter_secret_key");
        expect(svc.secrets?.map((x) => (typeof x === "string" ? x : x.source))).toEqual(["ketter_secret_key"]);
        expect(svc.command?.[0]).toBe("bun");
        expect(svc.command?.[1]).not.toBe("run");
      }
    });

    test(`${name}: refuses to render without the key's file, saying how to make one`, () => {
      const r = run([...compose, "-f", COMPOSE, "config", "-q"], { KETTER_COMPOSE_SECRET_FILE: undefined });
      expect(r.code).not.toBe(0);
      expect(r.err).toContain("openssl rand -hex 32");
    });
  }
});

describe("Dockerfile and .dockerignore", () => {
  test("exec-form CMD without the bun run banner, a HEALTHCHECK, and a build context without node_modules or secrets", () => {
    const dockerfile = readFileSync(join(INFRA, "Dockerfile"), "utf8");
    expect(dockerfile).toMatch(/^CMD \["bun", "mvp_core\/app\/main\.ts"\]$/m);
    expect(dockerfile).toMatch(/^HEALTHCHECK .*\/health/ms);
    const ignore = readFileSync(join(INFRA, "../../.dockerignore"), "utf8").split("\n").map((l) => l.trim());
    for (const entry of ["node_modules", ".git", ".run", ".env*"]) expect(ignore).toContain(entry);
  });
});

/** Runs `script` with lib.sh sourced, `bin` first on PATH (stand-in docker commands), and returns what it printed. */
function withLib(script: string, env: Record<string, string | undefined> = {}, bin?: string) {
  const path = bin ? `${bin}:${process.env.PATH}` : process.env.PATH;
  return run(["bash", "-c", `source ${JSON.stringify(join(INFRA, "lib.sh"))}; ${script}`], { PATH: path, ...env });
}

describe("lib.sh: which stack, which Compose", () => {
  // Stand-ins for the docker CLIs: no Docker engine runs in CI, and what is tested here is only
  // which command dev_up picks. `info` and `compose version` answer as each scenario says.
  async function fakeDocker(opts: { engine: boolean; v2: boolean; v1: boolean }): Promise<string> {
    const bin = await mkdtemp(join(tmpdir(), "ketter-fake-docker-"));
    const docker = `#!/bin/sh\ncase "$1" in info) exit ${opts.engine ? 0 : 1};; compose) exit ${opts.v2 ? 0 : 1};; esac\nexit 1\n`;
    writeFileSync(join(bin, "docker"), docker, { mode: 0o755 });
    writeFileSync(join(bin, "docker-compose"), `#!/bin/sh\nexit ${opts.v1 ? 0 : 1}\n`, { mode: 0o755 });
    return bin;
  }

  const cases: [string, { engine: boolean; v2: boolean; v1: boolean }, string | undefined, string, string][] = [
    ["v2 and v1: v2", { engine: true, v2: true, v1: true }, undefined, "compose", "docker compose"],
    ["v1 only (Debian 12): v1", { engine: true, v2: false, v1: true }, undefined, "compose", "docker-compose"],
    ["an engine but no Compose: native", { engine: true, v2: false, v1: false }, undefined, "native", ""],
    ["Compose but no engine: native", { engine: false, v2: true, v1: true }, undefined, "native", "docker compose"],
    ["KETTER_STACK=native with everything: native", { engine: true, v2: true, v1: true }, "native", "native", "docker compose"],
  ];
  for (const [name, opts, stack, want, compose] of cases) {
    test(name, async () => {
      const bin = await fakeDocker(opts);
      try {
        const r = withLib(`choose_stack; compose_cmd || true`, { KETTER_STACK: stack }, bin);
        expect(r.code).toBe(0);
        expect(r.out.trim().split("\n")).toEqual(compose ? [want, compose] : [want]);
      } finally {
        await rm(bin, { recursive: true, force: true });
      }
    });
  }

  test("KETTER_STACK=compose without an engine fails saying why; a bad value is refused", async () => {
    const bin = await fakeDocker({ engine: false, v2: false, v1: true });
    try {
      const r = withLib("choose_stack", { KETTER_STACK: "compose" }, bin);
      expect(r.code).toBe(1);
      expect(r.err).toContain("no Docker engine answers");
      const bad = withLib("choose_stack", { KETTER_STACK: "k8s" }, bin);
      expect(bad.code).toBe(1);
      expect(bad.err).toContain("KETTER_STACK must be native or compose");
    } finally {
      await rm(bin, { recursive: true, force: true });
    }
  });
});

describe("shell scripts: --help, --version, colour", () => {
  for (const script of ["dev_up.sh", "dev_down.sh", "test.sh"]) {
    test(`${script} --help and --version answer without doing anything`, () => {
      const help = run(["bash", join(INFRA, script), "--help"]);
      expect(help.code).toBe(0);
      expect(help.out).toContain(`usage: bash mvp_core/infra/${script}`);
      const version = run(["bash", join(INFRA, script), "--version"]);
      expect(version.code).toBe(0);
      expect(version.out.trim()).toBe(`${script} ${pkg.version}`);
    });
  }

  test("a bad argument exits 2 with the usage", () => {
    const r = run(["bash", join(INFRA, "dev_up.sh"), "--bogus"]);
    expect(r.code).toBe(2);
    expect(r.err).toContain("unknown argument --bogus");
  });

  test("no colour codes when stderr is not a terminal; at a terminal only without NO_COLOR", () => {
    const piped = withLib("log hello; die oops");
    expect(piped.code).toBe(1);
    expect(piped.err).toBe("[ketter] hello\n[ketter] error: oops\n");
    // `script` gives the command a terminal; its output is what that terminal received.
    const atTerminal = (noColor: string | undefined) =>
      run(["script", "-qec", `bash -c 'source ${join(INFRA, "lib.sh")}; log hello'`, "/dev/null"], { NO_COLOR: noColor, TERM: "xterm" }).out;
    expect(atTerminal(undefined)).toContain("\x1b[1m[ketter]");
    expect(atTerminal("1")).not.toContain("\x1b[");
  });

  test("SIGTERM ends a script with 143 and SIGINT with 130", async () => {
    for (const [signal, code] of [["SIGTERM", 143], ["SIGINT", 130]] as const) {
      // script_start installs the traps; the sleep stands for any long step (a wait for the API).
      const p = Bun.spawn(["bash", "-c", `source ${JSON.stringify(join(INFRA, "lib.sh"))}; script_start t "usage"; echo ready; while :; do sleep 0.05; done`], { stdout: "pipe", stderr: "pipe" });
      const reader = p.stdout.getReader();
      expect(new TextDecoder().decode((await reader.read()).value)).toBe("ready\n");
      p.kill(signal);
      expect(await p.exited).toBe(code);
    }
  });
});

describe("dev_up.sh / dev_down.sh (native path)", () => {
  test("bring the stack up, are harmless twice, and leave nothing running after dev_down", async () => {
    const runDir = await mkdtemp(join(tmpdir(), "ketter-devup-"));
    const [pgPort, redisPort, apiPort] = [await freePort(), await freePort(), await freePort()];
    const env = {
      KETTER_RUN_DIR: runDir,
      DATABASE_URL: `postgres://ketter:devpass@127.0.0.1:${pgPort}/ketter`,
      REDIS_URL: `redis://127.0.0.1:${redisPort}/0`,
      API_PORT: String(apiPort),
      KETTER_SKIP_DKU: "1",
      KETTER_STACK: "native",
    };
    let pgData: string | undefined;
    try {
      const up = run(["bash", join(INFRA, "dev_up.sh")], env);
      expect(up.err).toContain("Swagger UI");
      expect(up.code).toBe(0);
      pgData = readFileSync(join(runDir, "postgres.started"), "utf8").trim();
      const pids = ["api", "worker", "redis"].filter((n) => existsSync(join(runDir, `${n}.pid`)))
        .map((n) => Number(readFileSync(join(runDir, `${n}.pid`), "utf8")));
      expect(pids.length).toBe(3);
      for (const pid of pids) expect(() => process.kill(pid, 0)).not.toThrow();
      const health = await fetch(`http://127.0.0.1:${apiPort}/health`);
      expect(health.status).toBe(200);

      const again = run(["bash", join(INFRA, "dev_up.sh")], env);
      expect(again.code).toBe(0);
      expect(again.err).toContain("already running");

      const down = run(["bash", join(INFRA, "dev_down.sh")], env);
      expect(down.code).toBe(0);
      for (const pid of pids) expect(() => process.kill(pid, 0)).toThrow();
      const stillOpen = await Promise.all([pgPort, redisPort, apiPort].map((port) =>
        Bun.connect({ hostname: "127.0.0.1", port, socket: { data() {} } }).then((s) => (s.end(), true), () => false)));
      expect(stillOpen).toEqual([false, false, false]);
    } finally {
      run(["bash", join(INFRA, "dev_down.sh")], env);
      await rm(runDir, { recursive: true, force: true });
      if (pgData?.startsWith("/var/lib/postgresql/ketter-") || pgData?.startsWith(runDir)) await rm(pgData, { recursive: true, force: true });
    }
  }, 180_000);
});
