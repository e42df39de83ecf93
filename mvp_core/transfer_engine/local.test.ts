import { mkdtemp, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { describeEndpointConformance } from "./endpoint_conformance.ts";
import { LocalEndpoint } from "./local.ts";

describeEndpointConformance("LocalEndpoint", async () => {
  const root = await mkdtemp(path.join(os.tmpdir(), "ketter-local-"));
  return { endpoint: new LocalEndpoint(root), cleanup: () => rm(root, { recursive: true, force: true }) };
});
