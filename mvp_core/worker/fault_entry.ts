/**
 * Test-only entry point: the real worker process (process.ts) with its engine wrapped by the fault
 * plan in KETTER_TEST_FAULT (fault_injection.ts). The worker's fault tests spawn it as they spawn
 * main.ts; production never runs it. Reading the environment here, outside config/, is deliberate:
 * the plan is test wiring, not configuration.
 */
import { faultyTransfer, parsePlan } from "./fault_injection.ts";
import { runWorkerProcess } from "./process.ts";

const plan = parsePlan(process.env.KETTER_TEST_FAULT);
// Every progress step reaches the wrapper, so a freeze lands after exactly N removals.
runWorkerProcess({ transfer: faultyTransfer(plan), ...(plan.freezeAfterRemoved !== undefined ? { engineOptions: { progressIntervalMs: 0 } } : {}) });
