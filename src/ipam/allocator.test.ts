import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { addrToBigInt, parsePrefix, prefixContains } from '../lib/cidr';
import { assign, blockFor, hasFree, newBlock, nextFreeBlock, release, selectPools, usedCount } from './allocator';
import { normalisePool, type Block, type IPPool } from './model';

const pool4 = normalisePool({ cidr: '10.0.0.0/24', blockSize: 29, reserved: ['10.0.0.3', '10.0.0.8/29'] });

describe('assign', () => {
  it('hands out never-used addresses in order, skipping reservations', () => {
    let b = newBlock(pool4, '10.0.0.0/29', 'n1');
    const got: string[] = [];
    for (;;) {
      const r = assign(b, pool4, `h${got.length}`, 1000);
      if (!r.ok) {
        expect(r.reason).toBe('full');
        break;
      }
      b = r.block;
      got.push(r.address);
    }
    expect(got).toEqual(['10.0.0.0', '10.0.0.1', '10.0.0.2', '10.0.0.4', '10.0.0.5', '10.0.0.6', '10.0.0.7']);
    expect(b.seq).toBe(7);
  });

  it('a wholly reserved block range is skipped by nextFreeBlock', () => {
    expect(nextFreeBlock(pool4, new Set(['10.0.0.0/29']))).toBe('10.0.0.16/29');
    expect(nextFreeBlock(pool4, new Set())).toBe('10.0.0.0/29');
    const tiny = normalisePool({ cidr: '10.1.0.0/30', blockSize: 31 });
    expect(nextFreeBlock(tiny, new Set(['10.1.0.0/31', '10.1.0.2/31']))).toBeUndefined();
  });

  it.each<[string, string, string | undefined]>([
    ['10.0.0.0/24', '10.0.0.77', '10.0.0.72/29'],
    ['10.0.0.0/24', '10.0.1.1', undefined],
    ['fd00::/120', 'fd00::ff', 'fd00::f8/125'],
  ])('blockFor(%s, %s) = %s', (cidr, addr, want) => {
    const p = normalisePool({ cidr, blockSize: cidr.includes(':') ? 125 : 29 });
    expect(blockFor(p, addr)).toBe(want);
  });

  it('reuses freed addresses oldest-first, after the cooldown', () => {
    let b = newBlock(pool4, '10.0.0.16/29', 'n1');
    const seqOf: Record<string, number> = {};
    for (let i = 0; i < 8; i++) {
      const r = assign(b, pool4, `h${i}`, 0);
      if (!r.ok) throw new Error(r.reason);
      b = r.block;
      seqOf[r.address] = r.seq;
    }
    expect(assign(b, pool4, 'x', 0)).toEqual({ ok: false, reason: 'full' });
    for (const [addr, t] of [['10.0.0.20', 100], ['10.0.0.17', 200]] as const) {
      const r = release(b, addr, t, { handle: `h${Number(addr.split('.')[3]) - 16}`, seq: seqOf[addr] });
      if (!r.ok) throw new Error(r.reason);
      b = r.block;
    }
    expect(assign(b, pool4, 'x', 150, { cooldownMs: 100 })).toEqual({ ok: false, reason: 'cooldown' });
    const r1 = assign(b, pool4, 'x', 250, { cooldownMs: 100 });
    expect(r1.ok && r1.address).toBe('10.0.0.20');
    const r2 = r1.ok ? assign(r1.block, pool4, 'y', 250, { cooldownMs: 100 }) : r1;
    expect(r2.ok).toBe(false);
    const r3 = r1.ok ? assign(r1.block, pool4, 'y', 300, { cooldownMs: 100 }) : r1;
    expect(r3.ok && r3.address).toBe('10.0.0.17');
  });

  it('a specific request: in range, not used, not reserved', () => {
    const b = newBlock(pool4, '10.0.0.0/29', 'n1');
    const r = assign(b, pool4, 'h', 0, { requested: '10.0.0.5' });
    expect(r.ok && r.address).toBe('10.0.0.5');
    expect(r.ok && assign(r.block, pool4, 'h2', 0, { requested: '10.0.0.5' })).toEqual({ ok: false, reason: 'in-use' });
    expect(assign(b, pool4, 'h', 0, { requested: '10.0.0.3' })).toEqual({ ok: false, reason: 'reserved' });
    expect(assign(b, pool4, 'h', 0, { requested: '10.0.0.9' })).toEqual({ ok: false, reason: 'outside' });
    expect(assign(b, pool4, 'h', 0, { requested: 'fd00::1' })).toEqual({ ok: false, reason: 'outside' });
  });

  it('marks borrowed entries with the borrower', () => {
    const r = assign(newBlock(pool4, '10.0.0.16/29', 'n1'), pool4, 'h', 0, { borrower: 'n2' });
    expect(r.ok && r.block.used[0]).toEqual({ h: 'h', s: 1, b: 'n2' });
  });
});

