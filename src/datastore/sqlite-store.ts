/**
 * SqliteStore: the embedded default. One file shared by every CNI process on
 * the node: WAL so readers never block the writer, BEGIN IMMEDIATE so a write
 * transaction takes the lock before reading what it compares (no lost
 * updates between processes), busy_timeout so concurrent writers queue
 * instead of failing. kill -9 mid-transaction leaves the previous state:
 * SQLite rolls the uncommitted WAL frames back on the next open.
 *
 * Durability is the opener's choice (`durability`). By default every commit
 * is fsynced (synchronous=FULL): it survives a power loss. The CNI path opens
 * with 'process-crash' (synchronous=NORMAL): a commit survives the process
 * being killed, which is what runtimes do to a slow plugin, and is written to
 * disk with the next checkpoint; a power loss may take back the last few. On
 * the embedded store that is safe for what the CNI path writes (allocations,
 * releases and endpoint records of this node's pods): a power loss also ends
 * every pod on the node, the runtime re-creates them with new ADDs, and an
 * allocation whose release was lost is reclaimed by GC like any other leak.
 * An fsync costs 0.3 ms at p50 and 1.5-2.3 ms at p90 on this kind of machine,
 * a quarter of a daemon ADD (BENCHMARKS.md). The database stays consistent
 * either way; operator writes (policies, pools, settings) keep FULL.
 */
import Database from 'better-sqlite3';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { TernError } from '../lib/errors';
import { DEFAULT_SQLITE_PATH } from './config';
import { TxnStore } from './txn-store';
import type { KeyValue, Snapshot, TxnOp, TxnResult, WatchEvent, Watcher } from './types';

let binding: string | undefined | false;
/**
 * better-sqlite3's addon, named by path: otherwise the package finds it from
 * the caller's stack (the `bindings` package), which a bundled CNI binary
 * (scripts/build.mjs) moves away from node_modules. undefined: let it search.
 */
function sqliteBinding(): string | undefined {
  if (binding === undefined) {
    try {
      binding = require.resolve('better-sqlite3/build/Release/better_sqlite3.node');
    } catch {
      binding = false;
    }
  }
  return binding || undefined;
}

export interface SqliteStoreOptions {
  path?: string;
  /** How long a writer waits for the lock before TRY_AGAIN_LATER (ms). */
  busyTimeoutMs?: number;
  /** Watch poll interval (ms): other processes' writes are seen by polling (one poller per store). */
  pollMs?: number;
  /** Events kept for watchers; older ones are compacted away. */
  eventRetention?: number;
  /** Open an existing database only (read commands): a missing file is TRY_AGAIN_LATER naming the path, and nothing is created. */
  mustExist?: boolean;
  /** What a commit survives: 'power-loss' (default, fsync per commit) or 'process-crash' (the CNI path; see above). */
  durability?: Durability;
}

export type Durability = 'power-loss' | 'process-crash';

interface Row {
  key: string;
  value: string;
  mod_rev: number;
  create_rev: number;
}

const SCHEMA = `
CREATE TABLE IF NOT EXISTS kv (key TEXT PRIMARY KEY, value TEXT NOT NULL, create_rev INTEGER NOT NULL, mod_rev INTEGER NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS meta (id INTEGER PRIMARY KEY CHECK (id = 1), rev INTEGER NOT NULL, compacted INTEGER NOT NULL);
INSERT OR IGNORE INTO meta (id, rev, compacted) VALUES (1, 0, 0);
CREATE TABLE IF NOT EXISTS events (seq INTEGER PRIMARY KEY AUTOINCREMENT, rev INTEGER NOT NULL, key TEXT NOT NULL, value TEXT, type INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS events_rev ON events (rev);
`;

interface EventRow {
  rev: number;
  key: string;
  value: string | null;
  type: number;
}

interface WatchEntry {
  prefix: string;
  end: string;
  /** Revision of the last event delivered (or the watch's start). */
  last: number;
  onEvent: (e: WatchEvent) => void;
  onError?: (e: Error) => void;
  /** Compaction removed events it had not been given: it no longer describes the prefix. */
  lost?: boolean;
}

/** One event to one watcher (a transaction's events share its revision, so callers filter on the revision they started from). */
function deliver(w: WatchEntry, e: EventRow): void {
  w.last = Math.max(w.last, e.rev);
  w.onEvent(e.type === 0 ? { type: 'put', key: e.key, value: e.value ?? '', revision: e.rev } : { type: 'delete', key: e.key, revision: e.rev });
}

function toKv(r: Row): KeyValue {
  return { key: r.key, value: r.value, modRevision: r.mod_rev, createRevision: r.create_rev };
}

/** Upper bound of a prefix range: keys k with prefix <= k < prefixEnd(prefix). */
export function prefixEnd(prefix: string): string {
  return prefix + '\uffff';
}

