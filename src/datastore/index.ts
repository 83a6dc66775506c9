export type { KeyValue, TxnOp, TxnResult, Snapshot, WatchEvent, Watcher, Store } from './types';
export { SqliteStore, type SqliteStoreOptions } from './sqlite-store';
export { EtcdStore, type EtcdStoreOptions } from './etcd-store';
export { CountingStore } from './counting-store';
export {
  type DatastoreConfig,
  DEFAULT_CONFIG_FILE,
  DEFAULT_DATASTORE,
  DEFAULT_SQLITE_PATH,
  parseDatastoreString,
  parseDatastoreConfig,
  parseDatastoreField,
} from './config';
export { resolveDatastore, openStore, withDatastore } from './open';