describe('release', () => {
  it('a stale release (older sequence or other handle) changes nothing', () => {
    let b = newBlock(pool4, '10.0.0.16/29', 'n1');
    const a = assign(b, pool4, 'old', 0, { requested: '10.0.0.16' });
    if (!a.ok) throw new Error();
    const freed = release(a.block, '10.0.0.16', 10, { handle: 'old', seq: a.seq });
    if (!freed.ok) throw new Error();
    expect(freed.block.emptySince).toBe(10);
    const again = assign(freed.block, pool4, 'old', 20, { requested: '10.0.0.16' });
    if (!again.ok) throw new Error();
    b = again.block;
    expect(release(b, '10.0.0.16', 30, { handle: 'old', seq: a.seq })).toEqual({ ok: false, reason: 'stale' });
    expect(release(b, '10.0.0.16', 30, { handle: 'other', seq: again.seq })).toEqual({ ok: false, reason: 'stale' });
    expect(release(b, '10.0.0.17', 30)).toEqual({ ok: false, reason: 'not-allocated' });
    expect(release(b, '10.0.0.16', 30, { handle: 'old', seq: again.seq }).ok).toBe(true);
  });
});

describe('selectPools', () => {
  const pools: IPPool[] = [
    normalisePool({ cidr: '10.0.0.0/16' }),
    normalisePool({ cidr: '10.1.0.0/16', namespaces: ['prod'] }),
    normalisePool({ cidr: '10.2.0.0/16', tenants: ['acme'] }),
    normalisePool({ cidr: '10.3.0.0/16', disabled: true }),
    normalisePool({ cidr: '10.4.0.0/16', nodeSelector: { zone: 'b' } }),
    normalisePool({ cidr: 'fd00::/64' }),
  ];
  it.each<[string, Record<string, string>, Record<string, string>, number, string[]]>([
    ['default namespace', {}, { zone: 'a' }, 4, ['10.0.0.0/16']],
    ['namespace-scoped pool wins', { namespace: 'prod' }, { zone: 'a' }, 4, ['10.1.0.0/16']],
    ['tenant-scoped pool wins', { tenant: 'acme', namespace: 'x' }, {}, 4, ['10.2.0.0/16']],
    ['node selector admits zone b', {}, { zone: 'b' }, 4, ['10.0.0.0/16', '10.4.0.0/16']],
    ['IPv6', { namespace: 'prod' }, {}, 6, ['fd00::/64']],
  ])('%s', (_n, attrs, labels, fam, want) => {
    expect(selectPools(pools, fam as 4 | 6, attrs, labels).map((p) => p.cidr)).toEqual(want);
  });
});

describe('normalisePool', () => {
  it('defaults: /26 for IPv4, /122 for IPv6, routed, enabled', () => {
    expect(normalisePool({ cidr: '10.0.0.0/16' })).toEqual({ cidr: '10.0.0.0/16', blockSize: 26, nodeSelector: {}, disabled: false, mode: 'routed', reserved: [] });
    expect(normalisePool({ cidr: 'fd00::/64' }).blockSize).toBe(122);
  });
  it.each<[Partial<IPPool> & { cidr: string }, RegExp]>([
    [{ cidr: '10.0.0.0/16', blockSize: 8 }, /blockSize/],
    [{ cidr: '10.0.0.0/8', blockSize: 14 }, /65536/],
    [{ cidr: '10.0.0.1/16' }, /host bits/],
    [{ cidr: '10.0.0.0/16', mode: 'ipip' as never }, /mode/],
    [{ cidr: '10.0.0.0/16', reserved: ['10.1.0.1'] }, /outside/],
  ])('rejects %j', (p, re) => expect(() => normalisePool(p)).toThrow(re));
});

