/**
 * BlockIpam behaviour, run against a real store (SQLite file or etcd): the
 * same cases on every backend. `open()` returns an empty store per case.
 */
import { describe, it, expect } from 'vitest';
import type { Store } from '../../src/datastore';
import { CountingStore } from '../../src/datastore';
import { BlockIpam, type BlockIpamOptions } from '../../src/ipam/block-ipam';
import { checkIpam, loadIpamState, repairIpam, utilisation, reclaimEmptyBlocks } from '../../src/ipam/gc';
import { affinityKey, blockKey, claimGuards, claimKey, handleKey, poolKey, normalisePool } from '../../src/ipam/model';
import { addrToBigInt, parsePrefix, prefixContains } from '../../src/lib/cidr';
import type { AllocationKey } from '../../src/ipam/types';
import type { TxnOp } from '../../src/datastore/types';

const key = (c: string, ifname = 'eth0'): AllocationKey => ({ network: 'net1', containerId: c, ifname });
const inCidr = (addr: string, cidr: string) => prefixContains(parsePrefix(cidr), addrToBigInt(addr));

/**
 * `refusedPut(store, key)`: writes of `key` that this backend refuses for real
 * (a SQLite trigger; for etcd, the key twice in one transaction), to fail the
 * writes that ride in an allocation's transaction.
 */
