import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { SqliteStore } from '../../src/datastore';
import { Sandbox, waitFor } from '../sandbox';
import { storeContract } from './contract';

const sb = new Sandbox('isqlite');
let dbPath = '';

storeContract('SqliteStore', () => ({
  open: async () => {
    if (!dbPath) dbPath = path.join(sb.tmpdir(), 'tern.db');
    return new SqliteStore({ path: dbPath, pollMs: 20 });
  },
}));

describe('SqliteStore specifics', () => {
  afterAll(() => sb.cleanup());

  it('creates the parent directory and uses WAL', async () => {
    const p = path.join(sb.tmpdir(), 'nested', 'dir', 'tern.db');
    const s = new SqliteStore({ path: p });
    await s.create('/k', 'v');
    await s.close();
    expect(fs.existsSync(p)).toBe(true);
    const again = new SqliteStore({ path: p });
    expect((await again.get('/k'))?.value).toBe('v');
    await again.close();
    const Database = (await import('better-sqlite3')).default;
    const db = new Database(p, { readonly: true });
    expect(db.pragma('journal_mode', { simple: true })).toBe('wal');
    db.close();
  });

  it('rejects watching a compacted revision', async () => {
    const s = new SqliteStore({ path: path.join(sb.tmpdir(), 'c.db'), eventRetention: 10 });
    for (let i = 0; i < 1005; i++) await s.txn([{ op: 'put', key: '/k', value: String(i) }]);
    await expect(s.watch('/k', 5, () => undefined)).rejects.toMatchObject({ code: 'CONFLICT' });
    const events: string[] = [];
    const w = await s.watch('/k', 1003, (e) => events.push(e.value!));
    await w.close();
    expect(events).toEqual(['1003', '1004']);
    await s.close();
  });

  it('one poller serves every watcher: each gets its prefix from its own start, a transaction whole, and other connections\' writes', async () => {
    const file = path.join(sb.tmpdir(), 'w.db');
    const s = new SqliteStore({ path: file, pollMs: 20 });
    const other = new SqliteStore({ path: file });
    const r1 = await s.create('/a/1', 'x');
    await s.create('/b/1', 'y');
    const a: string[] = [];
    const b: string[] = [];
    const wa = await s.watch('/a/', 0, (e) => a.push(`${e.type} ${e.key}`));
    const wb = await s.watch('/b/', r1, (e) => b.push(`${e.type} ${e.key}`));
    expect(a).toEqual(['put /a/1']); // caught up at once
    await s.txn([{ op: 'put', key: '/a/2', value: '1' }, { op: 'put', key: '/a/3', value: '1' }, { op: 'put', key: '/b/2', value: '1' }]);
    await other.txn([{ op: 'delete', key: '/a/1' }, { op: 'put', key: '/c/1', value: '1' }]);
    await waitFor(() => a.length === 4 || undefined, { what: 'watch events on /a/' });
    expect(a).toEqual(['put /a/1', 'put /a/2', 'put /a/3', 'delete /a/1']);
    await waitFor(() => b.length === 2 || undefined, { what: 'watch events on /b/' });
    expect(b).toEqual(['put /b/1', 'put /b/2']);
    // A closed watcher hears nothing more; the other keeps going.
    await wb.close();
    await other.create('/b/3', '1');
    await other.create('/a/4', '1');
    await waitFor(() => a.length === 5 || undefined, { what: 'the last /a/ event' });
    expect(b).toEqual(['put /b/1', 'put /b/2']);
    await wa.close();
    await other.close();
    await s.close();
  });
});
