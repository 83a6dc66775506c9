import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { REPO, Sandbox, type Netns } from '../sandbox';
import { SqliteStore } from '../../src/datastore/sqlite-store';
import { silentLogger } from '../../src/lib/log';
import { netnsExec, type Exec } from '../../src/dataplane/exec';
import { applyMemberOps } from '../../src/dataplane/ipset-nl';
import { nftGeneration } from '../../src/dataplane/nft-gen';
import type { MemberOp } from '../../src/dataplane/ipset-codec';
import { Applier, compileRuleset, endpointResource, parsePolicyText, storedResources, toInput, writeResources, type Endpoint } from '../../src/acl';
import { AclReconciler } from '../../src/node-daemon/acl-sync';
import { CountingStore } from '../../src/datastore/counting-store';
import type { WatchEvent, Watcher } from '../../src/datastore/types';

/**
 * The daemon's store, watched from the test: it counts full lists, and can
 * make the watch lag (events held back, progress never catching up) or fail.
 */
class SpyStore extends CountingStore {
  lists = 0;
  watches = 0;
  lagging = false;
  private held: (() => void)[] = [];
  fail?: (e: Error) => void;
  override list(prefix: string) {
    this.lists++;
    return super.list(prefix);
  }
  override async watch(prefix: string, from: number, onEvent: (e: WatchEvent) => void, onError?: (e: Error) => void): Promise<Watcher> {
    this.watches++;
    const deliver = (e: WatchEvent) => (this.lagging ? this.held.push(() => onEvent(e)) : onEvent(e));
    const w = await super.watch(prefix, from, deliver, onError);
    this.fail = onError;
    return {
      close: () => w.close(),
      progress: async (t) => {
        const r = await w.progress!(t);
        if (this.lagging) throw new Error(`watch behind after ${t} ms`);
        return r;
      },
    };
  }
  /** Deliver what the lag held back, late. */
  catchUp(): void {
    this.lagging = false;
    for (const f of this.held.splice(0)) f();
  }
}

/**
 * The daemon's incremental path on a real node namespace (real iptables and
 * ipset): a pod joining, leaving or relabelled changes set members with one
 * batch of netlink member writes (no process at all) and runs neither
 * iptables-save nor ipset save; the kernel it
 * leaves is exactly what a full compile + apply makes of the same datastore.
 * Anything else (a policy, a new tenant under isolation) takes the full path.
 */
/** Tenant isolation (tenants alpha and beta) plus a tier, named ports and selectors. */
const POLICIES = `${fs.readFileSync(path.join(REPO, 'docs', 'examples', 'tenant-isolation.yaml'), 'utf8')}
---
apiVersion: tern.io/v1
kind: Tier
metadata: {name: security}
spec: {order: 10}
---
apiVersion: tern.io/v1
kind: GlobalNetworkPolicy
metadata: {name: security.quarantine}
spec:
  tier: security
  order: 1
  selector: quarantine == "true"
  ingress: [{action: Deny}]
  egress: [{action: Deny}]
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: web, namespace: alpha}
spec:
  podSelector: {matchLabels: {app: web}}
  ingress:
    - from: [{podSelector: {matchLabels: {app: client}}}]
      ports: [{port: http}, {port: 9000}]
---
apiVersion: tern.io/v1
kind: NetworkPolicy
metadata: {name: client-out, namespace: alpha}
spec:
  selector: app == "client"
  egress:
    - {action: Allow, protocol: TCP, destination: {selector: app == "web", ports: [http]}}
`;

// The daemon runs as node n0; endpoints are on n1 (their chains are n1's business) unless said otherwise.
function ep(i: number, labels: Record<string, string> = { app: i % 2 ? 'web' : 'client' }, namespace = 'alpha', node = 'n1'): Endpoint {
  return {
    node,
    name: `pod${i}`,
    namespace,
    labels,
    ips: [`10.77.0.${i}`, `fd00:77::${i.toString(16)}`],
    hostIface: `tern${i.toString(16).padStart(11, '0')}`,
    namedPorts: [{ name: 'http', protocol: 6, port: 8080 }],
  };
}

