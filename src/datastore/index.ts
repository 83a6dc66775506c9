export type { KeyValue, TxnOp, TxnResult, Snapshot, WatchEvent, Watcher, Store } from './types';
export { SqliteStore, DEFAULT_SQLITE_PATH, type SqliteStoreOptions } from './sqlite-store';
export { EtcdStore, type EtcdStoreOptions } from './etcd-store';
export { CountingStore } from './counting-store';
export {
  type DatastoreConfig,
  DEFAULT_CONFIG_FILE,
  DEFAULT_DATASTORE,
  parseDatastoreString,
  parseDatastoreConfig,
  resolveDatastore,
  openStore,
  withDatastore,
} from './config';
