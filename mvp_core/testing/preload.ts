// bun test preload: servers start lazily (testing/services.ts) and are all stopped after the run,
// and so is any sshd or WAN testbed a test left running (a set-up that failed halfway never reaches its stop()).
import { afterAll } from "bun:test";
import { stopTestServices } from "./services.ts";
import { stopAllSshd } from "./sshd.ts";
import { stopAllTestbeds } from "./testbed/testbed.ts";

afterAll(async () => {
  const testbeds = await stopAllTestbeds();
  if (testbeds > 0) console.error(`test harness: stopped ${testbeds} WAN testbeds left running by tests`);
  const left = await stopAllSshd();
  if (left > 0) console.error(`test harness: stopped ${left} sshd left running by tests`);
  await stopTestServices();
});