describe('incremental ACL updates (daemon)', () => {
  const sb = new Sandbox('incr');
  let node: Netns;
  let store: SqliteStore;
  /** Another connection to the same file, as a CNI process writes through. */
  let other: SqliteStore;
  let spy: SpyStore;
  let acl: AclReconciler;
  const calls: string[] = [];
  let failNextMemberWrite = false;
  /** The member writes of the last incremental step, in the order sent. */
  let lastOps: MemberOp[] = [];

  /** Tern's chains and sets as the kernel holds them, in a canonical order. */
  const kernel = () => {
    const sets = node.must('ipset', ['save']).split('\n').filter((l) => / tern-/.test(l)).sort();
    const rules = ['iptables', 'ip6tables'].flatMap((t) => node.must(`${t}-save`, ['-t', 'filter']).split('\n').filter((l) => /tern/.test(l) && !l.startsWith('#')).map((l) => l.replace(/\[\d+:\d+\]/, '')));
    return { sets, rules };
  };
  const saves = () => calls.filter((c) => /-save\b/.test(c) || c === 'ipset save');
  const writes = () => calls.filter((c) => /-restore\b/.test(c) || c.startsWith('ipset restore') || c === 'netlink ipset');
  const spawned = () => calls.filter((c) => c !== 'netlink ipset');
  /** What a full compile + apply of the stored state writes now: nothing, if the kernel already equals it. */
  const fullApplyWrites = async () => {
    const all = await storedResources(store);
    const r = await new Applier({ netnsPath: node.path }).apply(compileRuleset(toInput(all), { node: 'n0' }));
    return { chains: r.chainsWritten, sets: r.setsWritten, destroyed: r.setsDestroyed };
  };

  beforeAll(async () => {
    node = sb.netns('node');
    const db = path.join(sb.tmpdir(), 'tern.db');
    store = new SqliteStore({ path: db, pollMs: 20 });
    other = new SqliteStore({ path: db });
    spy = new SpyStore(store);
    await writeResources(store, 'apply', parsePolicyText(POLICIES, 'p.yaml'));
    // pod1 (web) and pod4 (client) are this node's: their chains name the selector sets the others join and leave.
    await writeResources(store, 'apply', Array.from({ length: 20 }, (_, i) => endpointResource(ep(i + 1, undefined, undefined, i + 1 === 1 || i + 1 === 4 ? 'n0' : 'n1'))));
    const real = netnsExec(node.path);
    const exec: Exec = (cmd, args, input) => {
      calls.push(`${cmd} ${args.join(' ')}`.trim());
      return real(cmd, args, input);
    };
    const memberWriter = async (ops: MemberOp[]) => {
      calls.push('netlink ipset');
      lastOps = ops;
      if (failNextMemberWrite) {
        failNextMemberWrite = false;
        // The first write lands, then the kernel refuses one: a half-done batch the full path must finish.
        await applyMemberOps(ops.slice(0, 1), node.path);
        await applyMemberOps([{ op: 'add', set: 'tern-no-such-set', type: 'hash:ip', member: '10.0.0.1' }], node.path);
      }
      return applyMemberOps(ops, node.path);
    };
    // The generation as the daemon reads it: with `exec` given, the applier would read none and always read the rules back.
    acl = new AclReconciler({ store: spy, log: silentLogger(), policyDir: '', node: 'n0', netnsPath: node.path, exec, memberWriter, generation: () => nftGeneration(node.path) });
    await acl.start();
    expect(acl.state.lastError).toBeUndefined();
    expect(saves().length).toBeGreaterThan(0); // the first sync is a full one
  }, 60_000);
  afterAll(async () => {
    await acl?.stop();
    await other?.close();
    await store?.close();
    await sb.cleanup();
  });

  it('a pod joining: member writes over netlink, no process, the gate entry last; equal to a full apply', async () => {
    calls.length = 0;
    const before = acl.state.incrementalSyncs ?? 0;
    await writeResources(store, 'apply', [endpointResource(ep(30))]);
    await acl.sync();
    expect(acl.state.lastError).toBeUndefined();
    expect(acl.state.incrementalSyncs).toBe(before + 1);
    expect(saves()).toEqual([]);
    expect(writes()).toEqual(['netlink ipset']);
    expect(spawned()).toEqual([]);
    const k = kernel();
    expect(k.sets).toContain('add tern-ep4 10.77.0.30,tern0000000001e');
    // Admitted last: every other member is in place before the gate opens.
    expect(lastOps.slice(-2).map((o) => o.set).sort()).toEqual(['tern-ep4', 'tern-ep6']);
    expect(lastOps.slice(0, -2).some((o) => o.set.startsWith('tern-ep'))).toBe(false);
    expect(k.sets.some((l) => /^add tern-s4-\S+ 10\.77\.0\.30$/.test(l))).toBe(true);
    expect(await fullApplyWrites()).toEqual({ chains: 0, sets: 0, destroyed: 0 });
    expect(kernel()).toEqual(k);
  });

  it('a pod relabelled and a pod leaving: incremental, and equal to a full apply', async () => {
    calls.length = 0;
    await writeResources(store, 'apply', [endpointResource(ep(2, { app: 'web', quarantine: 'true' }))]);
    await writeResources(store, 'delete', [endpointResource(ep(3))]);
    await acl.sync();
    expect(acl.state.lastError).toBeUndefined();
    expect(saves()).toEqual([]);
    expect(writes()).toEqual(['netlink ipset']);
    expect(spawned()).toEqual([]);
    const k = kernel();
    expect(k.sets.some((l) => l.includes('10.77.0.3,') || l.endsWith(' 10.77.0.3'))).toBe(false);
    expect(await fullApplyWrites()).toEqual({ chains: 0, sets: 0, destroyed: 0 });
    expect(kernel()).toEqual(k);
  });

  it('a pod of this node that a policy selects takes the full path, which writes its own chains; one with no policy or tenant stays incremental', async () => {
    calls.length = 0;
    const before = acl.state.incrementalSyncs;
    await writeResources(store, 'apply', [endpointResource(ep(70, { app: 'web' }, 'alpha', 'n0'))]);
    await acl.sync();
    expect(acl.state.lastError).toBeUndefined();
    expect(acl.state.incrementalSyncs).toBe(before);
    expect(saves().length).toBeGreaterThan(0);
    // Set members alone would leave the pod without its chain: admitted by the gate, then allowed by nothing selecting it.
    expect(kernel().rules.some((l) => l.startsWith(':tern-tw-tern00000000046 '))).toBe(true);
    expect(await fullApplyWrites()).toEqual({ chains: 0, sets: 0, destroyed: 0 });

    calls.length = 0;
    await writeResources(store, 'apply', [endpointResource(ep(71, { app: 'none' }, 'loose', 'n0'))]);
    await acl.sync();
    expect(acl.state.lastError).toBeUndefined();
    expect(acl.state.incrementalSyncs).toBe((before ?? 0) + 1);
    expect(saves()).toEqual([]);
    expect(writes()).toEqual(['netlink ipset']);
    expect(spawned()).toEqual([]);
    expect(kernel().sets).toContain('add tern-ep4 10.77.0.71,tern00000000047');
    expect(await fullApplyWrites()).toEqual({ chains: 0, sets: 0, destroyed: 0 });
  });

  it('the periodic resync after incremental updates finds nothing to write', async () => {
    const k = kernel();
    calls.length = 0;
    await acl.resync();
    expect(saves().length).toBeGreaterThan(0);
    expect(writes()).toEqual([]);
    expect(kernel()).toEqual(k);
  });

  it('a resync with nothing stored changed reuses the last compile; a rule deleted by hand is still put back', async () => {
    const k = kernel();
    const compiles = acl.state.compiles;
    await acl.resync();
    expect(acl.state.compiles).toBe(compiles);
    const victim = node.must('iptables-save', ['-t', 'filter']).split('\n').find((l) => l.startsWith('-A tern-FORWARD'))!;
    node.must('iptables', ['-t', 'filter', ...victim.replace(/"/g, '').split(' ').map((w) => (w === '-A' ? '-D' : w))]);
    expect(kernel()).not.toEqual(k);
    await acl.resync();
    expect(acl.state.lastError).toBeUndefined();
    expect(acl.state.compiles).toBe(compiles);
    expect(kernel()).toEqual(k);
  });

  it('a pod of a new tenant under tenant isolation (a new rule) takes the full path', async () => {
    calls.length = 0;
    const before = acl.state.incrementalSyncs;
    await writeResources(store, 'apply', [endpointResource(ep(40, { app: 'web', 'tern.io/tenant': 'gamma' }, 'gamma'))]);
    await acl.sync();
    expect(acl.state.lastError).toBeUndefined();
    expect(acl.state.incrementalSyncs).toBe(before);
    expect(saves().length).toBeGreaterThan(0);
    expect(await fullApplyWrites()).toEqual({ chains: 0, sets: 0, destroyed: 0 });
  });

  it('a policy change takes the full path; the next pod joining is incremental again', async () => {
    calls.length = 0;
    await writeResources(store, 'apply', parsePolicyText('apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: db, namespace: alpha}\nspec:\n  podSelector: {matchLabels: {app: db}}\n  ingress: [{ports: [{port: 5432}]}]\n', 'db.yaml'));
    const compiles = acl.state.compiles ?? 0;
    await acl.sync();
    expect(saves().length).toBeGreaterThan(0);
    expect(acl.state.compiles).toBe(compiles + 1);
    calls.length = 0;
    await writeResources(store, 'apply', [endpointResource(ep(50, { app: 'db' }))]);
    await acl.sync();
    expect(acl.state.lastError).toBeUndefined();
    expect(saves()).toEqual([]);
    expect(writes()).toEqual(['netlink ipset']);
    expect(spawned()).toEqual([]);
    expect(await fullApplyWrites()).toEqual({ chains: 0, sets: 0, destroyed: 0 });
  });

  it('a failed incremental step falls back to the full path in the same run', async () => {
    calls.length = 0;
    failNextMemberWrite = true;
    await writeResources(store, 'apply', [endpointResource(ep(60))]);
    await acl.sync();
    expect(acl.state.lastError).toBeUndefined();
    expect(failNextMemberWrite).toBe(false);
    expect(saves().length).toBeGreaterThan(0);
    expect(kernel().sets).toContain('add tern-ep4 10.77.0.60,tern0000000003c');
    expect(await fullApplyWrites()).toEqual({ chains: 0, sets: 0, destroyed: 0 });
  });

  it('a sync right after another connection\'s write reflects it, from the watch alone: no full list', async () => {
    for (let i = 80; i < 84; i++) {
      calls.length = 0;
      const lists = spy.lists;
      const before = acl.state.incrementalSyncs ?? 0;
      await writeResources(other, 'apply', [endpointResource(ep(i))]); // the daemon's poller has not run yet
      if (i % 2) await writeResources(other, 'delete', [endpointResource(ep(i - 1))]);
      await acl.sync();
      expect(acl.state.lastError).toBeUndefined();
      expect(acl.state.incrementalSyncs).toBe(before + 1);
      expect(spy.lists).toBe(lists);
      expect(saves()).toEqual([]);
      const k = kernel();
      expect(k.sets).toContain(`add tern-ep4 10.77.0.${i},tern${i.toString(16).padStart(11, '0')}`);
      if (i % 2) expect(k.sets.some((l) => l.includes(`10.77.0.${i - 1},`))).toBe(false);
    }
    expect(await fullApplyWrites()).toEqual({ chains: 0, sets: 0, destroyed: 0 });
  });

  it('a policy edit between resyncs is compiled from the watched records: no list; the kernel equals a full apply', async () => {
    await acl.resync(); // lists: incremental syncs from here on may use the watch
    for (const port of [5433, 5434, 5435]) {
      const lists = spy.lists;
      const compiles = acl.state.compiles ?? 0;
      // From another connection: the sync must catch up with the watch first, or it would compile the old policy.
      await writeResources(other, 'apply', parsePolicyText(`apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: web-extra, namespace: alpha}\nspec:\n  podSelector: {matchLabels: {app: web}}\n  ingress: [{ports: [{port: ${port}}]}]\n`, 'web.yaml'));
      await acl.sync();
      expect(acl.state.lastError).toBeUndefined();
      expect(acl.state.compiles).toBe(compiles + 1);
      expect(spy.lists).toBe(lists);
      expect(kernel().rules.some((l) => l.startsWith('-A tern-tw-tern00000000001 ') && l.includes(`--dports ${port} `))).toBe(true); // pod1's chain
      expect(await fullApplyWrites()).toEqual({ chains: 0, sets: 0, destroyed: 0 });
    }
    // Someone else's rule between two edits: the generation moved by more than Tern's own commits, so the next edit reads the rules.
    node.must('iptables', ['-I', 'tern-INPUT', '1', '-j', 'ACCEPT']);
    await writeResources(other, 'apply', parsePolicyText('apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: web-extra, namespace: alpha}\nspec:\n  podSelector: {matchLabels: {app: web}}\n  ingress: [{ports: [{port: 5436}]}]\n', 'web.yaml'));
    await acl.sync();
    expect(acl.state.lastError).toBeUndefined();
    expect(kernel().rules).not.toContain('-A tern-INPUT -j ACCEPT');
    expect(await fullApplyWrites()).toEqual({ chains: 0, sets: 0, destroyed: 0 });
    const lists = spy.lists;
    await acl.resync(); // the periodic one lists, whatever the watch says
    expect(spy.lists).toBe(lists + 1);
  });

  it('a watch that lags: the sync lists everything instead, and the kernel is right; late events change nothing', async () => {
    spy.lagging = true;
    calls.length = 0;
    const lists = spy.lists;
    await writeResources(other, 'apply', [endpointResource(ep(90))]);
    await writeResources(other, 'delete', [endpointResource(ep(80))]);
    await acl.sync();
    expect(acl.state.lastError).toBeUndefined();
    expect(spy.lists).toBe(lists + 1);
    expect(saves().length).toBeGreaterThan(0); // the full path
    let k = kernel();
    expect(k.sets).toContain('add tern-ep4 10.77.0.90,tern0000000005a');
    expect(k.sets.some((l) => l.includes('10.77.0.80,'))).toBe(false);
    expect(await fullApplyWrites()).toEqual({ chains: 0, sets: 0, destroyed: 0 });
    // The held-back events arrive after the list that already has them.
    spy.catchUp();
    calls.length = 0;
    await writeResources(other, 'apply', [endpointResource(ep(91))]);
    await acl.sync();
    expect(spy.lists).toBe(lists + 1);
    expect(saves()).toEqual([]);
    k = kernel();
    expect(k.sets).toContain('add tern-ep4 10.77.0.91,tern0000000005b');
    expect(k.sets).toContain('add tern-ep4 10.77.0.90,tern0000000005a');
    expect(await fullApplyWrites()).toEqual({ chains: 0, sets: 0, destroyed: 0 });
  });

  it('a watch that fails: the next sync lists everything and watches again; then incremental', async () => {
    const lists = spy.lists;
    const watches = spy.watches;
    await writeResources(other, 'apply', [endpointResource(ep(92))]);
    spy.fail!(new Error('stream broken'));
    await acl.sync();
    expect(acl.state.lastError).toBeUndefined();
    expect(spy.lists).toBe(lists + 1);
    expect(spy.watches).toBe(watches + 1);
    expect(kernel().sets).toContain('add tern-ep4 10.77.0.92,tern0000000005c');
    calls.length = 0;
    await writeResources(other, 'delete', [endpointResource(ep(92))]);
    await acl.sync();
    expect(spy.lists).toBe(lists + 1);
    expect(saves()).toEqual([]);
    expect(kernel().sets.some((l) => l.includes('10.77.0.92,'))).toBe(false);
    expect(await fullApplyWrites()).toEqual({ chains: 0, sets: 0, destroyed: 0 });
  });
});
