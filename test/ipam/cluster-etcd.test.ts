/**
 * Block IPAM on real etcd: the behaviour suite, 4 nodes x 50 concurrent
 * allocations against one etcd, and the fault cases (etcd unreachable, a
 * 3-member cluster without quorum): allocation fails with TRY_AGAIN_LATER,
 * nothing is corrupted, and it works again once etcd is back.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EtcdStore } from '../../src/datastore';
import { BlockIpam } from '../../src/ipam/block-ipam';
import { checkIpam, loadIpamState } from '../../src/ipam/gc';
import { normalisePool, poolKey } from '../../src/ipam/model';
import { addrToBigInt, parsePrefix, prefixContains } from '../../src/lib/cidr';
import { Sandbox, waitFor } from '../sandbox';
import { startEtcd, type EtcdCluster } from '../sandbox/etcd';
import { ipamBehaviour } from './behaviour';

const sb = new Sandbox('ietcdc');
let one: EtcdCluster;
let n = 0;

beforeAll(async () => {
  one = await startEtcd(sb);
}, 120_000);
afterAll(() => sb.cleanup());

// etcd refuses a transaction that writes one key twice (InvalidArgument, "duplicate key given in txn request").
ipamBehaviour('etcd', async () => new EtcdStore(one.storeOptions({ prefix: `/behaviour-${Date.now()}-${++n}` })), async (_s, key) => [
  { op: 'put', key, value: 'x' },
  { op: 'put', key, value: 'y' },
]);

const cleanFindings = async (s: EtcdStore) => checkIpam(await loadIpamState(s), { now: Date.now(), graceMs: 0 }).filter((f) => f.kind !== 'empty-block');

describe('cluster concurrency', () => {
  it('4 nodes x 50 concurrent allocations: no duplicates, each node in its own blocks', async () => {
    const prefix = `/conc-${Date.now()}`;
    const pool = '10.50.0.0/22';
    const seed = new EtcdStore(one.storeOptions({ prefix }));
    await seed.create(poolKey(pool), JSON.stringify(normalisePool({ cidr: pool, blockSize: 28 })));
    const nodes = ['node-a', 'node-b', 'node-c', 'node-d'];
    const stores = nodes.map(() => new EtcdStore(one.storeOptions({ prefix })));
    try {
      // Per node, 5 allocator instances (separate CAS writers, like CNI
      // processes) each take 10 of the node's 50 concurrent requests.
      const results = await Promise.all(
        nodes.flatMap((node, i) => {
          const instances = Array.from({ length: 5 }, () => new BlockIpam({ store: stores[i], node }));
          return Array.from({ length: 50 }, async (_, j) => {
            const [ip] = await instances[j % 5].allocate({ key: { network: 'conc', containerId: `${node}-${j}`, ifname: 'eth0' }, pools: [pool] });
            return { node, address: ip.address };
          });
        }),
      );
      expect(results.length).toBe(200);
      expect(new Set(results.map((r) => r.address)).size).toBe(200);
      const st = await loadIpamState(seed);
      for (const r of results) {
        const block = [...st.blocks.values()].find((b) => prefixContains(parsePrefix(b.block.cidr), addrToBigInt(r.address)));
        expect(block?.block.affinity).toBe(r.node);
      }
      // 50 addresses in /28 blocks: at least 4 blocks per node, all distinct.
      for (const node of nodes) expect([...st.blocks.values()].filter((b) => b.block.affinity === node).length).toBeGreaterThanOrEqual(4);
      expect(await cleanFindings(seed)).toEqual([]);
    } finally {
      for (const s of [seed, ...stores]) await s.close();
    }
  }, 180_000);
});

describe('faults', () => {
  it('etcd unreachable: TRY_AGAIN_LATER, then allocation resumes when it is back', async () => {
    const etcd = await startEtcd(sb);
    const store = new EtcdStore(etcd.storeOptions({ timeoutMs: 2000 }));
    const ipam = new BlockIpam({ store, node: 'n1' });
    const pools = ['10.51.0.0/24'];
    try {
      const [a] = await ipam.allocate({ key: { network: 'f', containerId: 'before', ifname: 'eth0' }, pools });
      await etcd.stopMember(0, 'SIGKILL');
      await expect(ipam.allocate({ key: { network: 'f', containerId: 'down', ifname: 'eth0' }, pools })).rejects.toMatchObject({ code: 'TRY_AGAIN_LATER' });
      await expect(new BlockIpam({ store, node: 'n1' }).allocate({ key: { network: 'f', containerId: 'cold', ifname: 'eth0' }, pools })).rejects.toMatchObject({ code: 'TRY_AGAIN_LATER' });
      etcd.startMember(0);
      await etcd.waitHealthy();
      const [b] = await waitFor(() => ipam.allocate({ key: { network: 'f', containerId: 'after', ifname: 'eth0' }, pools }), { timeoutMs: 60_000, intervalMs: 500, what: 'allocation after restart' });
      expect(b.address).not.toBe(a.address);
      expect(await ipam.get({ network: 'f', containerId: 'down', ifname: 'eth0' })).toBeUndefined();
      expect(await cleanFindings(store)).toEqual([]);
    } finally {
      await store.close();
      await etcd.stop();
    }
  }, 180_000);

  it('3-member cluster without quorum: TRY_AGAIN_LATER, nothing corrupted, works again with quorum', async () => {
    const etcd = await startEtcd(sb, { members: 3 });
    const store = new EtcdStore(etcd.storeOptions({ timeoutMs: 2000 }));
    const ipam = new BlockIpam({ store, node: 'n1' });
    const pools = ['10.52.0.0/24', 'fd52::/120'];
    try {
      for (let i = 0; i < 5; i++) await ipam.allocate({ key: { network: 'q', containerId: `c${i}`, ifname: 'eth0' }, pools });
      const before = await loadIpamState(store);
      await etcd.stopMember(1, 'SIGKILL');
      await etcd.stopMember(2, 'SIGKILL');
      await expect(ipam.allocate({ key: { network: 'q', containerId: 'noquorum', ifname: 'eth0' }, pools })).rejects.toMatchObject({ code: 'TRY_AGAIN_LATER' });
      await expect(ipam.release({ network: 'q', containerId: 'c0', ifname: 'eth0' })).rejects.toMatchObject({ code: 'TRY_AGAIN_LATER' });
      etcd.startMember(1);
      etcd.startMember(2);
      await etcd.waitHealthy(60_000);
      const after = await waitFor(() => loadIpamState(store), { timeoutMs: 60_000, intervalMs: 500, what: 'reads with quorum' });
      // A request that timed out without quorum may still commit once quorum
      // returns (etcd cannot say which): each transaction is all-or-nothing, so
      // the state is consistent either way, and the runtime's retry of the same
      // ADD (or its DEL) settles it through idempotency.
      expect(await cleanFindings(store)).toEqual([]);
      const known = new Set([...before.handles.keys(), 'q.noquorum.eth0']);
      expect([...after.handles.keys()].filter((h) => !known.has(h))).toEqual([]);
      for (const [id, h] of before.handles) {
        if (id !== 'q.c0.eth0') expect(after.handles.get(id)?.rec).toEqual(h.rec);
      }
      const pending = after.handles.get('q.noquorum.eth0')?.rec.ips.map((i) => i.address);
      const retried = await waitFor(() => ipam.allocate({ key: { network: 'q', containerId: 'noquorum', ifname: 'eth0' }, pools }), { timeoutMs: 60_000, intervalMs: 500, what: 'retried ADD' });
      if (pending) expect(retried.map((i) => i.address)).toEqual(pending);
      const ips = await ipam.allocate({ key: { network: 'q', containerId: 'back', ifname: 'eth0' }, pools });
      expect(ips.map((i) => i.family)).toEqual([4, 6]);
      await ipam.release({ network: 'q', containerId: 'c0', ifname: 'eth0' });
      expect(await cleanFindings(store)).toEqual([]);
    } finally {
      await store.close();
      await etcd.stop();
    }
  }, 240_000);
});
