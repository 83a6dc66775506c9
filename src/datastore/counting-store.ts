/** A Store wrapper that counts round trips, to measure IPAM's cost per allocation. */
import type { KeyValue, Snapshot, Store, TxnOp, TxnResult, WatchEvent, Watcher } from './types';

export class CountingStore implements Store {
  roundTrips = 0;
  constructor(readonly inner: Store) {}
  private n<T>(p: Promise<T>): Promise<T> {
    this.roundTrips++;
    return p;
  }
  get(key: string): Promise<KeyValue | undefined> {
    return this.n(this.inner.get(key));
  }
  list(prefix: string): Promise<{ items: KeyValue[]; revision: number }> {
    return this.n(this.inner.list(prefix));
  }
  read(keys: string[], prefixes?: string[]): Promise<Snapshot> {
    return this.n(this.inner.read(keys, prefixes));
  }
  create(key: string, value: string): Promise<number> {
    return this.n(this.inner.create(key, value));
  }
  update(key: string, value: string, revision: number): Promise<number> {
    return this.n(this.inner.update(key, value, revision));
  }
  delete(key: string, revision?: number): Promise<void> {
    return this.n(this.inner.delete(key, revision));
  }
  txn(ops: TxnOp[]): Promise<TxnResult> {
    return this.n(this.inner.txn(ops));
  }
  watch(prefix: string, fromRevision: number, onEvent: (e: WatchEvent) => void, onError?: (e: Error) => void): Promise<Watcher> {
    return this.n(this.inner.watch(prefix, fromRevision, onEvent, onError));
  }
  revision(): Promise<number> {
    return this.n(this.inner.revision());
  }
  close(): Promise<void> {
    return this.inner.close();
  }
}
