import { describe, expect, it } from 'vitest';
import { PrefixMirror } from './mirror';
import type { WatchEvent } from './types';

const put = (key: string, value: string, revision: number): WatchEvent => ({ type: 'put', key, value, revision });
const del = (key: string, revision: number): WatchEvent => ({ type: 'delete', key, revision });
const items = (m: PrefixMirror) => Object.fromEntries([...m.items].sort());
const changes = (m: PrefixMirror) => Object.fromEntries([...m.takeChanges()].sort());

describe('PrefixMirror', () => {
  it('is not ready before a seed, nor after an invalidation until the next seed', () => {
    const m = new PrefixMirror();
    expect(m.ready).toBe(false);
    m.apply(put('/a', '1', 3));
    expect(m.ready).toBe(false);
    m.seed([], 5);
    expect(m.ready).toBe(true);
    m.invalidate();
    expect(m.ready).toBe(false);
    m.seed([{ key: '/a', value: '1' }], 6);
    expect(m.ready).toBe(true);
    expect(items(m)).toEqual({ '/a': '1' });
  });

  const table: { name: string; seed: [string, string][]; at: number; events: WatchEvent[]; items: Record<string, string>; changes: Record<string, string | undefined>; revision: number }[] = [
    { name: 'puts and deletes after the seed', seed: [['/a', '1'], ['/b', '1']], at: 10, events: [put('/a', '2', 11), del('/b', 12), put('/c', '1', 13)], items: { '/a': '2', '/c': '1' }, changes: { '/a': '2', '/b': undefined, '/c': '1' }, revision: 13 },
    { name: 'events the list already holds are ignored', seed: [['/a', '2']], at: 10, events: [put('/a', '1', 9), put('/a', '2', 10), del('/z', 10)], items: { '/a': '2' }, changes: {}, revision: 10 },
    { name: 'a transaction: several events at one revision', seed: [], at: 10, events: [put('/a', '1', 11), put('/b', '1', 11), del('/a', 12)], items: { '/b': '1' }, changes: { '/a': undefined, '/b': '1' }, revision: 12 },
    { name: 'a key created and deleted again still counts as changed (the caller compares with what it had)', seed: [], at: 1, events: [put('/a', '1', 2), del('/a', 3)], items: {}, changes: { '/a': undefined }, revision: 3 },
  ];
  for (const t of table) {
    it(t.name, () => {
      const m = new PrefixMirror();
      m.seed(t.seed.map(([key, value]) => ({ key, value })), t.at);
      for (const e of t.events) m.apply(e);
      expect(items(m)).toEqual(t.items);
      expect(m.revision).toBe(t.revision);
      expect(changes(m)).toEqual(t.changes);
      expect(changes(m)).toEqual({}); // taken
    });
  }

  it('events that race a list are replayed on top of it if newer, and count as changes', () => {
    const m = new PrefixMirror();
    m.seed([{ key: '/a', value: '1' }], 5);
    m.apply(put('/a', '2', 6));
    m.invalidate();
    m.beginSeed();
    m.apply(put('/b', '1', 7)); // in the list
    m.apply(put('/c', '1', 8)); // after the list's revision
    m.apply(del('/a', 8));
    m.seed([{ key: '/a', value: '2' }, { key: '/b', value: '1' }], 7);
    expect(m.ready).toBe(true);
    expect(items(m)).toEqual({ '/b': '1', '/c': '1' });
    expect(m.revision).toBe(8);
    expect(changes(m)).toEqual({ '/a': undefined, '/c': '1' });
    m.apply(put('/c', '1', 8)); // a duplicate after the seed: same value, same key
    m.apply(put('/d', '1', 9));
    expect(items(m)).toEqual({ '/b': '1', '/c': '1', '/d': '1' });
  });
});
