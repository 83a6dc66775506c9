import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { SqliteStore } from './sqlite-store';
import { StorePool } from './store-pool';
import type { DatastoreConfig } from './config';

const dirs: string[] = [];
afterEach(() => dirs.splice(0).forEach((d) => fs.rmSync(d, { recursive: true, force: true })));
function setup() {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tern-pool-'));
  dirs.push(dir);
  const opened: SqliteStore[] = [];
  const pool = new StorePool((c) => {
    const s = new SqliteStore({ path: (c as { path: string }).path });
    opened.push(s);
    return s;
  });
  return { pool, opened, conf: { type: 'sqlite', path: path.join(dir, 'tern.db') } as DatastoreConfig };
}

describe('StorePool', () => {
  it('shares one handle between requests, concurrent or not', async () => {
    const { pool, opened, conf } = setup();
    const a = pool.borrow(conf);
    const b = pool.borrow(conf);
    expect(b.store).toBe(a.store);
    await a.release();
    await b.release();
    const c = pool.borrow(conf);
    expect(c.store).toBe(a.store);
    expect((await c.store.txn([{ op: 'put', key: '/k', value: 'v' }])).ok).toBe(true);
    await c.release();
    expect(opened).toHaveLength(1);
    await pool.close();
  });

  it('opens the file again when it was replaced, and closes the old handle once its last lease ends', async () => {
    const { pool, opened, conf } = setup();
    const a = pool.borrow(conf);
    await a.store.txn([{ op: 'put', key: '/old', value: '1' }]);
    // An operator removes the datastore; a new one is created at the path.
    const p = (conf as { path: string }).path;
    for (const f of [p, `${p}-wal`, `${p}-shm`]) fs.rmSync(f, { force: true });
    const b = pool.borrow(conf);
    expect(b.store).not.toBe(a.store);
    expect((await b.store.read(['/old'])).values.has('/old')).toBe(false);
    // The old handle stays open until its lease ends, then closes.
    await expect(a.store.read([])).resolves.toBeDefined();
    await a.release();
    await expect(a.store.read(['/old'])).rejects.toThrow(/closed/);
    await b.release();
    expect(opened).toHaveLength(2);
    await pool.close();
    await expect(b.store.read([])).rejects.toThrow(/closed/);
  });

  it('after close(), each borrow gets a handle of its own, closed on release', async () => {
    const { pool, conf } = setup();
    await pool.close();
    const a = pool.borrow(conf);
    await a.release();
    await expect(a.store.read([])).rejects.toThrow(/closed/);
  });
});
