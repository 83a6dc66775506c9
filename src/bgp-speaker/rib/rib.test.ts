import { describe, it, expect } from 'vitest';
import { Rib, comparePaths, selectBest, PrefixFilter, parsePrefixRule, LOCAL_PEER_ID, fibPrefix, type FibBatch, type Path, type RibPeer } from './index';
import fc from 'fast-check';
import { IPV4_UNICAST, IPV6_UNICAST, v4PrefixKey, type RouteAttrs, type FamilyChanges } from '../codec';

const LOCAL = { asn: 65000, routerId: '10.0.0.1' };
const attrs = (o: Partial<RouteAttrs> = {}): RouteAttrs => ({ origin: 0, asPath: [{ type: 2, asns: [65001] }], nextHop: '192.0.2.1', ...o });
const path = (o: Partial<Path> & { a?: Partial<RouteAttrs> } = {}): Path => ({ peerId: 'p', pathId: 0, ebgp: true, routerId: '1.1.1.1', peerAddress: '192.0.2.1', ...o, attrs: attrs(o.a) });

describe('decision process (§9.1.2.2)', () => {
  const table: { name: string; a: Path; b: Path; reason: string }[] = [
    { name: 'higher LOCAL_PREF', a: path({ a: { localPref: 200 } }), b: path({ a: { localPref: 100, asPath: [] } }), reason: 'local-pref' },
    { name: 'missing LOCAL_PREF counts as 100', a: path({ a: { localPref: 101 } }), b: path(), reason: 'local-pref' },
    { name: 'locally originated', a: path({ peerId: LOCAL_PEER_ID, a: { asPath: [{ type: 2, asns: [1, 2, 3] }] } }), b: path(), reason: 'locally-originated' },
    { name: 'shorter AS_PATH', a: path(), b: path({ a: { asPath: [{ type: 2, asns: [65001, 65002] }] } }), reason: 'as-path-length' },
    { name: 'AS_SET counts as one', a: path({ a: { asPath: [{ type: 2, asns: [65001] }, { type: 1, asns: [1, 2, 3] }] } }), b: path({ a: { asPath: [{ type: 2, asns: [65001, 2, 3] }] } }), reason: 'as-path-length' },
    { name: 'lower ORIGIN', a: path(), b: path({ a: { origin: 2 } }), reason: 'origin' },
    { name: 'lower MED from the same AS', a: path({ a: { med: 5 } }), b: path({ a: { med: 10 } }), reason: 'med' },
    { name: 'eBGP over iBGP', a: path({ a: { med: 50, asPath: [{ type: 2, asns: [65009] }] } }), b: path({ ebgp: false, a: { med: 5 } }), reason: 'ebgp-over-ibgp' },
    { name: 'lower router id', a: path({ routerId: '1.1.1.1' }), b: path({ routerId: '2.2.2.2' }), reason: 'router-id' },
    { name: 'ORIGINATOR_ID stands in for router id', a: path({ routerId: '9.9.9.9', a: { originatorId: '1.0.0.0' } }), b: path({ routerId: '2.2.2.2' }), reason: 'router-id' },
    { name: 'shorter CLUSTER_LIST', a: path({ a: { clusterList: ['1.1.1.1'] } }), b: path({ a: { clusterList: ['1.1.1.1', '2.2.2.2'] } }), reason: 'cluster-list-length' },
    { name: 'lower peer address', a: path({ peerAddress: '192.0.2.1' }), b: path({ peerAddress: '192.0.2.10' }), reason: 'peer-address' },
    { name: 'lower IPv6 peer address, compared as a number', a: path({ peerAddress: '2001:db8::2' }), b: path({ peerAddress: '2001:db8::1:0' }), reason: 'peer-address' },
    { name: 'IPv6 peer address: :: expands in the middle', a: path({ peerAddress: 'fd00::ffff' }), b: path({ peerAddress: 'fd00:0:0:1::' }), reason: 'peer-address' },
    { name: 'IPv6 peer address: case and leading zeros do not count', a: path({ peerAddress: 'fd00::a' }), b: path({ peerAddress: 'FD00::00B' }), reason: 'peer-address' },
    { name: 'IPv4 peer address before IPv6', a: path({ peerAddress: '255.255.255.255' }), b: path({ peerAddress: '::1' }), reason: 'peer-address' },
    { name: 'fresh over stale', a: path({ a: { asPath: [{ type: 2, asns: [1, 2, 3] }] } }), b: path({ stale: true }), reason: 'not-stale' },
  ];
  for (const t of table) {
    it(t.name, () => {
      expect(comparePaths(t.a, t.b)).toEqual({ order: expect.any(Number), reason: t.reason });
      expect(comparePaths(t.a, t.b).order).toBeLessThan(0);
      expect(comparePaths(t.b, t.a).order).toBeGreaterThan(0);
      // The winner does not depend on the order of the candidates.
      expect(selectBest([t.a, t.b])).toMatchObject({ best: t.a, reason: t.reason });
      expect(selectBest([t.b, t.a])).toMatchObject({ best: t.a, reason: t.reason });
    });
  }
  it('MED is not compared across neighbor ASes', () => {
    const a = path({ peerAddress: '192.0.2.1', a: { med: 100, asPath: [{ type: 2, asns: [65001] }] } });
    const b = path({ peerAddress: '192.0.2.2', a: { med: 1, asPath: [{ type: 2, asns: [65002] }] } });
    // b's lower MED does not count: the tie goes on to the peer address, where a wins.
    expect(selectBest([b, a])).toMatchObject({ best: a, reason: 'peer-address' });
  });
  it('ECMP: equal up to the IGP step, distinct next hops', () => {
    const a = path({ routerId: '1.1.1.1', a: { nextHop: '192.0.2.1' } });
    const b = path({ routerId: '2.2.2.2', a: { nextHop: '192.0.2.2' } });
    const c = path({ routerId: '3.3.3.3', a: { nextHop: '192.0.2.3', asPath: [{ type: 2, asns: [1, 2] }] } });
    expect(selectBest([c, b, a], 4).multipath).toEqual([a, b]);
    expect(selectBest([c, b, a], 1).multipath).toEqual([a]);
  });
});

