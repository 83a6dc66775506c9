import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Sandbox, type Netns } from '../sandbox';
import { startEtcd } from '../sandbox/etcd';
import { EtcdStore } from '../../src/datastore';
import { silentLogger } from '../../src/lib/log';
import { Applier, compileRuleset, endpointResource, parsePolicyText, storedResources, toInput, writeResources, type Endpoint } from '../../src/acl';
import { AclReconciler } from '../../src/node-daemon/acl-sync';

/**
 * The daemon's incremental ACL path on etcd: each sync right after another
 * client's write (as a CNI process on another host would make it) reflects
 * that write, read from the watch rather than a full list, and the kernel
 * equals what a full compile + apply makes of the datastore.
 */
const POLICIES = `apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: web, namespace: alpha}
spec:
  podSelector: {matchLabels: {app: web}}
  ingress: [{from: [{podSelector: {matchLabels: {app: client}}}], ports: [{port: 8080}]}]
`;

const ep = (i: number, node = 'n1'): Endpoint => ({ node, name: `pod${i}`, namespace: 'alpha', labels: { app: i % 2 ? 'web' : 'client' }, ips: [`10.78.0.${i}`], hostIface: `tern${i.toString(16).padStart(11, '0')}`, namedPorts: [] });

describe('incremental ACL updates (daemon) on etcd', () => {
  const sb = new Sandbox('incre');
  let node: Netns;
  let store: EtcdStore;
  let other: EtcdStore;
  let acl: AclReconciler;
  let lists = 0;

  const sets = () => node.must('ipset', ['save']).split('\n').filter((l) => / tern-/.test(l));
  const fullApplyWrites = async () => {
    const r = await new Applier({ netnsPath: node.path }).apply(compileRuleset(toInput(await storedResources(store)), { node: 'n0' }));
    return { chains: r.chainsWritten, sets: r.setsWritten, destroyed: r.setsDestroyed };
  };

  beforeAll(async () => {
    const etcd = await startEtcd(sb);
    node = sb.netns('node');
    store = new EtcdStore(etcd.storeOptions({ prefix: '/incr' }));
    other = new EtcdStore(etcd.storeOptions({ prefix: '/incr' }));
    const list = store.list.bind(store);
    store.list = (p) => {
      lists++;
      return list(p);
    };
    await writeResources(other, 'apply', [...parsePolicyText(POLICIES, 'p.yaml'), ...[1, 2, 3, 4].map((i) => endpointResource(ep(i, i === 1 ? 'n0' : 'n1')))]);
    acl = new AclReconciler({ store, log: silentLogger(), policyDir: '', node: 'n0', netnsPath: node.path });
    await acl.start();
    expect(acl.state.lastError).toBeUndefined();
  }, 120_000);
  afterAll(async () => {
    await acl?.stop();
    await other?.close();
    await store?.close();
    await sb.cleanup();
  });

  it('a sync right after another client\'s write reflects it, with no full list', async () => {
    const before = acl.state.incrementalSyncs ?? 0;
    const listed = lists;
    for (let i = 10; i < 20; i++) {
      await writeResources(other, 'apply', [endpointResource(ep(i))]);
      if (i % 3 === 0) await writeResources(other, 'delete', [endpointResource(ep(i - 1))]);
      await acl.sync();
      expect(acl.state.lastError).toBeUndefined();
      const k = sets();
      expect(k).toContain(`add tern-ep4 10.78.0.${i},tern${i.toString(16).padStart(11, '0')}`);
      if (i % 3 === 0) expect(k.some((l) => l.includes(`10.78.0.${i - 1},`))).toBe(false);
    }
    expect(acl.state.incrementalSyncs).toBe(before + 10);
    expect(lists).toBe(listed);
    expect(await fullApplyWrites()).toEqual({ chains: 0, sets: 0, destroyed: 0 });
  });

  it('the periodic full resync still lists, and finds nothing to write', async () => {
    const listed = lists;
    await acl.resync();
    expect(lists).toBe(listed + 1);
    expect(await fullApplyWrites()).toEqual({ chains: 0, sets: 0, destroyed: 0 });
  });
});
