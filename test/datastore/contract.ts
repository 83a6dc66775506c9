/**
 * The Store contract: one suite, run unchanged against every backend.
 * `open()` returns a fresh, empty store (and may be called several times to
 * get independent clients on the same data for the concurrency cases).
 */
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import type { Store, WatchEvent } from '../../src/datastore';
import { isTernError } from '../../src/lib/errors';
import { waitFor } from '../sandbox';

export interface ContractTarget {
  /** A new client on the shared data; `ns` isolates one test's keys. */
  open(): Promise<Store>;
}

async function expectCode(p: Promise<unknown>, code: string): Promise<void> {
  await expect(p).rejects.toSatisfy((e: unknown) => isTernError(e) && e.code === code);
}

export function storeContract(name: string, target: () => ContractTarget): void {
  describe(`Store contract: ${name}`, () => {
    let s: Store;
    let n = 0;
    /** A fresh key namespace per test, so tests never see each other's keys. */
    const ns = () => `/t${++n}-${Date.now()}/`;
    beforeAll(async () => {
      s = await target().open();
    });
    afterAll(async () => {
      await s?.close();
    });

    it('get of a missing key is undefined', async () => {
      expect(await s.get(ns() + 'nope')).toBeUndefined();
    });

    it('create, then get returns the value and revisions', async () => {
      const k = ns() + 'a';
      const rev = await s.create(k, 'v1');
      const kv = await s.get(k);
      expect(kv).toEqual({ key: k, value: 'v1', modRevision: rev, createRevision: rev });
      expect(await s.revision()).toBeGreaterThanOrEqual(rev);
    });

    it('create of an existing key is ALREADY_EXISTS and changes nothing', async () => {
      const k = ns() + 'a';
      const rev = await s.create(k, 'v1');
      await expectCode(s.create(k, 'v2'), 'ALREADY_EXISTS');
      expect((await s.get(k))?.value).toBe('v1');
      expect((await s.get(k))?.modRevision).toBe(rev);
    });

    it('update is a compare-and-swap on modRevision', async () => {
      const k = ns() + 'a';
      const r1 = await s.create(k, 'v1');
      const r2 = await s.update(k, 'v2', r1);
      expect(r2).toBeGreaterThan(r1);
      await expectCode(s.update(k, 'v3', r1), 'CONFLICT');
      const kv = await s.get(k);
      expect(kv?.value).toBe('v2');
      expect(kv?.modRevision).toBe(r2);
      expect(kv?.createRevision).toBe(r1);
      await expectCode(s.update(ns() + 'missing', 'x', r2), 'CONFLICT');
    });

    it('delete: guarded by revision when given, a no-op on a missing key otherwise', async () => {
      const k = ns() + 'a';
      const r1 = await s.create(k, 'v1');
      await expectCode(s.delete(k, r1 + 1000), 'CONFLICT');
      expect(await s.get(k)).toBeDefined();
      await s.delete(k, r1);
      expect(await s.get(k)).toBeUndefined();
      await s.delete(k);
      await expectCode(s.delete(k, r1), 'CONFLICT');
      const r2 = await s.create(k, 'again');
      expect(r2).toBeGreaterThan(r1);
      await s.delete(k);
      expect(await s.get(k)).toBeUndefined();
    });

    it('list by prefix is key-ordered and does not leak siblings', async () => {
      const p = ns();
      for (const k of ['b', 'a', 'c/d', 'c']) await s.create(`${p}x/${k}`, k);
      await s.create(`${p}xy`, 'sibling');
      await s.create(`${p}x`, 'parent');
      const { items, revision } = await s.list(`${p}x/`);
      expect(items.map((i) => i.key)).toEqual([`${p}x/a`, `${p}x/b`, `${p}x/c`, `${p}x/c/d`]);
      expect(items.map((i) => i.value)).toEqual(['a', 'b', 'c', 'c/d']);
      expect(revision).toBeGreaterThanOrEqual(Math.max(...items.map((i) => i.modRevision)));
      expect((await s.list(`${p}nothing/`)).items).toEqual([]);
    });

    it('read returns keys and prefixes at one revision', async () => {
      const p = ns();
      await s.create(`${p}k1`, '1');
      await s.create(`${p}l/a`, 'a');
      await s.create(`${p}l/b`, 'b');
      const snap = await s.read([`${p}k1`, `${p}k2`], [`${p}l/`]);
      expect(snap.values.get(`${p}k1`)?.value).toBe('1');
      expect(snap.values.has(`${p}k2`)).toBe(false);
      expect(snap.lists.get(`${p}l/`)?.map((i) => i.value)).toEqual(['a', 'b']);
      expect(snap.revision).toBe(await s.revision());
    });

    it('read handles more keys than one etcd transaction allows', async () => {
      const p = ns();
      const keys = Array.from({ length: 300 }, (_, i) => `${p}${String(i).padStart(3, '0')}`);
      for (let i = 0; i < keys.length; i += 50) await s.txn(keys.slice(i, i + 50).map((key) => ({ op: 'put' as const, key, value: key })));
      const snap = await s.read([...keys, `${p}missing`], [p]);
      expect(snap.values.size).toBe(300);
      expect(snap.values.get(keys[299])?.value).toBe(keys[299]);
      expect(snap.lists.get(p)?.length).toBe(300);
    });

    it('a transaction applies every write at one new revision', async () => {
      const p = ns();
      const r0 = await s.create(`${p}u`, 'old');
      await s.create(`${p}d`, 'gone');
      const r = await s.txn([
        { op: 'create', key: `${p}c`, value: 'new' },
        { op: 'update', key: `${p}u`, value: 'updated', revision: r0 },
        { op: 'put', key: `${p}p`, value: 'put' },
        { op: 'delete', key: `${p}d` },
        { op: 'check', key: `${p}absent`, revision: 0 },
      ]);
      expect(r.ok).toBe(true);
      const { items } = await s.list(p);
      expect(Object.fromEntries(items.map((i) => [i.key.slice(p.length), i.value]))).toEqual({ c: 'new', u: 'updated', p: 'put' });
      expect(new Set(items.map((i) => i.modRevision))).toEqual(new Set([r.revision]));
    });

    it('a transaction with one failed guard writes nothing and returns the current values', async () => {
      const p = ns();
      const ra = await s.create(`${p}a`, 'a1');
      const rb = await s.create(`${p}b`, 'b1');
      await s.update(`${p}b`, 'b2', rb);
      const before = await s.revision();
      const r = await s.txn([
        { op: 'update', key: `${p}a`, value: 'a2', revision: ra },
        { op: 'update', key: `${p}b`, value: 'b3', revision: rb },
        { op: 'create', key: `${p}c`, value: 'c' },
      ]);
      expect(r.ok).toBe(false);
      expect(r.current?.get(`${p}b`)?.value).toBe('b2');
      expect(r.current?.get(`${p}a`)?.modRevision).toBe(ra);
      expect(r.current?.has(`${p}c`)).toBe(false);
      expect(await s.revision()).toBe(before);
      expect((await s.get(`${p}a`))?.value).toBe('a1');
      expect(await s.get(`${p}c`)).toBeUndefined();
      const r2 = await s.txn([{ op: 'check', key: `${p}a`, revision: 0 }, { op: 'put', key: `${p}z`, value: 'z' }]);
      expect(r2.ok).toBe(false);
      expect(await s.get(`${p}z`)).toBeUndefined();
    });

    it('absent guards a key range: any key in [key, end) fails the transaction, keys outside do not', async () => {
      const p = ns();
      await s.create(p + 'b/5', 'x');
      await s.create(p + 'd', 'y');
      const absent = (from: string, to: string) => s.txn([{ op: 'absent', key: p + from, end: p + to }, { op: 'put', key: p + 'w', value: `${from}-${to}` }]);
      expect((await absent('b/6', 'c')).ok).toBe(true);
      expect((await absent('a', 'b/5')).ok).toBe(true); // end is exclusive
      expect((await absent('c', 'd')).ok).toBe(true);
      expect((await absent('b/', 'b/6')).ok).toBe(false);
      expect((await absent('a', 'z')).ok).toBe(false);
      expect((await s.get(p + 'w'))?.value).toBe('c-d');
    });

    it('watch delivers changes after a revision, including ones before the call, in order', async () => {
      const p = ns();
      const from = await s.revision();
      const r1 = await s.create(`${p}a`, '1');
      await s.create(`${p}other-prefix-is-${p}`, 'x').catch(() => undefined);
      const events: WatchEvent[] = [];
      const w = await s.watch(`${p}a`, from, (e) => events.push(e));
      try {
        const r2 = await s.update(`${p}a`, '2', r1);
        await s.delete(`${p}a`);
        await s.create(`/elsewhere${p}a`, 'not watched');
        await waitFor(() => events.length >= 3, { what: 'three watch events' });
        expect(events.slice(0, 3).map((e) => [e.type, e.key, e.value])).toEqual([
          ['put', `${p}a`, '1'],
          ['put', `${p}a`, '2'],
          ['delete', `${p}a`, undefined],
        ]);
        expect(events[0].revision).toBe(r1);
        expect(events[1].revision).toBe(r2);
        expect(events[2].revision).toBeGreaterThan(r2);
      } finally {
        await w.close();
      }
      const n0 = events.length;
      await s.create(`${p}a`, 'after close');
      await new Promise((r) => setTimeout(r, 400));
      expect(events.length).toBe(n0);
    });

    it('watch progress: once it resolves, the events delivered describe the prefix at the store revision or later', async () => {
      const p = ns();
      const other = await target().open();
      const from = await s.revision();
      const seen = new Map<string, string>();
      const w = await s.watch(p, from, (e) => (e.type === 'put' ? seen.set(e.key, e.value!) : seen.delete(e.key)));
      try {
        if (!w.progress) return; // optional: callers list instead
        const listed = async () => new Map((await s.list(p)).items.map((kv) => [kv.key, kv.value]));
        for (let round = 0; round < 4; round++) {
          // Another client's writes (as a CNI process's): puts, an update, a key created and deleted again, a delete, and writes elsewhere.
          await other.txn([{ op: 'put', key: `${p}a${round}`, value: `${round}` }, { op: 'put', key: `${p}b`, value: `${round}` }]);
          await other.create(`${p}tmp${round}`, 'x');
          await other.delete(`${p}tmp${round}`);
          if (round) await other.delete(`${p}a${round - 1}`);
          await other.txn([{ op: 'put', key: `/elsewhere${p}${round}`, value: 'x' }]);
          const before = await s.revision();
          expect(await w.progress(5000)).toBeGreaterThanOrEqual(before);
          expect(seen).toEqual(await listed());
        }
        // Nothing changed: resolves at once.
        expect(await w.progress(5000)).toBeGreaterThanOrEqual(await other.revision());
      } finally {
        await w.close();
        await other.close();
      }
    });

    it('watch progress waits for a watch started at an old revision to catch up', async () => {
      const p = ns();
      const from = await s.revision();
      for (let i = 0; i < 300; i += 30) await Promise.all(Array.from({ length: 30 }, (_, j) => s.txn([{ op: 'put', key: `${p}${(i + j) % 97}`, value: `${i + j}` }])));
      await s.delete(`${p}5`);
      const seen = new Map<string, string>();
      const w = await s.watch(p, from, (e) => (e.type === 'put' ? seen.set(e.key, e.value!) : seen.delete(e.key)));
      try {
        if (!w.progress) return;
        await w.progress(5000); // etcd replays old revisions in the background: not all delivered yet
        expect(seen).toEqual(new Map((await s.list(p)).items.map((kv) => [kv.key, kv.value])));
      } finally {
        await w.close();
      }
    });

    it('concurrent CAS increments from several clients lose no update', async () => {
      const k = ns() + 'counter';
      await s.create(k, '0');
      const clients = await Promise.all([1, 2, 3, 4].map(() => target().open()));
      const perClient = 25;
      try {
        await Promise.all(
          clients.map(async (c) => {
            for (let i = 0; i < perClient; i++) {
              for (;;) {
                const kv = (await c.get(k))!;
                const r = await c.txn([{ op: 'update', key: k, value: String(Number(kv.value) + 1), revision: kv.modRevision }]);
                if (r.ok) break;
              }
            }
          }),
        );
      } finally {
        for (const c of clients) await c.close();
      }
      expect((await s.get(k))?.value).toBe(String(clients.length * perClient));
    });

    it('a closed store rejects calls', async () => {
      const c = await target().open();
      await c.close();
      await expect(c.get('/x')).rejects.toBeDefined();
    });
  });
}
