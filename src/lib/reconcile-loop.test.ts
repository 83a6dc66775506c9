import { describe, it, expect } from 'vitest';
import { backoffMs, ReconcileLoop } from './reconcile-loop';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('backoffMs', () => {
  const cases: [number, number][] = [
    [1, 500],
    [2, 1000],
    [3, 2000],
    [7, 30_000],
    [50, 30_000],
  ];
  for (const [n, want] of cases) it(`failure ${n} -> ${want} ms`, () => expect(backoffMs(n)).toBe(want));
});

describe('ReconcileLoop', () => {
  it('a burst of kicks within the coalescing window is one run', async () => {
    let runs = 0;
    const loop = new ReconcileLoop({ name: 't', coalesceMs: 30, run: async () => void runs++ });
    for (let i = 0; i < 20; i++) loop.kick();
    await sleep(120);
    await loop.stop();
    expect(runs).toBe(1);
  });

  it('kicks during a run coalesce into exactly one more run; runs never overlap', async () => {
    let runs = 0;
    let inside = 0;
    let overlap = false;
    const loop = new ReconcileLoop({
      name: 't',
      run: async () => {
        overlap ||= inside > 0;
        inside++;
        runs++;
        await sleep(40);
        inside--;
      },
    });
    loop.kick();
    await sleep(10);
    for (let i = 0; i < 5; i++) loop.kick();
    await sleep(150);
    await loop.stop();
    expect({ runs, overlap }).toEqual({ runs: 2, overlap: false });
  });

  it('a failed run is retried with backoff, without a kick, until it succeeds; status tells', async () => {
    let calls = 0;
    const loop = new ReconcileLoop({
      name: 't',
      backoff: { initialMs: 20, maxMs: 80 },
      run: async () => {
        calls++;
        if (calls <= 3) throw new Error(`write ${calls} failed`);
      },
    });
    expect(await loop.runNow()).toBe(false);
    expect(loop.status).toMatchObject({ consecutiveFailures: 1, lastError: 'write 1 failed' });
    expect(loop.status.nextRun).toBeDefined();
    await sleep(20 + 40 + 80 + 100);
    await loop.stop();
    expect(calls).toBe(4);
    expect(loop.status).toMatchObject({ runs: 4, failures: 3, consecutiveFailures: 0, lastError: undefined });
  });

  it('runNow calls during a run share one run that starts after them all; each sees the state as of its call', async () => {
    let state = 0;
    const seen: number[] = []; // the state each run read when it started
    const loop = new ReconcileLoop({ name: 't', run: async () => {
      seen.push(state);
      await sleep(20);
    } });
    const first = loop.runNow();
    const during: Promise<number>[] = [];
    for (let i = 0; i < 19; i++) {
      state++; // a write made before this caller's runNow
      const at = state;
      during.push(loop.runNow().then((ok) => (expect(ok).toBe(true), Math.max(...seen) >= at ? at : -at)));
    }
    expect(await first).toBe(true);
    expect(await Promise.all(during)).toEqual(Array.from({ length: 19 }, (_, i) => i + 1));
    expect(seen).toEqual([0, 19]);
    const after = loop.runNow(); // nothing running now: a run of its own, at once
    state++;
    await after;
    expect(seen).toEqual([0, 19, 19]);
    await loop.stop();
  });

  it('a run that asks to run again is run again (periodic resync); stop ends it', async () => {
    let runs = 0;
    const loop = new ReconcileLoop({ name: 't', run: async () => (runs++, { againMs: 15 }) });
    await loop.runNow();
    await sleep(100);
    await loop.stop();
    const at = runs;
    await sleep(50);
    expect(runs).toBeGreaterThanOrEqual(4);
    expect(runs).toBe(at);
  });

  it('a kick during a backoff runs sooner than the retry', async () => {
    let calls = 0;
    const loop = new ReconcileLoop({ name: 't', backoff: { initialMs: 10_000, maxMs: 10_000 }, run: async () => {
      if (++calls === 1) throw new Error('fail');
    } });
    await loop.runNow();
    loop.kick();
    await sleep(30);
    await loop.stop();
    expect(calls).toBe(2);
  });
});
