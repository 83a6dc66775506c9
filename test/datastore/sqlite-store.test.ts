import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { SqliteStore } from '../../src/datastore';
import { Sandbox } from '../sandbox';
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
});
