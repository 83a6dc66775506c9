// ACL benchmark: compile + apply time, rule and ipset counts, admitting a pod
// (full compile + apply, and the daemon's incremental path), rules traversed
// per packet. Applies inside throwaway network namespaces only.
// Run: npm run build && node bench/acl/compile-apply.mjs
// Side by side with a reference build (another checkout, built): REF=/path/to/checkout
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { performance } from 'node:perf_hooks';
import * as current from '../../dist/src/acl/index.js';
import { endpoint, namespacesYaml, policiesYaml } from './gen.mjs';

const impls = [['this', current]];
if (process.env.REF) impls.unshift(['ref', await import(path.resolve(process.env.REF, 'dist/src/acl/index.js'))]);

const ms = (t0) => Math.round(performance.now() - t0);
const sizes = (process.env.SIZES ?? '100x1000,100x5000,1000x1000,1000x5000').split(',').map((s) => s.split('x').map(Number));
const prefix = `${process.env.TERN_TEST_PREFIX ?? 'ha'}-bench`;
const rows = [];
const median = (a) => [...a].sort((x, y) => x - y)[Math.floor(a.length / 2)];

/**
 * Admit one pod the way the node daemon does: the endpoint record is written
 * to a datastore, then one ACL sync (datastore read, incremental plan, one
 * ipset restore) is timed. Median of `n` pods; null for a build without the
 * incremental path (the reference).
 */
async function admitIncremental(root, ns, resources, firstNew, n = 5) {
  const mod = (p) => import(path.resolve(root, 'dist/src', p));
  const { AclReconciler } = await mod('node-daemon/acl-sync.js');
  const acl = await mod('acl/index.js');
  if (!acl.IncrementalAcl) return null;
  const { SqliteStore } = await mod('datastore/sqlite-store.js');
  const { silentLogger } = await mod('lib/log.js');
  const db = `/tmp/${ns}.db`;
  const store = new SqliteStore({ path: db });
  const daemon = new AclReconciler({ store, log: silentLogger(), policyDir: '', netnsPath: `/run/netns/${ns}` });
  try {
    await acl.writeResources(store, 'apply', resources);
    await daemon.resync(); // the full sync the incremental path starts from (no watch: only the timed syncs run)
    const before = daemon.state.incrementalSyncs ?? 0;
    const times = [];
    for (let i = 0; i < n; i++) {
      await acl.writeResources(store, 'apply', [endpoint(firstNew + i)]);
      const t0 = performance.now();
      await daemon.sync();
      times.push(performance.now() - t0);
    }
    if (daemon.state.lastError || daemon.state.incrementalSyncs !== before + n) throw new Error(`incremental path not taken: ${daemon.state.lastError ?? ''}`);
    return Math.round(median(times) * 10) / 10;
  } finally {
    await daemon.stop();
    await store.close();
    for (const f of [db, `${db}-wal`, `${db}-shm`]) fs.rmSync(f, { force: true });
  }
}
for (const [P, E] of sizes) for (const [impl, acl] of impls) {
  const ns = `${prefix}-${impl}-${P}-${E}`;
  execFileSync('ip', ['netns', 'add', ns]);
  try {
    let t0 = performance.now();
    const policies = acl.parsePolicyText(namespacesYaml() + policiesYaml(P), 'bench.yaml');
    const parseMs = ms(t0);
    const eps = Array.from({ length: E }, (_, i) => endpoint(i));
    t0 = performance.now();
    const rs = acl.compileRuleset(acl.toInput([...policies, ...eps]));
    const compileMs = ms(t0);
    const rules = rs.v4.chains.reduce((n, c) => n + c.rules.length, 0) + rs.v6.chains.reduce((n, c) => n + c.rules.length, 0);
    const sets = rs.v4.sets.length + rs.v6.sets.length;
    const members = [...rs.v4.sets, ...rs.v6.sets].reduce((n, s) => n + s.members.length, 0);
    const applier = new acl.Applier({ netnsPath: `/run/netns/${ns}`, lockFile: `/tmp/${ns}.lock` });
    t0 = performance.now();
    await applier.apply(rs);
    const applyMs = ms(t0);
    t0 = performance.now();
    const noop = await applier.apply(acl.compileRuleset(acl.toInput([...policies, ...eps])));
    const noopMs = ms(t0);
    // Admit one more pod: compile + apply; only set members should change.
    t0 = performance.now();
    const admit = await applier.apply(acl.compileRuleset(acl.toInput([...policies, ...eps, endpoint(E)])));
    const admitMs = ms(t0);
    const admitIncrMs = await admitIncremental(impl === 'ref' ? process.env.REF : new URL('../..', import.meta.url).pathname, ns, [...policies, ...eps, endpoint(E)], E + 1);
    const sim = acl.simulate(rs.v4, 'FORWARD', { src: eps[1].value.ips[0], dst: eps[2].value.ips[0], inIface: eps[1].value.hostIface, outIface: eps[2].value.hostIface, protocol: 6, dstPort: 80 });
    rows.push({ impl, policies: P, endpoints: E, parseMs, compileMs, applyMs, noopReapplyMs: noopMs, noopChainsWritten: noop.chainsWritten, rules, ipsets: sets, setMembers: members, admitPodMs: admitMs, admitChainsWritten: admit.chainsWritten, admitSetsWritten: admit.setsWritten, admitIncrementalMs: admitIncrMs, rulesPerNewPacket: sim.rulesTraversed, backend: applier.backend });
    console.error(JSON.stringify(rows.at(-1)));
  } finally {
    execFileSync('ip', ['netns', 'del', ns]);
  }
}
console.table(rows);