/** A random sequence of operations on one block, checked against its invariants. */
describe('allocator properties (fast-check)', () => {
  type Op = { kind: 'alloc' } | { kind: 'request'; ord: number } | { kind: 'release'; pick: number } | { kind: 'stale'; pick: number };
  const op: fc.Arbitrary<Op> = fc.oneof(
    fc.constant<Op>({ kind: 'alloc' }),
    fc.integer({ min: 0, max: 31 }).map<Op>((ord) => ({ kind: 'request', ord })),
    fc.nat().map<Op>((pick) => ({ kind: 'release', pick })),
    fc.nat().map<Op>((pick) => ({ kind: 'stale', pick })),
  );

  it('never gives an address twice, stays in the pool, frees on release, never hands out reservations', () => {
    fc.assert(
      fc.property(
        fc.array(op, { maxLength: 120 }),
        fc.uniqueArray(fc.integer({ min: 0, max: 31 }), { maxLength: 6 }),
        fc.integer({ min: 0, max: 50 }),
        (ops, reservedOrds, cooldown) => {
          const pool = normalisePool({ cidr: '10.9.0.0/24', blockSize: 27, reserved: reservedOrds.map((o) => `10.9.0.${32 + o}`) });
          const pp = parsePrefix(pool.cidr);
          let b: Block = newBlock(pool, '10.9.0.32/27', 'n');
          /** address -> [handle, seq] of what the model believes is held. */
          const held = new Map<string, [string, number]>();
          const freedHistory: [string, number][] = [];
          let t = 1;
          let n = 0;
          for (const o of ops) {
            t += 7;
            if (o.kind === 'alloc' || o.kind === 'request') {
              const h = `h${n++}`;
              const requested = o.kind === 'request' ? `10.9.0.${32 + o.ord}` : undefined;
              const r = assign(b, pool, h, t, { cooldownMs: cooldown, requested });
              if (r.ok) {
                expect(held.has(r.address)).toBe(false);
                expect(prefixContains(pp, addrToBigInt(r.address))).toBe(true);
                expect(reservedOrds.map((x) => `10.9.0.${32 + x}`)).not.toContain(r.address);
                if (requested) expect(r.address).toBe(requested);
                else {
                  // Not reused inside its cooldown.
                  const last = freedHistory.filter(([a]) => a === r.address).pop();
                  if (last) expect(t - last[1]).toBeGreaterThanOrEqual(cooldown);
                }
                held.set(r.address, [h, r.seq]);
                b = r.block;
              } else if (requested) {
                expect(held.has(requested) || (o.kind === 'request' && reservedOrds.includes(o.ord))).toBe(true);
              } else {
                // Full or cooling: no free, unreserved, cooled address exists.
                const reservedCount = reservedOrds.length;
                expect(held.size + reservedCount).toBeGreaterThan(0);
                expect(hasFree(b, pool, t, cooldown)).toBe(false);
              }
            } else if (held.size > 0) {
              const [addr, [h, s]] = [...held][o.pick % held.size];
              if (o.kind === 'stale') {
                expect(release(b, addr, t, { handle: h, seq: s + 1 })).toEqual({ ok: false, reason: 'stale' });
              } else {
                const r = release(b, addr, t, { handle: h, seq: s });
                expect(r.ok).toBe(true);
                if (r.ok) b = r.block;
                held.delete(addr);
                freedHistory.push([addr, t]);
                expect(release(b, addr, t, { handle: h, seq: s })).toEqual({ ok: false, reason: 'not-allocated' });
              }
            }
            expect(usedCount(b)).toBe(held.size);
            expect(b.free.length + usedCount(b)).toBe(32);
          }
        },
      ),
      { numRuns: 300 },
    );
  });
});
