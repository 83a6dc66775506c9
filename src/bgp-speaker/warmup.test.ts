import { describe, it, expect } from 'vitest';
import { warmUp } from './warmup';
import { fibPrefix, type FibBatch } from './rib';

describe('warmUp', () => {
  it('runs a synthetic table through decode, import and decision into kernel batches', async () => {
    const batches: FibBatch[] = [];
    // The batches are lists the RIB reuses nowhere else: copy what the test looks at.
    const n = await warmUp({ kernel: (b) => batches.push({ keys: [...b.keys], nextHops: [...b.nextHops] }), routes: 1000, rounds: 3 });
    expect(n).toBe(3000);
    expect(batches.reduce((k, b) => k + b.keys.length, 0)).toBe(3000);
    const prefixes = batches.flatMap((b) => b.keys.map(fibPrefix));
    expect(new Set(prefixes).size).toBe(1000); // the same table each round, in a fresh RIB
    expect(prefixes.slice(0, 2).sort()).toEqual(['100.64.0.0/26', '198.18.0.0/26']);
    expect(new Set(batches.flatMap((b) => b.nextHops.map((h) => h.join(','))))).toEqual(new Set(['192.0.2.1']));
  });

  it('runs without a kernel sink', async () => {
    expect(await warmUp({ routes: 10, rounds: 1 })).toBe(10);
  });
});
