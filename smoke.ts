import { openEndpoint, transfer } from "./mvp_core/transfer_engine/index.ts";
import { verifyFolder, localMhlFs } from "./mvp_core/mhl/index.ts";
const ep = await openEndpoint({ kind: "local", root: "/tmp/sm" });
const events: any[] = [];
const r = await transfer({ sourcePath: process.argv[4] ?? "src", targetPath: process.argv[2] ?? "dst", mode: "copy", mhl: true, ...(process.argv[3] ? JSON.parse(process.argv[3]) : {}) }, { source: ep, target: ep, onEvent: (e) => events.push(e) });
console.log(JSON.stringify(r.mhl), r.verified);
for (const e of events) console.log(e.kind, e.message);
const v = await verifyFolder(localMhlFs(), `/tmp/sm/${process.argv[2] ?? "dst"}`);
console.log(v.ok, v.verified.length, v.mismatched, v.new, v.missing, v.historyProblems);
