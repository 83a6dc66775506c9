import * as fs from 'node:fs';
import * as path from 'node:path';
import { spawnSync } from 'node:child_process';
import { afterAll, describe, expect, it } from 'vitest';
import { SqliteStore } from '../../src/datastore';
import { openStore } from '../../src/datastore/open-store';
import { openDatastoreConfig } from '../../src/cni-plugin/ipam';
import { REPO } from '../sandbox';
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

  it('fsyncs every commit by default; the CNI path\'s commits survive a kill -9 without one', async () => {
    const dir = sb.tmpdir();
    const syncOf = (st: unknown) => (st as { db: { pragma(q: string, o: { simple: true }): unknown } }).db.pragma('synchronous', { simple: true });
    const stores = [openStore({ type: 'sqlite', path: path.join(dir, 'a.db') }), new SqliteStore({ path: path.join(dir, 'b.db') }), openDatastoreConfig({ type: 'sqlite', path: path.join(dir, 'c.db') })];
    expect(stores.map(syncOf)).toEqual([2, 2, 1]); // FULL, FULL, NORMAL
    await Promise.all(stores.map((st) => st.close()));
    // What 'process-crash' promises: a commit the plugin made before the runtime killed it is there on the next open.
    const db = path.join(dir, 'k.db');
    const r = spawnSync(process.execPath, ['-e', `
      const { openDatastoreConfig } = require(${JSON.stringify(path.join(REPO, 'dist/src/cni-plugin/ipam.js'))});
      const s = openDatastoreConfig({ type: 'sqlite', path: ${JSON.stringify(db)} });
      s.txn([{ op: 'put', key: '/alloc/10.244.0.7', value: 'pod-a' }]).then(() => process.kill(process.pid, 'SIGKILL'));`]);
    expect(r.signal).toBe('SIGKILL');
    const again = new SqliteStore({ path: db });
    expect((await again.get('/alloc/10.244.0.7'))?.value).toBe('pod-a');
    await again.close();
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

  it('watch progress polls at once, and rejects once compaction took events the watcher had not been given', async () => {
    const file = path.join(sb.tmpdir(), 'p.db');
    const s = new SqliteStore({ path: file, pollMs: 600_000, eventRetention: 10 }); // the timer never polls in this test
    const other = new SqliteStore({ path: file, eventRetention: 10 });
    const events: string[] = [];
    const errors: Error[] = [];
    const w = await s.watch('/k', await s.revision(), (e) => events.push(e.value!), (e) => errors.push(e));
    await other.create('/k', '0');
    expect(await w.progress!(0)).toBe(await other.revision());
    expect(events).toEqual(['0']);
    // The poller falls 1,000 revisions behind; compaction keeps the last 10.
    for (let i = 1; i <= 1000; i++) await other.txn([{ op: 'put', key: '/k', value: String(i) }]);
    await expect(w.progress!(0)).rejects.toMatchObject({ code: 'CONFLICT' });
    expect(errors.length).toBe(1);
    await expect(w.progress!(0)).rejects.toMatchObject({ code: 'CONFLICT' }); // for good: watch again
    await w.close();
    const again = await s.watch('/k', await s.revision(), () => undefined);
    await other.create('/k2', 'x');
    expect(await again.progress!(0)).toBe(await other.revision());
    await again.close();
    await other.close();
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