describe('prefix filters', () => {
  const table = [
    { rules: ['10.0.0.0/16'], prefix: '10.0.5.0/26', ok: true },
    { rules: ['10.0.0.0/16'], prefix: '10.1.0.0/26', ok: false },
    { rules: ['10.0.0.0/16'], prefix: '10.0.0.0/8', ok: false },
    { rules: ['10.0.0.0/16 le 26'], prefix: '10.0.0.1/32', ok: false },
    { rules: ['10.0.0.0/16 le 26'], prefix: '10.0.0.64/26', ok: true },
    { rules: ['10.0.0.0/17'], prefix: '10.0.128.0/24', ok: false },
    { rules: ['2001:db8::/32'], prefix: '2001:db8:1::/48', ok: true },
    { rules: ['2001:db8::/32'], prefix: '10.0.0.0/24', ok: false },
  ];
  for (const t of table) it(`${t.rules} ${t.ok ? 'matches' : 'rejects'} ${t.prefix}`, () => expect(new PrefixFilter(t.rules.map(parsePrefixRule)).matches(t.prefix)).toBe(t.ok));
});

// A small topology: we are AS 65000 (10.0.0.1); eBGP peer E (65001), iBGP peers I1, I2, RR client C1, C2.
function topo(opts: { rr?: boolean; maxPaths?: number; ebgp?: Partial<RibPeer> } = {}) {
  const rib = new Rib({ ...LOCAL, maxPaths: opts.maxPaths });
  const peers: RibPeer[] = [
    { id: '192.0.2.1', address: '192.0.2.1', asn: 65001, selfNextHop: { v4: '192.0.2.100', v6: '2001:db8::100' }, importPrefixes: [{ prefix: '10.0.0.0/8' }, { prefix: '2001:db8::/32' }], exportPrefixes: [{ prefix: '172.16.0.0/12' }], ...opts.ebgp },
    { id: '198.51.100.1', address: '198.51.100.1', asn: 65000, selfNextHop: { v4: '198.51.100.100' } },
    { id: '198.51.100.2', address: '198.51.100.2', asn: 65000, selfNextHop: { v4: '198.51.100.100' }, nextHopSelf: true },
    ...(opts.rr
      ? [
          { id: '198.51.100.11', address: '198.51.100.11', asn: 65000, rrClient: true, selfNextHop: { v4: '198.51.100.100' } },
          { id: '198.51.100.12', address: '198.51.100.12', asn: 65000, rrClient: true, selfNextHop: { v4: '198.51.100.100' } },
        ]
      : []),
  ];
  peers.forEach((p, i) => {
    rib.addPeer(p);
    rib.peerUp(p.id, { routerId: `1.0.0.${i + 1}`, families: [IPV4_UNICAST, IPV6_UNICAST] });
  });
  flushAll(rib);
  return rib;
}
const v4 = (prefixes: string[], a: Partial<RouteAttrs> = {}, withdraw: string[] = []): FamilyChanges[] => [
  { family: IPV4_UNICAST, announce: prefixes.map((prefix) => ({ prefix })), withdraw: withdraw.map((prefix) => ({ prefix })), attrs: attrs(a) },
];
/** One flush, and the kernel changes it queued (the speaker takes those a batch at a time). */
const flushAll = (rib: Rib) => ({ out: rib.flush().out, fib: changes(rib.takeFib()) });
/** A kernel batch as (prefix, next hops) pairs. */
const changes = (b: FibBatch) => b.keys.map((k, i) => ({ prefix: fibPrefix(k), nextHops: b.nextHops[i] }));
const sentTo = (out: ReturnType<Rib['flush']>['out'], id: string) => out.get(id)?.announce.flatMap((g) => g.prefixes.map((p) => ({ p, a: g.attrs }))) ?? [];

