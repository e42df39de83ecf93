/** Command-line flags of `bun run field`. */
import { parseArgs } from "node:util";
import { DATASET_NAMES, type DatasetName } from "./datasets.ts";

/** What the operator asked for. */
export interface FieldOptions {
  quick: boolean;
  /** Round-trip times to measure at, in ms (0 = straight to sshd). */
  rttsMs: number[];
  datasets: DatasetName[];
  faults: boolean;
  /** Run the second site's checks (routing, a site without a worker, its DKU). */
  sites: boolean;
  /** SRVTRF's loopback address (loopback link only). */
  address: string;
  /** SRVTRF on a loopback address with stream relays even as root, instead of the WAN testbed. */
  loopback: boolean;
  /** A reference tool slower than this is stopped and reported without a time. */
  maxToolSeconds: number;
  /** Parent of LAB's temporary folder (the worker must see it at the same path). */
  labParent: string | undefined;
  /** Where field-test.md and bench/ go. */
  docsDir: string;
  help: boolean;
  version: boolean;
}

/** Printed with --help and after a usage error. */
export const USAGE = `usage: bun run field [--quick] [--latency 0,2,20] [--datasets small,many,large] [--no-faults] [--no-sites] [--help | --version]
                     [--loopback] [--address 127.0.0.42] [--max-tool-seconds S] [--lab-dir DIR] [--docs-dir docs]
  Runs the field test LAB → SRVTRF against the running stack (bash mvp_core/infra/dev_up.sh first)
  and writes docs/field-test.md and docs/bench/field-*.json.
  --quick             smaller datasets (20 small files, 1,000 tiny files, 2 × 128 MiB): a couple of minutes
  --latency LIST      round-trip times in ms, 0 = no added delay (default 0,2,20)
  --datasets LIST     which datasets (default small,many,large; the faults need large)
  --no-faults         skip the worker-kill and sshd-restart scenarios (and the kill of site-2's worker)
  --no-sites          skip the second site: a worker with KETTER_SITE=site-2 (as root in its own network
                      namespace, reaching Postgres, Redis and the API through relays; otherwise a plain
                      second process), its local folder, where each job runs, the 422 CROSS_SITE refusal,
                      site-2's worker killed mid-job (with the faults), and the DKU for site-2
  --loopback          SRVTRF on a loopback address with stream relays for latency, even as root
                      (as root the default is the WAN testbed: SRVTRF in its own network namespace
                      behind a veth, latency by a packet-level delay line; not root: always loopback)
  --address A         SRVTRF's loopback address on the loopback link (default 127.0.0.42)
  --max-tool-seconds  stop rsync/scp after this long, and skip them at higher latencies (default 120, --quick 60)
  --lab-dir DIR       create LAB's folder under DIR (default: the OS temp folder)
  --docs-dir DIR      write the report under DIR (default docs)
exit status: 0 every job DONE and verified, 1 something failed (report still written), 2 bad flags or no stack,
             130/143 interrupted by SIGINT/SIGTERM (the running job is cancelled and the report written first)`;

/** Raised for flags the command does not understand; main prints it with the usage and exits 2. */
export class UsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "UsageError";
  }
}

/** Parses `argv` (without the runtime and script). */
export function parseOptions(argv: string[]): FieldOptions {
  let values;
  try {
    ({ values } = parseArgs({
      args: argv,
      strict: true,
      options: {
        quick: { type: "boolean" }, latency: { type: "string" }, datasets: { type: "string" }, "no-faults": { type: "boolean" }, "no-sites": { type: "boolean" },
        address: { type: "string" }, loopback: { type: "boolean" }, "max-tool-seconds": { type: "string" }, "lab-dir": { type: "string" }, "docs-dir": { type: "string" },
        help: { type: "boolean", short: "h" }, version: { type: "boolean", short: "V" },
      },
    }));
  } catch (err) {
    throw new UsageError(err instanceof Error ? err.message : String(err));
  }
  const quick = values.quick === true;
  const rttsMs = (values.latency ?? "0,2,20").split(",").map((s) => Number(s.trim()));
  if (rttsMs.some((n) => !Number.isInteger(n) || n < 0 || n > 1000)) throw new UsageError("--latency must be whole milliseconds between 0 and 1000, e.g. 0,2,20");
  if (!rttsMs.includes(0)) throw new UsageError("--latency must include 0: the moves and the baseline run straight to sshd");
  const datasets = (values.datasets ?? DATASET_NAMES.join(",")).split(",").map((s) => s.trim());
  const bad = datasets.filter((d) => !(DATASET_NAMES as readonly string[]).includes(d));
  if (bad.length || datasets.length === 0) throw new UsageError(`unknown dataset ${bad.join(",") || "(none)"}; use ${DATASET_NAMES.join(",")}`);
  const faults = values["no-faults"] !== true;
  if (faults && !datasets.includes("large")) throw new UsageError("the faults run on the large dataset: add it to --datasets or pass --no-faults");
  const address = values.address ?? "127.0.0.42";
  if (!/^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(address)) throw new UsageError("--address must be a loopback address (127.x.y.z): everything listens on 127.0.0.0/8 only");
  const maxToolSeconds = Number(values["max-tool-seconds"] ?? (quick ? 60 : 120));
  if (!(maxToolSeconds > 0)) throw new UsageError("--max-tool-seconds must be a positive number");
  return {
    quick, rttsMs: [...new Set(rttsMs)].sort((a, b) => a - b), datasets: DATASET_NAMES.filter((d) => datasets.includes(d)), faults, sites: values["no-sites"] !== true, address, loopback: values.loopback === true, maxToolSeconds,
    labParent: values["lab-dir"], docsDir: values["docs-dir"] ?? "docs", help: values.help === true, version: values.version === true,
  };
}
