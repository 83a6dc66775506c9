/**
 * The Store seam: a revisioned key-value store with compare-and-swap, the
 * subset of etcd v3 semantics IPAM needs. Every write bumps one store-wide
 * revision; each key remembers the revision of its last write (modRevision),
 * which is what CAS compares against.
 */

export interface KeyValue {
  key: string;
  value: string;
  /** Store revision of the last write to this key. */
  modRevision: number;
  /** Store revision at which this key was created. */
  createRevision: number;
}

/**
 * One operation of an all-or-nothing transaction. Each carries its own guard:
 * create needs the key absent, update/delete need `revision` to equal the
 * key's modRevision, check only compares, absent needs a key range empty,
 * put is unconditional.
 */
export type TxnOp =
  | { op: 'create'; key: string; value: string }
  | { op: 'update'; key: string; value: string; revision: number }
  | { op: 'put'; key: string; value: string }
  | { op: 'delete'; key: string; revision?: number }
  /** revision 0 means "the key must not exist". */
  | { op: 'check'; key: string; revision: number }
  /** No key exists in [key, end): guards an index range (e.g. address-ordered block claims). */
  | { op: 'absent'; key: string; end: string };

export interface TxnResult {
  /** Whether every guard held (and so every write was applied). */
  ok: boolean;
  /** Store revision after the transaction (unchanged when !ok). */
  revision: number;
  /**
   * On failure only: the current value of every key the transaction touched
   * (absent keys are missing), read in the same round trip so a caller can
   * retry without another read.
   */
  current?: Map<string, KeyValue>;
}

/** A consistent multi-read in one round trip. */
export interface Snapshot {
  revision: number;
  /** Values of the requested keys that exist. */
  values: Map<string, KeyValue>;
  /** Per requested prefix, the key-ordered entries under it. */
  lists: Map<string, KeyValue[]>;
}

export interface WatchEvent {
  type: 'put' | 'delete';
  key: string;
  /** The new value on put; undefined on delete. */
  value?: string;
  /** Revision of the write that produced this event. */
  revision: number;
}

export interface Watcher {
  close(): Promise<void>;
  /**
   * Catch up: deliver what is pending and resolve with a revision R at least
   * the store's revision at the call, such that the events delivered so far
   * describe the prefix as it stands at R. Rejects if it cannot say within
   * `timeoutMs` or events were lost (compaction, a broken stream); the caller
   * then reads the prefix in full. Optional: without it, callers always read.
   */
  progress?(timeoutMs: number): Promise<number>;
}

export interface Store {
  get(key: string): Promise<KeyValue | undefined>;
  /** Entries under a prefix, ordered by key, with the revision they were read at. */
  list(prefix: string): Promise<{ items: KeyValue[]; revision: number }>;
  /** Several keys and prefixes read at one revision, in one round trip. */
  read(keys: string[], prefixes?: string[]): Promise<Snapshot>;
  /** Throws TernError ALREADY_EXISTS if the key exists. Returns the new modRevision. */
  create(key: string, value: string): Promise<number>;
  /** Throws TernError CONFLICT unless the key's modRevision equals `revision`. */
  update(key: string, value: string, revision: number): Promise<number>;
  /**
   * Without a revision, deleting an absent key is a no-op. With one, throws
   * CONFLICT unless the key exists at that modRevision.
   */
  delete(key: string, revision?: number): Promise<void>;
  txn(ops: TxnOp[]): Promise<TxnResult>;
  /**
   * Calls `onEvent` for every change under `prefix` after `fromRevision`
   * (exclusive), in revision order, including changes made before the call.
   */
  watch(prefix: string, fromRevision: number, onEvent: (e: WatchEvent) => void, onError?: (e: Error) => void): Promise<Watcher>;
  /** Current store revision. */
  revision(): Promise<number>;
  close(): Promise<void>;
}

/** Counts datastore round trips (for the IPAM "one round trip per allocation" goal). */
export interface RoundTripCounter {
  roundTrips: number;
}
