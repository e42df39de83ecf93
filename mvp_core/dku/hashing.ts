/**
 * The hash tools check (issue 16): which xxHash implementation this process streams with — the
 * system's libxxhash (SIMD; XXH3 verification then costs about what CRC-32 does), the native
 * module, or WebAssembly — and why the faster ones are unavailable. SSH portals' `xxhsum` is
 * judged with the portal (portals.ts).
 */
import { xxhashBackend, type XxhBackend } from "../hashing/index.ts";
import type { CheckOutcome } from "./check.ts";

/** What xxhashBackend() reports. */
export type Backends = Awaited<ReturnType<typeof xxhashBackend>>;

/** ok: every algorithm from the system library; warn: a slower fallback (still correct), with the package to install. */
export function judgeHashing(b: Backends): CheckOutcome {
  const per = (["xxh3", "xxh64", "xxh128"] as const).map((a) => `${a} ${b[a]}`).join(", ");
  const details = { ...b };
  if (b.xxh3 === "system" && b.xxh64 === "system" && b.xxh128 === "system") return { status: "ok", value: `xxHash from libxxhash (${per})`, details };
  const slow = (["xxh3", "xxh64", "xxh128"] as const).filter((a) => b[a] !== "system");
  const why = Object.entries(b.unavailable).map(([k, v]) => `${k}: ${v}`).join("; ");
  return {
    status: "warn",
    value: `xxHash fallbacks in use (${per})${why ? ` — ${why}` : ""}`,
    hint: `install the system library so ${slow.join(", ")} stream at full speed (${fallbackCost(slow.map((a) => b[a]))}): apt-get install libxxhash0`,
    details,
  };
}

function fallbackCost(backends: readonly XxhBackend[]): string {
  return backends.includes("wasm") ? "WebAssembly costs ~2.4× CRC-32's CPU; xxh128 cannot be streamed by the engine without it" : "the native module costs ~1.2× CRC-32's CPU";
}

/** Runs the check in this process. */
export async function checkHashing(): Promise<CheckOutcome> {
  return judgeHashing(await xxhashBackend());
}
