/** `bun run worker`: the worker process (process.ts) with the real engine. */
import { runWorkerProcess } from "./process.ts";

runWorkerProcess();
