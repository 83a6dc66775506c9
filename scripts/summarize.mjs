// Sum vitest JSON reports (and .txt files whose last line is "N passed, N failed",
// such as the VLAN VM run's) into the plain closing line "N passed, N failed, N skipped".
// A report that is missing or unreadable counts as one failure.
import * as fs from 'node:fs';
let passed = 0, failed = 0, skipped = 0;
for (const f of process.argv.slice(2)) {
  try {
    if (f.endsWith('.txt')) {
      const m = /(\d+) passed, (\d+) failed/.exec(fs.readFileSync(f, 'utf8').trim().split('\n').pop() ?? '');
      if (!m) throw new Error('no counts');
      passed += Number(m[1]);
      failed += Number(m[2]);
      continue;
    }
    const r = JSON.parse(fs.readFileSync(f, 'utf8'));
    passed += r.numPassedTests ?? 0;
    failed += (r.numFailedTests ?? 0) + (r.numRuntimeErrorTestSuites ?? 0);
    skipped += (r.numPendingTests ?? 0) + (r.numTodoTests ?? 0);
    for (const s of r.testResults ?? []) {
      if (s.status === 'failed' && (s.assertionResults ?? []).length === 0) {
        failed += 1;
        console.log(`suite failed to load: ${s.name}: ${(s.message ?? '').split('\n')[0]}`);
      }
    }
  } catch (e) {
    failed += 1;
    console.log(`no report: ${f}`);
  }
}
console.log(`${passed} passed, ${failed} failed, ${skipped} skipped`);