/** SQLite errors as TernErrors: lock contention past busy_timeout is retryable (CNI 11). */
function toStoreError(e: unknown): TernError {
  if (e instanceof TernError) return e;
  const code = (e as { code?: string }).code ?? '';
  if (code.startsWith('SQLITE_BUSY') || code.startsWith('SQLITE_LOCKED')) {
    return new TernError('TRY_AGAIN_LATER', 'datastore busy', { cause: e });
  }
  return new TernError('IO_FAILURE', `sqlite: ${(e as Error).message}`, { cause: e });
}

export class SqliteStore extends TxnStore {
  readonly path: string;
  private readonly db: Database.Database;
  private readonly pollMs: number;
  private readonly retention: number;
  /**
   * One poller for all watchers. Idle, a poll is one `PRAGMA data_version`
   * (it changes when another connection commits; our own commits set
   * `ownWrite`), so idle cost does not grow with the event log. When
   * something changed, only the events after `cursor` are read, once, and
   * handed to the watchers whose prefix they fall under.
   */
  private readonly watchers = new Set<WatchEntry>();
  private timer?: NodeJS.Timeout;
  private cursor = 0;
  private dataVersion = -1;
  private ownWrite = false;
  private closed = false;
  private readonly st: {
    get: Database.Statement<[string], Row>;
    range: Database.Statement<[string, string], Row>;
    any: Database.Statement<[string, string], unknown>;
    rev: Database.Statement<[], { rev: number; compacted: number }>;
    bump: Database.Statement<[], unknown>;
    upsert: Database.Statement<[string, string, number, number], unknown>;
    del: Database.Statement<[string], unknown>;
    event: Database.Statement<[number, string, string | null, number], unknown>;
    events: Database.Statement<[number, string, string], EventRow>;
    eventsSince: Database.Statement<[number], EventRow>;
  };

  constructor(opts: SqliteStoreOptions = {}) {
    super();
    this.path = opts.path ?? DEFAULT_SQLITE_PATH;
    this.pollMs = opts.pollMs ?? 100;
    this.retention = opts.eventRetention ?? 10_000;
    if (opts.mustExist && !fs.existsSync(this.path)) throw new TernError('TRY_AGAIN_LATER', `datastore ${this.path} does not exist (nothing was created; check --datastore)`);
    try {
      fs.mkdirSync(path.dirname(this.path), { recursive: true });
      this.db = new Database(this.path, { timeout: opts.busyTimeoutMs ?? 15_000, nativeBinding: sqliteBinding() });
      this.db.pragma('journal_mode = WAL');
      this.db.pragma(opts.durability === 'process-crash' ? 'synchronous = NORMAL' : 'synchronous = FULL');
      // Schema creation races between first-time processes; IMMEDIATE serialises it.
      this.db.transaction(() => this.db.exec(SCHEMA)).immediate();
    } catch (e) {
      throw toStoreError(e);
    }
    this.st = {
      get: this.db.prepare('SELECT key, value, mod_rev, create_rev FROM kv WHERE key = ?'),
      range: this.db.prepare('SELECT key, value, mod_rev, create_rev FROM kv WHERE key >= ? AND key < ? ORDER BY key'),
      any: this.db.prepare('SELECT 1 FROM kv WHERE key >= ? AND key < ? LIMIT 1'),
      rev: this.db.prepare('SELECT rev, compacted FROM meta WHERE id = 1'),
      bump: this.db.prepare('UPDATE meta SET rev = rev + 1 WHERE id = 1'),
      upsert: this.db.prepare(
        'INSERT INTO kv (key, value, create_rev, mod_rev) VALUES (?, ?, ?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value, mod_rev = excluded.mod_rev',
      ),
      del: this.db.prepare('DELETE FROM kv WHERE key = ?'),
      event: this.db.prepare('INSERT INTO events (rev, key, value, type) VALUES (?, ?, ?, ?)'),
      events: this.db.prepare('SELECT rev, key, value, type FROM events WHERE rev > ? AND key >= ? AND key < ? ORDER BY seq'),
      eventsSince: this.db.prepare('SELECT rev, key, value, type FROM events WHERE rev > ? ORDER BY seq'),
    };
  }

  private guard<T>(fn: () => T): Promise<T> {
    if (this.closed) return Promise.reject(new TernError('INTERNAL', 'store closed'));
    try {
      return Promise.resolve(fn());
    } catch (e) {
      return Promise.reject(toStoreError(e));
    }
  }



  read(keys: string[], prefixes: string[] = []): Promise<Snapshot> {
    return this.guard(() =>
      // A deferred read transaction: one WAL snapshot for every key and prefix.
      this.db.transaction(() => {
        const values = new Map<string, KeyValue>();
        for (const k of keys) {
          const r = this.st.get.get(k);
          if (r) values.set(k, toKv(r));
        }
        const lists = new Map<string, KeyValue[]>();
        for (const p of prefixes) lists.set(p, this.st.range.all(p, prefixEnd(p)).map(toKv));
        return { revision: this.st.rev.get()!.rev, values, lists };
      })(),
    );
  }




