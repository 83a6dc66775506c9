/**
 * Opening a datastore from its config, apart from open.ts (which finds the
 * config, with a YAML parser a CNI process does not need). The etcd backend
 * loads its client (etcd3, gRPC, protobufjs) only when it connects.
 */
import type { DatastoreConfig } from './config';
import { EtcdStore } from './etcd-store';
import { SqliteStore, type Durability } from './sqlite-store';
import type { Store } from './types';

/**
 * `create: false` opens an existing SQLite datastore only (a mistyped path is
 * an error, not a new empty cluster). `durability`: SQLite's, see
 * sqlite-store.ts (etcd always fsyncs its log).
 */
export function openStore(c: DatastoreConfig, opts: { create?: boolean; durability?: Durability } = {}): Store {
  return c.type === 'sqlite' ? new SqliteStore({ path: c.path, mustExist: opts.create === false, durability: opts.durability }) : new EtcdStore(c);
}
