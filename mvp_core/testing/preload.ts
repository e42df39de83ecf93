// bun test preload: servers start lazily (testing/services.ts) and are all stopped after the run.
import { afterAll } from "bun:test";
import { stopTestServices } from "./services.ts";

afterAll(stopTestServices);