  txn(ops: TxnOp[]): Promise<TxnResult> {
    return this.guard(() =>
      this.db
        .transaction((): TxnResult => {
          const cur = new Map<string, KeyValue>();
          let ok = true;
          for (const o of ops) {
            const r = this.st.get.get(o.key);
            if (r) cur.set(o.key, toKv(r));
            const rev = r?.mod_rev ?? 0;
            if (o.op === 'create' && r) ok = false;
            if ((o.op === 'update' || o.op === 'check') && rev !== o.revision) ok = false;
            if (o.op === 'delete' && o.revision !== undefined && rev !== o.revision) ok = false;
            if (o.op === 'absent' && this.st.any.get(o.key, o.end)) ok = false;
          }
          const before = this.st.rev.get()!.rev;
          if (!ok) return { ok, revision: before, current: cur };
          const writes = ops.filter((o) => o.op !== 'check' && o.op !== 'absent' && !(o.op === 'delete' && !cur.has(o.key)));
          if (writes.length === 0) return { ok, revision: before };
          this.st.bump.run();
          const rev = before + 1;
          for (const o of writes) {
            if (o.op === 'delete') {
              this.st.del.run(o.key);
              this.st.event.run(rev, o.key, null, 1);
            } else if (o.op !== 'check' && o.op !== 'absent') {
              this.st.upsert.run(o.key, o.value, cur.get(o.key)?.createRevision ?? rev, rev);
              this.st.event.run(rev, o.key, o.value, 0);
            }
          }
          if (rev % 1000 === 0) this.compact(rev);
          this.ownWrite = true;
          return { ok, revision: rev };
        })
        .immediate(),
    );
  }

  private compact(rev: number): void {
    const keep = rev - this.retention;
    if (keep <= 0) return;
    this.db.prepare('DELETE FROM events WHERE rev <= ?').run(keep);
    this.db.prepare('UPDATE meta SET compacted = ? WHERE id = 1').run(keep);
  }

  async watch(prefix: string, fromRevision: number, onEvent: (e: WatchEvent) => void, onError?: (e: Error) => void): Promise<Watcher> {
    const meta = await this.guard(() => this.st.rev.get()!);
    if (fromRevision < meta.compacted) throw new TernError('CONFLICT', `revision ${fromRevision} compacted (oldest ${meta.compacted})`);
    if (this.watchers.size === 0) this.startPolling();
    const w: WatchEntry = { prefix, end: prefixEnd(prefix), last: fromRevision, onEvent, onError };
    // Catch up on what the shared poller has already passed; from then on it delivers.
    try {
      for (const e of this.st.events.all(fromRevision, prefix, w.end)) if (e.rev <= this.cursor) deliver(w, e);
    } catch (e) {
      onError?.(e as Error);
    }
    w.last = Math.max(w.last, this.cursor);
    this.watchers.add(w);
    this.poll();
    return {
      close: async () => {
        this.watchers.delete(w);
        if (this.watchers.size === 0) this.stopPolling();
      },
      // Synchronous: every event committed by the revision read first is delivered by the poll that follows.
      progress: () =>
        this.guard(() => {
          if (!this.watchers.has(w)) throw new TernError('INTERNAL', 'watch closed');
          const { rev } = this.st.rev.get()!;
          if (!this.poll()) throw new TernError('TRY_AGAIN_LATER', 'watch poll failed');
          if (w.lost) throw new TernError('CONFLICT', 'watch lost events to compaction');
          return rev;
        }),
    };
  }

  private startPolling(): void {
    this.cursor = this.st.rev.get()!.rev;
    this.dataVersion = this.db.pragma('data_version', { simple: true }) as number;
    this.ownWrite = false;
    this.timer = setInterval(() => this.poll(), this.pollMs);
  }

  private stopPolling(): void {
    clearInterval(this.timer);
    this.timer = undefined;
  }

  /** Deliver what was committed since the last poll; false if it could not be read. */
  private poll(): boolean {
    if (this.closed || !this.watchers.size) return true;
    let rows: EventRow[];
    let compacted: number;
    try {
      const v = this.db.pragma('data_version', { simple: true }) as number;
      if (v === this.dataVersion && !this.ownWrite) return true;
      this.dataVersion = v;
      this.ownWrite = false;
      rows = this.st.eventsSince.all(this.cursor);
      compacted = this.st.rev.get()!.compacted;
    } catch (e) {
      for (const w of this.watchers) w.onError?.(e as Error);
      return false;
    }
    // The poller fell further behind than the event log reaches: watchers that had not seen those events miss them.
    for (const w of this.watchers) {
      if (w.lost || w.last >= compacted || this.cursor >= compacted) continue;
      w.lost = true;
      w.onError?.(new TernError('CONFLICT', `watch of ${w.prefix} missed events compacted up to revision ${compacted}`));
    }
    const from = new Map([...this.watchers].map((w) => [w, w.last]));
    for (const e of rows) {
      this.cursor = Math.max(this.cursor, e.rev);
      for (const [w, last] of from) if (e.rev > last && e.key >= w.prefix && e.key < w.end && this.watchers.has(w)) deliver(w, e);
    }
    return true;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.stopPolling();
    this.watchers.clear();
    this.closed = true;
    this.db.close();
  }
}

