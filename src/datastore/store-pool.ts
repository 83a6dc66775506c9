/**
 * Datastore handles kept open across requests, for the node daemon's CNI
 * endpoint: opening SQLite costs ~0.6 ms per ADD (open, WAL pragmas, schema
 * check) and etcd a new gRPC channel. One handle per datastore config, shared
 * by concurrent requests (SQLite transactions are synchronous, etcd's client
 * multiplexes). A handle is replaced, once its last lease ends, when what it
 * was opened on changes: a SQLite file replaced or removed (a new inode), or
 * an etcd client certificate, key or CA rewritten.
 */
import * as fs from 'node:fs';
import type { DatastoreConfig } from './config';
import type { Store } from './types';

export interface StoreLease {
  store: Store;
  release(): Promise<void>;
}

interface Entry {
  store: Store;
  identity: string;
  leases: number;
  retired: boolean;
}

/** What the handle was opened on: a changed identity means open a new one. */
function identityOf(c: DatastoreConfig): string {
  const stamp = (f?: string): string => {
    if (!f) return '';
    try {
      const st = fs.statSync(f);
      return `${st.dev}:${st.ino}:${st.mtimeMs}`;
    } catch {
      return 'missing';
    }
  };
  return c.type === 'sqlite' ? stamp(c.path) : [c.ca, c.cert, c.key].map(stamp).join('/');
}

export class StorePool {
  private readonly entries = new Map<string, Entry>();
  private closed = false;

  /** `open` makes a new handle (the CNI plugin's own opener, so errors map the same way). */
  constructor(private readonly open: (c: DatastoreConfig) => Store) {}

  borrow(c: DatastoreConfig): StoreLease {
    if (this.closed) return this.owned(c);
    const key = JSON.stringify(c);
    let e = this.entries.get(key);
    // SQLite: stat once the file exists (a missing file is created by the open below).
    const identity = identityOf(c);
    if (e && e.identity !== identity) {
      this.entries.delete(key);
      this.retire(e);
      e = undefined;
    }
    if (!e) {
      const store = this.open(c);
      e = { store, identity: identityOf(c), leases: 0, retired: false };
      this.entries.set(key, e);
    }
    const entry = e;
    entry.leases++;
    let done = false;
    return {
      store: entry.store,
      release: async () => {
        if (done) return;
        done = true;
        entry.leases--;
        if (entry.retired && entry.leases === 0) await entry.store.close();
      },
    };
  }

  /** A handle of its own, closed on release (after close(), or for callers without a pool). */
  private owned(c: DatastoreConfig): StoreLease {
    const store = this.open(c);
    return { store, release: () => store.close() };
  }

  private retire(e: Entry): void {
    e.retired = true;
    if (e.leases === 0) void e.store.close().catch(() => undefined);
  }

  /** Close every idle handle; leased ones close when released. */
  async close(): Promise<void> {
    this.closed = true;
    const all = [...this.entries.values()];
    this.entries.clear();
    for (const e of all) e.retired = true;
    await Promise.all(all.filter((e) => e.leases === 0).map((e) => e.store.close()));
  }
}