describe('RIB', () => {
  it('imports inside the pools only, installs, and reflects nothing to iBGP from iBGP', () => {
    const rib = topo();
    const r = rib.applyUpdate('192.0.2.1', v4(['10.1.0.0/26', '10.1.0.64/26', '192.168.0.0/24'], { nextHop: '192.0.2.1' }));
    expect(r).toMatchObject({ accepted: 2, filtered: 1 });
    const { fib, out } = flushAll(rib);
    expect(fib).toEqual([
      { prefix: '10.1.0.0/26', nextHops: ['192.0.2.1'] },
      { prefix: '10.1.0.64/26', nextHops: ['192.0.2.1'] },
    ]);
    // eBGP-learned goes to iBGP with LOCAL_PREF; next hop kept unless next-hop-self.
    const i1 = sentTo(out, '198.51.100.1');
    expect(i1.map((x) => x.p)).toEqual(['10.1.0.0/26', '10.1.0.64/26']);
    expect(i1[0].a).toMatchObject({ nextHop: '192.0.2.1', localPref: 100, asPath: [{ type: 2, asns: [65001] }] });
    expect(sentTo(out, '198.51.100.2')[0].a.nextHop).toBe('198.51.100.100');
    expect(out.get('192.0.2.1')).toBeUndefined(); // never back to the sender
    // iBGP-learned does not go to other iBGP peers (split horizon) without reflection.
    rib.applyUpdate('198.51.100.1', v4(['10.9.0.0/24'], { localPref: 100, asPath: [] }));
    const o2 = flushAll(rib).out;
    expect(o2.get('198.51.100.2')).toBeUndefined();
    expect(o2.get('192.0.2.1')).toBeUndefined(); // 10.9/24 is outside the eBGP export list
  });

  it('RFC 8212: eBGP without policy imports and exports nothing', () => {
    const rib = topo({ ebgp: { importPrefixes: undefined, exportPrefixes: undefined } });
    expect(rib.applyUpdate('192.0.2.1', v4(['10.1.0.0/26'])).filtered).toBe(1);
    rib.originate('172.16.0.0/24');
    const { out } = flushAll(rib);
    expect(out.get('192.0.2.1')).toBeUndefined();
    expect(sentTo(out, '198.51.100.1').map((x) => x.p)).toEqual(['172.16.0.0/24']);
  });

  it('exports originated routes to eBGP with our AS and next hop, and withdraws them', () => {
    const rib = topo();
    rib.originate('172.16.1.0/24', { communities: [1] });
    rib.originate('172.99.0.0/24'); // outside the export list
    let { out, fib } = flushAll(rib);
    expect(fib).toEqual([]); // originated routes are not installed into the kernel
    expect(sentTo(out, '192.0.2.1')).toEqual([{ p: '172.16.1.0/24', a: { origin: 0, asPath: [{ type: 2, asns: [65000] }], nextHop: '192.0.2.100', communities: [1] } }]);
    expect(sentTo(out, '198.51.100.1')[0].a).toMatchObject({ asPath: [], nextHop: '198.51.100.100', localPref: 100 });
    rib.withdrawOriginated('172.16.1.0/24');
    ({ out } = flushAll(rib));
    expect(out.get('192.0.2.1')).toEqual({ announce: [], withdraw: [{ family: IPV4_UNICAST, prefixes: ['172.16.1.0/24'] }] });
  });

  it('rejects AS path loops from eBGP and drops their LOCAL_PREF', () => {
    const rib = topo();
    expect(rib.applyUpdate('192.0.2.1', v4(['10.1.0.0/24'], { asPath: [{ type: 2, asns: [65001, 65000] }] })).filtered).toBe(1);
    rib.applyUpdate('192.0.2.1', v4(['10.2.0.0/24'], { localPref: 999 }));
    flushAll(rib);
    expect(rib.destination('10.2.0.0/24')!.best!.attrs.localPref).toBeUndefined();
  });

  it('route reflection: client routes go to everyone with ORIGINATOR_ID and CLUSTER_LIST; non-client routes only to clients', () => {
    const rib = topo({ rr: true });
    rib.applyUpdate('198.51.100.11', v4(['10.5.0.0/24'], { asPath: [], localPref: 100, nextHop: '198.51.100.11' }));
    let { out } = flushAll(rib);
    for (const id of ['198.51.100.1', '198.51.100.2', '198.51.100.12']) {
      expect(sentTo(out, id)[0]?.a, id).toMatchObject({ originatorId: '1.0.0.4', clusterList: ['10.0.0.1'], nextHop: '198.51.100.11' });
    }
    expect(out.get('198.51.100.11')).toBeUndefined();
    rib.applyUpdate('198.51.100.1', v4(['10.6.0.0/24'], { asPath: [], localPref: 100, nextHop: '198.51.100.1' }));
    ({ out } = flushAll(rib));
    expect([...out.keys()].sort()).toEqual(['198.51.100.11', '198.51.100.12']);
  });

  it('route reflection loop checks: our ORIGINATOR_ID or CLUSTER_ID', () => {
    const rib = topo({ rr: true });
    expect(rib.applyUpdate('198.51.100.1', v4(['10.7.0.0/24'], { asPath: [], originatorId: '10.0.0.1' })).filtered).toBe(1);
    expect(rib.applyUpdate('198.51.100.1', v4(['10.7.0.0/24'], { asPath: [], originatorId: '1.2.3.4', clusterList: ['9.9.9.9', '10.0.0.1'] })).filtered).toBe(1);
    expect(rib.applyUpdate('198.51.100.1', v4(['10.7.0.0/24'], { asPath: [], originatorId: '1.2.3.4', clusterList: ['9.9.9.9'] })).accepted).toBe(1);
  });

  it('ECMP installs all equal next hops; a withdrawal shrinks the set', () => {
    const rib = topo({ maxPaths: 4 });
    rib.applyUpdate('198.51.100.1', v4(['10.8.0.0/24'], { asPath: [{ type: 2, asns: [65010] }], nextHop: '198.51.100.1' }));
    rib.applyUpdate('198.51.100.2', v4(['10.8.0.0/24'], { asPath: [{ type: 2, asns: [65010] }], nextHop: '198.51.100.2' }));
    expect(flushAll(rib).fib).toEqual([{ prefix: '10.8.0.0/24', nextHops: ['198.51.100.1', '198.51.100.2'] }]);
    rib.applyUpdate('198.51.100.1', v4([], {}, ['10.8.0.0/24']));
    expect(flushAll(rib).fib).toEqual([{ prefix: '10.8.0.0/24', nextHops: ['198.51.100.2'] }]);
    rib.applyUpdate('198.51.100.2', v4([], {}, ['10.8.0.0/24']));
    expect(flushAll(rib).fib).toEqual([{ prefix: '10.8.0.0/24', nextHops: [] }]);
    expect(rib.destination('10.8.0.0/24')).toBeUndefined();
  });

  it('max-prefix per peer', () => {
    const rib = topo({ ebgp: { maxPrefix: 2 } });
    expect(rib.applyUpdate('192.0.2.1', v4(['10.1.0.0/24', '10.2.0.0/24'])).maxPrefixExceeded).toBeUndefined();
    expect(rib.applyUpdate('192.0.2.1', v4(['10.3.0.0/24'])).maxPrefixExceeded).toBe(true);
  });

  it('graceful restart helper: routes stay stale, End-of-RIB sweeps what was not refreshed', () => {
    const rib = topo();
    rib.applyUpdate('192.0.2.1', v4(['10.1.0.0/24', '10.2.0.0/24']));
    flushAll(rib);
    rib.peerDown('192.0.2.1', { keepStale: [IPV4_UNICAST] });
    expect(flushAll(rib).fib).toEqual([]); // still installed
    expect(rib.destination('10.1.0.0/24')!.best!.stale).toBe(true);
    rib.peerUp('192.0.2.1', { routerId: '1.0.0.1', families: [IPV4_UNICAST] });
    rib.applyUpdate('192.0.2.1', v4(['10.1.0.0/24']));
    expect(rib.sweepStale('192.0.2.1', IPV4_UNICAST)).toBe(1);
    const { fib } = flushAll(rib);
    expect(fib).toEqual([{ prefix: '10.2.0.0/24', nextHops: [] }]);
    expect(rib.destination('10.1.0.0/24')!.best!.stale).toBeUndefined();
  });

  it('session down without graceful restart removes routes and stops sending', () => {
    const rib = topo();
    rib.applyUpdate('192.0.2.1', v4(['10.1.0.0/24']));
    flushAll(rib);
    rib.peerDown('198.51.100.1');
    rib.peerDown('192.0.2.1');
    const { fib, out } = flushAll(rib);
    expect(fib).toEqual([{ prefix: '10.1.0.0/24', nextHops: [] }]);
    expect(out.has('198.51.100.1')).toBe(false);
    expect(sentTo(out, '198.51.100.2')).toEqual([]);
    expect(out.get('198.51.100.2')!.withdraw).toEqual([{ family: IPV4_UNICAST, prefixes: ['10.1.0.0/24'] }]);
  });

  it('a peer coming up gets the full table; stats count it', () => {
    const rib = topo();
    rib.originate('172.16.0.0/24');
    rib.applyUpdate('192.0.2.1', v4(['10.1.0.0/24']));
    flushAll(rib);
    rib.peerDown('198.51.100.1');
    flushAll(rib);
    rib.peerUp('198.51.100.1', { routerId: '1.0.0.2', families: [IPV4_UNICAST] });
    const { out } = flushAll(rib);
    expect(sentTo(out, '198.51.100.1').map((x) => x.p).sort()).toEqual(['10.1.0.0/24', '172.16.0.0/24']);
    expect(rib.stats('198.51.100.1').sent).toBe(2);
    expect(rib.stats('192.0.2.1')).toMatchObject({ received: 1, accepted: 1 });
  });

  it('the result does not depend on the order updates arrive', () => {
    const updates: [string, FamilyChanges[]][] = [
      ['198.51.100.1', v4(['10.8.0.0/24', '10.9.0.0/24'], { asPath: [{ type: 2, asns: [65010] }], nextHop: '198.51.100.1', localPref: 100 })],
      ['198.51.100.2', v4(['10.8.0.0/24'], { asPath: [{ type: 2, asns: [65010] }], nextHop: '198.51.100.2', localPref: 150 })],
      ['192.0.2.1', v4(['10.9.0.0/24', '10.10.0.0/24'], { nextHop: '192.0.2.1' })],
      ['198.51.100.2', v4([], {}, ['10.10.0.0/24'])],
    ];
    const run = (order: number[], squash: boolean) => {
      const rib = topo();
      for (const i of order) {
        rib.applyUpdate(...updates[i]);
        if (!squash) flushAll(rib);
      }
      flushAll(rib);
      return [...rib.destinations()].map((d) => `${d.prefix}:${d.best!.peerId}:${d.reason}`).sort();
    };
    const base = run([0, 1, 2, 3], false);
    expect(base).toEqual(['10.10.0.0/24:192.0.2.1:only-path', '10.8.0.0/24:198.51.100.2:local-pref', '10.9.0.0/24:192.0.2.1:ebgp-over-ibgp']);
    expect(run([3, 2, 1, 0], false)).toEqual(base);
    expect(run([1, 3, 0, 2], true)).toEqual(base);
  });
});

