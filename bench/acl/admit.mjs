// Admitting and removing a pod through the daemon's ACL loop (the incremental
// path: set members only), member writes over netlink against one
// `ipset restore -exist` process per change, and, with REF set, against an
// older Tern build's loop (REF=<checkout with dist/ built>; e.g. one that
// lists every ACL record on every sync). All run side by side in one run:
// one node namespace each, each with its own SQLite datastore seeded with
// the same policies and pods, pods admitted alternately.
// Usage (root, after npm run build):
//   SIZES=100x1000,1000x5000 PODS_PER_NODE=100 ROUNDS=20 [REF=/path/to/old/checkout] node bench/acl/admit.mjs
// Timed: one `AclReconciler.sync()` after the endpoint record is written
// (catching up with the datastore, plan, lock, member writes), as a CNI
// ADD/DEL through the daemon waits for it. Pods admitted: another node's
// (sets only) and one of this node's that no policy selects.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { performance } from 'node:perf_hooks';
import * as acl from '../../dist/src/acl/index.js';
import { AclReconciler } from '../../dist/src/node-daemon/acl-sync.js';
import { SqliteStore } from '../../dist/src/datastore/sqlite-store.js';
import { silentLogger } from '../../dist/src/lib/log.js';
import { netnsExec, mustExec } from '../../dist/src/dataplane/exec.js';
import { Namespaces, pct } from '../lib.mjs';
import { endpoint, namespacesYaml, policiesYaml } from './gen.mjs';

const sizes = (process.env.SIZES ?? '100x1000,1000x5000').split(',').map((s) => s.split('x').map(Number));
const perNode = Number(process.env.PODS_PER_NODE ?? 100);
const ROUNDS = Number(process.env.ROUNDS ?? 20);
const ns = new Namespaces('adm');
const REF = process.env.REF;
const ref = REF && {
  AclReconciler: (await import(path.join(path.resolve(REF), 'dist/src/node-daemon/acl-sync.js'))).AclReconciler,
  SqliteStore: (await import(path.join(path.resolve(REF), 'dist/src/datastore/sqlite-store.js'))).SqliteStore,
};
const WRITERS = ['netlink', 'ipset process', ...(ref ? ['netlink, REF'] : [])];
const work = fs.mkdtempSync(path.join(os.tmpdir(), 'tern-admit-'));
process.on('exit', () => fs.rmSync(work, { recursive: true, force: true }));

/** The previous writer: the same lines through one `ipset restore -exist` process in the namespace. */
const viaProcess = (netnsPath) => {
  const exec = netnsExec(netnsPath);
  return (ops) => mustExec(exec, 'ipset', ['restore', '-exist'], ops.map((o) => `${o.op} ${o.set} ${o.member}`).join('\n') + '\n').then(() => undefined);
};

const rows = [];
for (const [P, E] of sizes) {
  const nodes = Math.ceil(E / perNode);
  const seed = [...acl.parsePolicyText(namespacesYaml() + policiesYaml(P), 'bench.yaml'), ...Array.from({ length: E }, (_, i) => endpoint(i, nodes))];
  const impls = {};
  for (const name of WRITERS) {
    const node = ns.add(`${{ netlink: 'nl', 'ipset process': 'px' }[name] ?? 'rf'}${P}x${E}`);
    const netnsPath = `/run/netns/${node}`;
    const Impl = name === 'netlink, REF' ? ref : { AclReconciler, SqliteStore };
    const store = new Impl.SqliteStore({ path: path.join(work, `${node}.db`), pollMs: 1000 });
    await acl.writeResources(store, 'apply', seed);
    const r = new Impl.AclReconciler({ store, log: silentLogger(), policyDir: '', node: 'n0', netnsPath, memberWriter: name === 'netlink' ? undefined : viaProcess(netnsPath) });
    const t0 = performance.now();
    await r.start();
    if (r.state.lastError) throw new Error(`${name}: ${r.state.lastError}`);
    impls[name] = { store, r, firstMs: performance.now() - t0, admit: [], remove: [] };
  }
  for (let k = -2; k < ROUNDS; k++) { // two warm-up rounds, not counted
    // Alternately another node's pod and one of this node's that no policy selects.
    const pod = endpoint(E + 2 + k, nodes);
    if (k % 2) Object.assign(pod.value, { node: 'n0', namespace: 'loose', labels: { app: 'none' } });
    else pod.value.node = 'n1';
    pod.key = `${pod.value.namespace}/${pod.value.name}`;
    for (const [name, im] of Object.entries(impls)) {
      for (const [verb, into] of [['apply', im.admit], ['delete', im.remove]]) {
        await acl.writeResources(im.store, verb, [pod]);
        const t0 = performance.now();
        await im.r.sync();
        if (k >= 0) into.push(performance.now() - t0);
        if (im.r.state.lastError) throw new Error(`${name}: ${im.r.state.lastError}`);
      }
    }
  }
  for (const [name, im] of Object.entries(impls)) {
    rows.push({ size: `${P}x${E}`, writer: name, incremental: im.r.state.incrementalSyncs, admitP50: pct(im.admit, 50), admitP90: pct(im.admit, 90), removeP50: pct(im.remove, 50), removeP90: pct(im.remove, 90), firstApplyMs: im.firstMs });
    await im.r.stop();
    await im.store.close();
  }
}
const f = (x) => (typeof x === 'number' ? `${x.toFixed(1)} ms` : String(x));
console.log(`\nACL admit/remove through the daemon loop, ${ROUNDS} pods per size, nodes of ${perNode} pods, ${os.cpus().length} cores, load ${os.loadavg().map((l) => l.toFixed(2)).join(' ')}${REF ? `, REF ${REF}` : ''}\n`);
console.log('| policies × pods | member writer | incremental syncs | admit p50 | admit p90 | remove p50 | remove p90 | first (full) apply |');
console.log('|---|---|---|---|---|---|---|---|');
for (const r of rows) console.log(`| ${r.size} | ${r.writer} | ${r.incremental} | ${f(r.admitP50)} | ${f(r.admitP90)} | ${f(r.removeP50)} | ${f(r.removeP90)} | ${f(r.firstApplyMs)} |`);
for (const size of new Set(rows.map((r) => r.size))) {
  for (const other of WRITERS.slice(1)) {
    const [a, b] = ['netlink', other].map((w) => rows.find((r) => r.size === size && r.writer === w));
    console.log(`| ${size} | ratio netlink / ${other} | | ${(a.admitP50 / b.admitP50).toFixed(2)}× | ${(a.admitP90 / b.admitP90).toFixed(2)}× | ${(a.removeP50 / b.removeP50).toFixed(2)}× | ${(a.removeP90 / b.removeP90).toFixed(2)}× | |`);
  }
}
