/**
 * The single-key operations of a Store, derived from `read` and `txn`, so a
 * backend implements only those two (plus watch) and the CAS error mapping
 * lives in one place.
 */
import { TernError } from '../lib/errors';
import type { KeyValue, Snapshot, Store, TxnOp, TxnResult, WatchEvent, Watcher } from './types';

export abstract class TxnStore implements Store {
  abstract read(keys: string[], prefixes?: string[]): Promise<Snapshot>;
  abstract txn(ops: TxnOp[]): Promise<TxnResult>;
  abstract watch(prefix: string, fromRevision: number, onEvent: (e: WatchEvent) => void, onError?: (e: Error) => void): Promise<Watcher>;
  abstract close(): Promise<void>;

  async get(key: string): Promise<KeyValue | undefined> {
    return (await this.read([key])).values.get(key);
  }

  async list(prefix: string): Promise<{ items: KeyValue[]; revision: number }> {
    const s = await this.read([], [prefix]);
    return { items: s.lists.get(prefix) ?? [], revision: s.revision };
  }

  async revision(): Promise<number> {
    return (await this.read([])).revision;
  }

  async create(key: string, value: string): Promise<number> {
    const r = await this.txn([{ op: 'create', key, value }]);
    if (!r.ok) throw new TernError('ALREADY_EXISTS', `key exists: ${key}`);
    return r.revision;
  }

  async update(key: string, value: string, revision: number): Promise<number> {
    const r = await this.txn([{ op: 'update', key, value, revision }]);
    if (!r.ok) throw new TernError('CONFLICT', `revision mismatch on ${key}`);
    return r.revision;
  }

  async delete(key: string, revision?: number): Promise<void> {
    const r = await this.txn([{ op: 'delete', key, revision }]);
    if (!r.ok) throw new TernError('CONFLICT', `revision mismatch on ${key}`);
  }
}