describe('AS prepend on export to eBGP (RFC 4271 §5.1.2)', () => {
  const prepended = (asns: number[]) => {
    const rib = new Rib({ asn: 65000, routerId: '10.0.0.1' });
    rib.addPeer({ id: 'in', address: '192.0.2.1', asn: 65001, selfNextHop: {}, importPrefixes: [{ prefix: '0.0.0.0/0', maxLength: 32 }] });
    rib.addPeer({ id: 'out', address: '192.0.2.2', asn: 65002, selfNextHop: { v4: '192.0.2.9' }, exportPrefixes: [{ prefix: '0.0.0.0/0', maxLength: 32 }] });
    rib.peerUp('in', { routerId: '1.1.1.1', families: [IPV4_UNICAST] });
    rib.peerUp('out', { routerId: '2.2.2.2', families: [IPV4_UNICAST] });
    rib.applyUpdate('in', [{ family: IPV4_UNICAST, announce: [{ prefix: '10.1.0.0/24' }], withdraw: [], attrs: { origin: 0, asPath: [{ type: 2, asns }], nextHop: '192.0.2.1' } }]);
    return flushAll(rib).out.get('out')!.announce[0].attrs.asPath;
  };
  it('joins a sequence with room', () => {
    expect(prepended([65001, 7])).toEqual([{ type: 2, asns: [65000, 65001, 7] }]);
  });
  it('starts a new segment in front of a full (255-AS) sequence', () => {
    const full = [65001, ...Array.from({ length: 254 }, (_, i) => 1000 + i)];
    const p = prepended(full);
    expect(p.map((s) => s.asns.length)).toEqual([1, 255]);
    expect(p[0].asns).toEqual([65000]);
  });
});

