// bun test preload: servers start lazily (testing/services.ts) and are all stopped after the run,
// and so is any sshd a test left running (a set-up that failed halfway never reaches its stop()).
import { afterAll } from "bun:test";
import { stopTestServices } from "./services.ts";
import { stopAllSshd } from "./sshd.ts";

afterAll(async () => {
  const left = await stopAllSshd();
  if (left > 0) console.error(`test harness: stopped ${left} sshd left running by tests`);
  await stopTestServices();
});