export function ipamBehaviour(name: string, open: () => Promise<Store>, refusedPut: (s: Store, key: string) => Promise<TxnOp[]>): void {
  describe(`BlockIpam on ${name}`, () => {
    const make = async (opts: Partial<BlockIpamOptions> & { node: string }, store?: Store) => {
      const s = store ?? (await open());
      return { s, ipam: new BlockIpam({ store: s, ...opts }) };
    };

    it('claims a block for the node, allocates from it, and repeats ADD idempotently', async () => {
      const { s, ipam } = await make({ node: 'n1' });
      const a = await ipam.allocate({ key: key('c1'), pools: ['10.10.0.0/16'], attrs: { namespace: 'default', pod: 'p1' } });
      expect(a).toEqual([{ address: '10.10.0.0', family: 4, pool: '10.10.0.0/16' }]);
      const b = await ipam.allocate({ key: key('c2'), pools: ['10.10.0.0/16'] });
      expect(b[0].address).toBe('10.10.0.1');
      expect(await ipam.allocate({ key: key('c1'), pools: ['10.10.0.0/16'] })).toEqual(a);
      // A second process (another instance) sees the same handle.
      const other = new BlockIpam({ store: s, node: 'n1' });
      expect(await other.allocate({ key: key('c1'), pools: ['10.10.0.0/16'] })).toEqual(a);
      expect(await ipam.get(key('c1'))).toEqual({ key: key('c1'), ips: a, attrs: { namespace: 'default', pod: 'p1' } });
      expect((await ipam.list('net1')).length).toBe(2);
      expect(await ipam.list('other')).toEqual([]);
      expect((await s.get(affinityKey('10.10.0.0/16', '10.10.0.0/26')))?.value).toBe('n1');
      expect(JSON.parse((await s.get(poolKey('10.10.0.0/16')))!.value)).toMatchObject({ cidr: '10.10.0.0/16', blockSize: 26, mode: 'routed' });
      await ipam.close();
      await s.close();
    });

    it('one datastore round trip per allocation in the steady state', async () => {
      const s = new CountingStore(await open());
      const ipam = new BlockIpam({ store: s, node: 'n1' });
      await ipam.allocate({ key: key('warm'), pools: ['10.11.0.0/16'] });
      const before = s.roundTrips;
      for (let i = 0; i < 20; i++) await ipam.allocate({ key: key(`c${i}`), pools: ['10.11.0.0/16'] });
      expect(s.roundTrips - before).toBe(20);
      await s.close();
    });

    it('dual stack: one address per family, and a failing family leaves nothing behind', async () => {
      const { s, ipam } = await make({ node: 'n1' });
      const pools = ['10.12.0.0/24', 'fd12::/120'];
      const ips = await ipam.allocate({ key: key('c1'), pools });
      expect(ips.map((i) => i.family)).toEqual([4, 6]);
      expect(inCidr(ips[1].address, 'fd12::/122')).toBe(true);
      // An IPv6 pool with room for exactly one more address.
      await s.create(poolKey('fd13::/127'), JSON.stringify(normalisePool({ cidr: 'fd13::/127', blockSize: 127, reserved: ['fd13::'] })));
      const tight = ['10.13.0.0/24', 'fd13::/127'];
      expect((await ipam.allocate({ key: key('d1'), pools: tight }))[1].address).toBe('fd13::1');
      const before = utilisation(await loadIpamState(s));
      await expect(ipam.allocate({ key: key('d2'), pools: tight })).rejects.toMatchObject({ code: 'IPAM_EXHAUSTED' });
      expect(await ipam.get(key('d2'))).toBeUndefined();
      expect(utilisation(await loadIpamState(s)).blocks).toEqual(before.blocks);
      await s.close();
    });

    it('strict affinity by default; borrowing only when enabled, and visible', async () => {
      const s = await open();
      // Two /30 blocks in the pool: one per node.
      await s.create(poolKey('10.14.0.0/29'), JSON.stringify(normalisePool({ cidr: '10.14.0.0/29', blockSize: 30 })));
      const pools = ['10.14.0.0/29'];
      const n1 = new BlockIpam({ store: s, node: 'n1' });
      const n2 = new BlockIpam({ store: s, node: 'n2' });
      const n3 = new BlockIpam({ store: s, node: 'n3' });
      expect((await n1.allocate({ key: key('a'), pools }))[0].address).toBe('10.14.0.0');
      expect((await n2.allocate({ key: key('b'), pools }))[0].address).toBe('10.14.0.4');
      await expect(n3.allocate({ key: key('c'), pools })).rejects.toMatchObject({ code: 'IPAM_EXHAUSTED' });
      const lender = new BlockIpam({ store: s, node: 'n3', allowBorrow: true });
      const got = await lender.allocate({ key: key('c'), pools });
      expect(inCidr(got[0].address, '10.14.0.0/29')).toBe(true);
      const u = utilisation(await loadIpamState(s));
      expect(u.blocks.reduce((n, b) => n + b.borrowed, 0)).toBe(1);
      expect(u.nodes.find((n) => n.node === 'n3')).toMatchObject({ blocks: 0, borrowedIn: 1 });
      expect(u.fabricRoutes).toBe(3);
      await s.close();
    });

    it('a specific IP: given exactly, refused when in use or in another node\'s block', async () => {
      const s = await open();
      const n1 = new BlockIpam({ store: s, node: 'n1' });
      const n2 = new BlockIpam({ store: s, node: 'n2' });
      const pools = ['10.15.0.0/16', 'fd15::/64'];
      const ips = await n1.allocate({ key: key('a'), pools, requested: ['10.15.3.7', 'fd15::3:7'] });
      expect(ips.map((i) => i.address)).toEqual(['10.15.3.7', 'fd15::3:7']);
      await expect(n1.allocate({ key: key('b'), pools, requested: ['10.15.3.7'] })).rejects.toMatchObject({ code: 'CONFLICT' });
      await expect(n2.allocate({ key: key('c'), pools, requested: ['10.15.3.8'] })).rejects.toMatchObject({ code: 'CONFLICT' });
      await expect(n2.allocate({ key: key('c'), pools, requested: ['10.99.0.1'] })).rejects.toMatchObject({ code: 'INVALID_CONFIG' });
      expect(await n2.get(key('b'))).toBeUndefined();
      await s.close();
    });

    it('release frees; releasing twice or an unknown key is a no-op; a stale release frees nothing', async () => {
      const { s, ipam } = await make({ node: 'n1' });
      const pools = ['10.16.0.0/24'];
      const [a] = await ipam.allocate({ key: key('old'), pools });
      const staleHandle = (await s.get(handleKey('net1.old.eth0')))!;
      await ipam.release(key('old'));
      await ipam.release(key('old'));
      await ipam.release(key('never'));
      expect(await ipam.get(key('old'))).toBeUndefined();
      const [b] = await ipam.allocate({ key: key('new'), pools, requested: [a.address] });
      expect(b.address).toBe(a.address);
      // The old handle comes back (a delayed writer): its sequence no longer matches.
      await s.txn([{ op: 'put', key: staleHandle.key, value: staleHandle.value }]);
      await new BlockIpam({ store: s, node: 'n1' }).release(key('old'));
      expect((await ipam.get(key('new')))?.ips[0].address).toBe(a.address);
      const st = await loadIpamState(s);
      expect(utilisation(st).blocks[0].used).toBe(1);
      expect(checkIpam(st, { now: Date.now(), graceMs: 0 })).toEqual([]);
      await s.close();
    });

    it('freed addresses wait out the cooldown, then come back oldest-first', async () => {
      let now = 1_000_000;
      const { s, ipam } = await make({ node: 'n1', cooldownMs: 60_000, now: () => now });
      const pools = ['10.17.0.0/24'];
      await s.create(poolKey('10.17.0.0/24'), JSON.stringify(normalisePool({ cidr: '10.17.0.0/24', blockSize: 30 })));
      const got: string[] = [];
      for (const c of ['a', 'b', 'c', 'd']) got.push((await ipam.allocate({ key: key(c), pools }))[0].address);
      expect(got).toEqual(['10.17.0.0', '10.17.0.1', '10.17.0.2', '10.17.0.3']);
      await ipam.release(key('c'));
      now += 1000;
      await ipam.release(key('a'));
      // Both cooling: a new block instead.
      expect((await ipam.allocate({ key: key('e'), pools }))[0].address).toBe('10.17.0.4');
      now += 60_000;
      const r: string[] = [];
      for (const c of ['f', 'g', 'h', 'i']) r.push((await ipam.allocate({ key: key(c), pools }))[0].address);
      expect(r).toEqual(['10.17.0.2', '10.17.0.0', '10.17.0.5', '10.17.0.6']);
      await s.close();
    });

    it('pool choice per namespace and tenant; disabled pools are skipped', async () => {
      const s = await open();
      await s.create(poolKey('10.18.0.0/24'), JSON.stringify(normalisePool({ cidr: '10.18.0.0/24', namespaces: ['prod'] })));
      await s.create(poolKey('10.19.0.0/24'), JSON.stringify(normalisePool({ cidr: '10.19.0.0/24' })));
      await s.create(poolKey('10.20.0.0/24'), JSON.stringify(normalisePool({ cidr: '10.20.0.0/24', disabled: true })));
      const ipam = new BlockIpam({ store: s, node: 'n1' });
      const pools = ['10.20.0.0/24', '10.18.0.0/24', '10.19.0.0/24'];
      expect((await ipam.allocate({ key: key('p'), pools, attrs: { namespace: 'prod' } }))[0].pool).toBe('10.18.0.0/24');
      expect((await ipam.allocate({ key: key('d'), pools, attrs: { namespace: 'dev' } }))[0].pool).toBe('10.19.0.0/24');
      await ipam.status(pools);
      await expect(ipam.status(['10.20.0.0/24'])).rejects.toMatchObject({ code: 'NOT_READY' });
      await s.close();
    });

    it('check finds leaks and broken indexes; release repairs them; empty blocks return after grace', async () => {
      const s = await open();
      const ipam = new BlockIpam({ store: s, node: 'n1' });
      await s.create(poolKey('10.21.0.0/24'), JSON.stringify(normalisePool({ cidr: '10.21.0.0/24', blockSize: 30 })));
      const pools = ['10.21.0.0/24'];
      for (const c of ['a', 'b', 'c', 'd', 'e', 'f']) await ipam.allocate({ key: key(c), pools });
      // Damage: a handle vanishes (leaked address), an index entry disagrees, one dangles.
      await s.delete(handleKey('net1.b.eth0'));
      const aff = (await s.get(affinityKey('10.21.0.0/24', '10.21.0.4/30')))!;
      await s.update(aff.key, 'someone-else', aff.modRevision);
      await s.create(affinityKey('10.21.0.0/24', '10.21.0.200/30'), 'ghost');
      let st = await loadIpamState(s);
      const live = new Set(['net1.a.eth0', 'net1.c.eth0', 'net1.d.eth0', 'net1.e.eth0']);
      const found = checkIpam(st, { now: Date.now(), graceMs: 0, live });
      expect(found.map((f) => f.kind).sort()).toEqual(['inconsistent-affinity', 'leaked-address', 'leaked-handle', 'orphaned-affinity']);
      expect(found.find((f) => f.kind === 'leaked-handle')).toEqual({ kind: 'leaked-handle', handle: 'net1.f.eth0' });
      const rep = await repairIpam(s, st, found, Date.now());
      expect(rep.skipped).toEqual([]);
      st = await loadIpamState(s);
      expect(checkIpam(st, { now: Date.now(), graceMs: 0, live })).toEqual([]);
      expect(utilisation(st).blocks.map((b) => b.used)).toEqual([3, 1]);
      // Empty the second block: it returns to the pool once the grace period is over.
      await ipam.release(key('e'));
      expect((await reclaimEmptyBlocks(s, Date.now(), 3_600_000)).repaired).toEqual([]);
      const r = await reclaimEmptyBlocks(s, Date.now() + 3_600_000, 3_600_000);
      expect(r.repaired.map((f) => f.kind)).toEqual(['empty-block']);
      st = await loadIpamState(s);
      expect(utilisation(st).blocks.map((b) => b.block)).toEqual(['10.21.0.0/30']);
      // The node keeps its last block even when empty.
      for (const c of ['a', 'c', 'd']) await ipam.release(key(c));
      expect((await reclaimEmptyBlocks(s, Date.now() + 3_600_000, 0)).repaired).toEqual([]);
      // And the allocator copes with its cached block having been returned.
      const again = await ipam.allocate({ key: key('z'), pools });
      expect(inCidr(again[0].address, '10.21.0.0/30')).toBe(true);
      expect(checkIpam(await loadIpamState(s), { now: Date.now(), graceMs: 0 })).toEqual([]);
      await s.close();
    });
    it('no block overlaps another: the claim transaction refuses one, whatever pool record its writer believes in', async () => {
      const s = await open();
      const pools = ['10.30.0.0/16'];
      const a = new BlockIpam({ store: s, node: 'nodeA' });
      expect((await a.allocate({ key: key('a1'), pools }))[0].address).toBe('10.30.0.0');
      // An older writer turns the pool into /28 blocks behind the CLI's back.
      const pk = (await s.get(poolKey('10.30.0.0/16')))!;
      await s.update(pk.key, JSON.stringify(normalisePool({ cidr: '10.30.0.0/16', blockSize: 28 })), pk.modRevision);
      // A direct claim of a /28 inside A's /26 fails on the guards alone.
      const direct = await s.txn([
        { op: 'create', key: affinityKey('10.30.0.0/16', '10.30.0.16/28'), value: 'nodeB' },
        { op: 'create', key: claimKey('10.30.0.16/28'), value: 'x' },
        ...claimGuards('10.30.0.16/28'),
      ]);
      expect(direct.ok).toBe(false);
      // And a /24 around it (a wider block) too; a neighbour outside it is fine.
      expect((await s.txn([{ op: 'create', key: claimKey('10.30.0.0/24'), value: 'x' }, ...claimGuards('10.30.0.0/24')])).ok).toBe(false);
      expect((await s.txn([{ op: 'check', key: claimKey('10.30.0.64/28'), revision: 0 }, ...claimGuards('10.30.0.64/28')])).ok).toBe(true);
      // Node B allocates through the /28 record: it skips every /28 inside A's /26.
      const b = new BlockIpam({ store: s, node: 'nodeB' });
      const got = await b.allocate({ key: key('b1'), pools });
      expect(inCidr(got[0].address, '10.30.0.0/26')).toBe(false);
      expect(got[0].address).toBe('10.30.0.64');
      expect(checkIpam(await loadIpamState(s), { now: Date.now(), graceMs: 0 })).toEqual([]);
      // A block written without guards (an older writer) is reported, with its missing claim.
      await s.create(blockKey('10.30.0.0/16', '10.30.0.32/28'), JSON.stringify({ cidr: '10.30.0.32/28', pool: '10.30.0.0/16', affinity: 'old', seq: 0, used: {}, free: [] }));
      await s.create(affinityKey('10.30.0.0/16', '10.30.0.32/28'), 'old');
      const found = checkIpam(await loadIpamState(s), { now: Date.now(), graceMs: 0 });
      expect(found).toEqual(expect.arrayContaining([
        { kind: 'overlapping-blocks', block: '10.30.0.32/28', other: '10.30.0.0/26' },
        { kind: 'unindexed-block', block: '10.30.0.32/28', key: blockKey('10.30.0.0/16', '10.30.0.32/28') },
      ]));
      await s.close();
    });

    it('writes records alongside a new allocation in its one transaction, and releases them with it', async () => {
      const s = new CountingStore(await open());
      const ipam = new BlockIpam({ store: s, node: 'n1' });
      await ipam.allocate({ key: key('warm'), pools: ['10.15.0.0/16'] });
      const before = s.roundTrips;
      const r = await ipam.allocateNew({ key: key('c1'), pools: ['10.15.0.0/16'], alongside: (ips) => [{ op: 'put', key: '/test/ep/c1', value: ips[0].address }] });
      expect(s.roundTrips - before).toBe(1);
      expect(r.created).toBe(true);
      expect((await s.get('/test/ep/c1'))?.value).toBe(r.ips[0].address);
      // A repeat finds the allocation and says it wrote nothing.
      const again = await ipam.allocateNew({ key: key('c1'), pools: ['10.15.0.0/16'], alongside: () => [{ op: 'put', key: '/test/ep/again', value: 'x' }] });
      expect(again).toEqual({ ips: r.ips, created: false });
      expect(await s.get('/test/ep/again')).toBeUndefined();
      const beforeRelease = s.roundTrips;
      await ipam.release(key('c1'), [{ op: 'delete', key: '/test/ep/c1' }]);
      expect(s.roundTrips - beforeRelease).toBe(2); // read the handle, then one transaction
      expect(await ipam.get(key('c1'))).toBeUndefined();
      expect(await s.get('/test/ep/c1')).toBeUndefined();
      // With nothing left to release, the records still go.
      await s.txn([{ op: 'put', key: '/test/ep/c2', value: 'x' }]);
      await ipam.release(key('c2'), [{ op: 'delete', key: '/test/ep/c2' }]);
      expect(await s.get('/test/ep/c2')).toBeUndefined();
      await s.close();
    });

    it('a refused record write leaves no allocation behind', async () => {
      const { s, ipam } = await make({ node: 'n1' });
      const pools = ['10.16.0.0/16'];
      const first = await ipam.allocate({ key: key('c0'), pools });
      const refused = await refusedPut(s, '/test/ep/c1');
      await expect(ipam.allocateNew({ key: key('c1'), pools, alongside: () => refused })).rejects.toThrow();
      expect(await ipam.get(key('c1'))).toBeUndefined();
      expect(await s.get('/test/ep/c1')).toBeUndefined();
      // The block was not written either: the next allocation gets the address c1 would have had.
      const fresh = new BlockIpam({ store: s, node: 'n1' });
      const next = await fresh.allocate({ key: key('c2'), pools });
      expect(addrToBigInt(next[0].address)).toBe(addrToBigInt(first[0].address) + 1n);
      expect(checkIpam(await loadIpamState(s), { now: Date.now(), graceMs: 0 }).filter((f) => f.kind !== 'empty-block')).toEqual([]);
      await s.close();
    });
  });
}
