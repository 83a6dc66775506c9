import * as path from 'node:path';
import { afterAll } from 'vitest';
import Database from 'better-sqlite3';
import { SqliteStore, type Store, type TxnOp } from '../../src/datastore';
import { Sandbox } from '../sandbox';
import { ipamBehaviour } from './behaviour';

const sb = new Sandbox('iipamsq');
afterAll(() => sb.cleanup());

// A trigger makes SQLite itself abort the transaction that writes the key.
const refusedPut = async (s: Store, key: string): Promise<TxnOp[]> => {
  const db = new Database((s as SqliteStore).path);
  db.exec(`CREATE TRIGGER refuse_${Date.now()} BEFORE INSERT ON kv WHEN NEW.key = '${key}' BEGIN SELECT RAISE(ABORT, 'refused by test trigger'); END`);
  db.close();
  return [{ op: 'put', key, value: 'x' }];
};

ipamBehaviour('SQLite', async () => new SqliteStore({ path: path.join(sb.tmpdir(), 'tern.db') }), refusedPut);
