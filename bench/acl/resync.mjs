// The node daemon's full ACL syncs at scale, side by side with an older build:
// the first apply (daemon start on a seeded datastore), the periodic resync
// with nothing changed, and a policy edit (one policy's port changed, then one
// sync). Each build gets its own node namespace and SQLite datastore seeded
// with the same policies and pods; rounds alternate between the builds.
// Usage (root, after npm run build):
//   SIZES=100x1000,1000x5000 PODS_PER_NODE=100 ROUNDS=10 [REF=/path/to/old/checkout] node bench/acl/resync.mjs
// Timed: `AclReconciler.start()`, `resync()` and `sync()` (datastore list,
// compile, lock, kernel read and diff, writes), as the daemon runs them.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { performance } from 'node:perf_hooks';
import * as acl from '../../dist/src/acl/index.js';
import { AclReconciler } from '../../dist/src/node-daemon/acl-sync.js';
import { SqliteStore } from '../../dist/src/datastore/sqlite-store.js';
import { silentLogger } from '../../dist/src/lib/log.js';
import { Namespaces, pct } from '../lib.mjs';
import { endpoint, namespacesYaml, policiesYaml } from './gen.mjs';

const sizes = (process.env.SIZES ?? '100x1000,1000x5000').split(',').map((s) => s.split('x').map(Number));
const perNode = Number(process.env.PODS_PER_NODE ?? 100);
const ROUNDS = Number(process.env.ROUNDS ?? 10);
const REF = process.env.REF;
const builds = { this: { AclReconciler, SqliteStore } };
if (REF) {
  builds.ref = {
    AclReconciler: (await import(path.join(path.resolve(REF), 'dist/src/node-daemon/acl-sync.js'))).AclReconciler,
    SqliteStore: (await import(path.join(path.resolve(REF), 'dist/src/datastore/sqlite-store.js'))).SqliteStore,
  };
}
const ns = new Namespaces('rsy');
const work = fs.mkdtempSync(path.join(os.tmpdir(), 'tern-resync-'));
process.on('exit', () => fs.rmSync(work, { recursive: true, force: true }));

/** Policy k0 (Kubernetes, namespace ns0) with its first port moved: a real edit that changes its rules. */
const edited = (round) =>
  acl.parsePolicyText(`apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: k0, namespace: ns0}\nspec:\n  podSelector: {matchLabels: {app: app0}}\n  ingress:\n    - from: [{podSelector: {matchLabels: {app: app1}}}, {namespaceSelector: {matchLabels: {team: t0}}}]\n      ports: [{port: ${8000 + (round % 2 ? 1 : 0)}}, {port: http}]\n`, 'edit.yaml');

const rows = [];
for (const [P, E] of sizes) {
  const nodes = Math.ceil(E / perNode);
  const seed = [...acl.parsePolicyText(namespacesYaml() + policiesYaml(P), 'bench.yaml'), ...Array.from({ length: E }, (_, i) => endpoint(i, nodes))];
  const runs = {};
  for (const [name, b] of Object.entries(builds)) {
    const node = ns.add(`${name}${P}x${E}`);
    const store = new b.SqliteStore({ path: path.join(work, `${node}.db`), pollMs: 1000 });
    await acl.writeResources(store, 'apply', seed);
    const r = new b.AclReconciler({ store, log: silentLogger(), policyDir: '', node: 'n0', netnsPath: `/run/netns/${node}` });
    const t0 = performance.now();
    await r.start();
    if (r.state.lastError) throw new Error(`${name}: ${r.state.lastError}`);
    runs[name] = { store, r, first: performance.now() - t0, noop: [], edit: [] };
  }
  // No-op resyncs in a row, as the periodic one runs on a quiet cluster (the first after a write reads the rules back: a warm-up).
  for (let k = -1; k < ROUNDS; k++) {
    for (const [name, run] of Object.entries(runs)) {
      const t0 = performance.now();
      await run.r.resync();
      if (k >= 0) run.noop.push(performance.now() - t0);
      if (run.r.state.lastError) throw new Error(`${name}: ${run.r.state.lastError}`);
    }
  }
  for (let k = -1; k < ROUNDS; k++) {
    for (const [name, run] of Object.entries(runs)) {
      await acl.writeResources(run.store, 'apply', edited(k));
      const t0 = performance.now();
      await run.r.sync();
      if (k >= 0) run.edit.push(performance.now() - t0);
      if (run.r.state.lastError) throw new Error(`${name}: ${run.r.state.lastError}`);
    }
  }
  for (const [name, run] of Object.entries(runs)) {
    rows.push({ size: `${P}x${E}`, build: name, first: run.first, noopP50: pct(run.noop, 50), noopP90: pct(run.noop, 90), editP50: pct(run.edit, 50), editP90: pct(run.edit, 90) });
    await run.r.stop();
    await run.store.close();
  }
}
const f = (x) => `${x.toFixed(1)} ms`;
console.log(`\nACL full syncs through the daemon loop, ${ROUNDS} rounds, nodes of ${perNode} pods, ${os.cpus().length} cores, load ${os.loadavg().map((l) => l.toFixed(2)).join(' ')}${REF ? `, REF ${REF}` : ''}\n`);
console.log('| policies × pods | build | first apply | no-op resync p50 | p90 | policy edit p50 | p90 |');
console.log('|---|---|---|---|---|---|---|');
for (const r of rows) console.log(`| ${r.size} | ${r.build} | ${f(r.first)} | ${f(r.noopP50)} | ${f(r.noopP90)} | ${f(r.editP50)} | ${f(r.editP90)} |`);
if (REF) {
  for (const size of new Set(rows.map((r) => r.size))) {
    const [a, b] = ['this', 'ref'].map((n) => rows.find((r) => r.size === size && r.build === n));
    console.log(`| ${size} | ratio this / ref | ${(a.first / b.first).toFixed(2)}× | ${(a.noopP50 / b.noopP50).toFixed(2)}× | ${(a.noopP90 / b.noopP90).toFixed(2)}× | ${(a.editP50 / b.editP50).toFixed(2)}× | ${(a.editP90 / b.editP90).toFixed(2)}× |`);
  }
}