describe('prefix filter on RIB keys', () => {
  const rules = ['10.0.0.0/9', '10.128.0.0/16 le 24', '192.168.1.128/25', '0.0.0.0/0 le 0', '2001:db8::/32'].map(parsePrefixRule);
  it('matchesKey agrees with matches for any IPv4 prefix', () => {
    const f = new PrefixFilter(rules);
    fc.assert(
      fc.property(fc.constantFrom(10, 192, 0, 11), fc.integer({ min: 0, max: 2 ** 24 - 1 }), fc.integer({ min: 0, max: 32 }), (hi, lo, len) => {
        const a = hi * 2 ** 24 + lo;
        const text = `${a >>> 24}.${(a >>> 16) & 255}.${(a >>> 8) & 255}.${a & 255}/${len}`;
        const masked = len ? Math.floor(a / 2 ** (32 - len)) * 2 ** (32 - len) : 0;
        const canonical = `${masked >>> 24}.${(masked >>> 16) & 255}.${(masked >>> 8) & 255}.${masked & 255}/${len}`;
        expect(f.matchesKey(v4PrefixKey(text)!)).toBe(f.matches(canonical));
      }),
    );
    expect(f.matchesKey('2001:db8:1::/48')).toBe(true);
  });
});

describe('RIB kernel queue', () => {
  it('coalesces changes to one prefix, hands them out in batches, oldest first', () => {
    const rib = topo({ maxPaths: 4 });
    rib.applyUpdate('198.51.100.1', v4(['10.8.0.0/24', '10.8.1.0/24', '10.8.2.0/24'], { asPath: [{ type: 2, asns: [65010] }], nextHop: '198.51.100.1' }));
    rib.flush();
    rib.applyUpdate('198.51.100.2', v4(['10.8.0.0/24'], { asPath: [{ type: 2, asns: [65010] }], nextHop: '198.51.100.2' }));
    rib.flush();
    expect(rib.fibPending()).toBe(3);
    expect(rib.isFibPending('10.8.0.0/24')).toBe(true);
    expect(changes(rib.takeFib(2))).toEqual([
      { prefix: '10.8.0.0/24', nextHops: ['198.51.100.1', '198.51.100.2'] },
      { prefix: '10.8.1.0/24', nextHops: ['198.51.100.1'] },
    ]);
    expect(changes(rib.takeFib())).toEqual([{ prefix: '10.8.2.0/24', nextHops: ['198.51.100.1'] }]);
    expect(rib.fibPending()).toBe(0);
  });

  it('a prefix that goes and comes back before the kernel is told: removal, then the new route', () => {
    const rib = topo();
    rib.applyUpdate('192.0.2.1', v4(['10.1.0.0/24'], { nextHop: '192.0.2.1' }));
    flushAll(rib);
    rib.applyUpdate('192.0.2.1', v4([], {}, ['10.1.0.0/24']));
    rib.flush();
    rib.applyUpdate('192.0.2.1', v4(['10.1.0.0/24'], { nextHop: '192.0.2.2' }));
    rib.flush();
    expect(changes(rib.takeFib())).toEqual([
      { prefix: '10.1.0.0/24', nextHops: [] },
      { prefix: '10.1.0.0/24', nextHops: ['192.0.2.2'] },
    ]);
  });
});
