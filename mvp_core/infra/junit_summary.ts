// Reads bun's JUnit report and prints the closing line CI looks for: "N passed, N failed[, N skipped]".
// Exits 1 when any test failed or none ran, so .ci/run can trust the line and the code alike.
export {};
const file = process.argv[2];
if (!file) {
  console.error("usage: bun mvp_core/infra/junit_summary.ts REPORT.xml");
  process.exit(2);
}
const xml = await Bun.file(file).text().catch(() => "");
let passed = 0;
let failed = 0;
let skipped = 0;
for (const m of xml.matchAll(/<testcase\b[^>]*?(\/>|>([\s\S]*?)<\/testcase>)/g)) {
  const body = m[2] ?? "";
  if (/<(failure|error)\b/.test(body)) failed++;
  else if (/<skipped\b/.test(body)) skipped++;
  else passed++;
}
if (xml === "") {
  console.error(`no JUnit report at ${file}: the test run did not finish`);
  failed++;
}
console.log(`${passed} passed, ${failed} failed${skipped ? `, ${skipped} skipped` : ""}`);
process.exit(failed > 0 || passed === 0 ? 1 : 0);
