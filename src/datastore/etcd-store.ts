/**
 * EtcdStore: the cluster backend. Store revisions are etcd revisions, CAS is
 * an etcd transaction comparing mod_revision (create compares it with 0), and
 * a failed transaction reads the touched keys in its else branch, so a retry
 * needs no extra round trip. Any transport failure (unreachable, no quorum,
 * deadline) is TRY_AGAIN_LATER: the caller may retry, nothing was half-applied
 * because every write is one etcd transaction.
 */
import * as fs from 'node:fs';
import type { Etcd3, IOptions } from 'etcd3';
import type * as RPC from 'etcd3/lib/rpc';
import { TernError, messageOf } from '../lib/errors';
import { TxnStore } from './txn-store';
import type { KeyValue, Snapshot, TxnOp, TxnResult, WatchEvent, Watcher } from './types';

export interface EtcdStoreOptions {
  endpoints: string[];
  /** PEM file paths for TLS; `ca` alone gives server-verified TLS, cert+key add client auth. */
  ca?: string;
  cert?: string;
  key?: string;
  /** Every key is stored under this prefix (lets tests and tenants share one etcd). */
  prefix?: string;
  /** Per-request deadline (ms). */
  timeoutMs?: number;
}

const enc = (s: string): Buffer => Buffer.from(s, 'utf8');

/** etcd's prefix range end: the prefix with its last byte incremented. */
export function etcdPrefixEnd(prefix: Buffer): Buffer {
  const end = Buffer.from(prefix);
  for (let i = end.length - 1; i >= 0; i--) {
    if (end[i] < 0xff) {
      end[i]++;
      return end.subarray(0, i + 1);
    }
  }
  return Buffer.from([0]);
}

/**
 * etcd3 (gRPC) takes most of a second to load; a CNI process on SQLite never
 * needs it, so it is loaded on first use only.
 */
function etcd3(): typeof import('etcd3') {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  return require('etcd3') as typeof import('etcd3');
}

/** etcd's default --max-txn-ops: a larger read is split into several transactions. */
export const MAX_TXN_OPS = 128;

/**
 * Transport trouble (unreachable, no quorum, deadline, open circuit) is
 * retryable; a request etcd rejects as malformed is our bug, not the cluster's.
 */
function toStoreError(e: unknown, what: string): TernError {
  if (e instanceof TernError) return e;
  if (e instanceof etcd3().GRPCInvalidArgumentError) return new TernError('INTERNAL', `etcd ${what}: ${messageOf(e)}`, { cause: e });
  return new TernError('TRY_AGAIN_LATER', `etcd ${what}: ${messageOf(e)}`, { cause: e });
}

export class EtcdStore extends TxnStore {
  private readonly client: Etcd3;
  private readonly prefix: string;
  private readonly timeoutMs: number;
  private readonly watchers = new Set<Watcher>();

  constructor(opts: EtcdStoreOptions) {
    super();
    if (opts.endpoints.length === 0) throw new TernError('INVALID_CONFIG', 'etcd: no endpoints');
    const o: IOptions = { hosts: opts.endpoints, dialTimeout: opts.timeoutMs ?? 5000 };
    if (opts.ca || opts.cert || opts.key) {
      if (!opts.ca) throw new TernError('INVALID_CONFIG', 'etcd TLS needs a CA');
      if (!!opts.cert !== !!opts.key) throw new TernError('INVALID_CONFIG', 'etcd client TLS needs both cert and key');
      try {
        o.credentials = {
          rootCertificate: fs.readFileSync(opts.ca),
          certChain: opts.cert ? fs.readFileSync(opts.cert) : undefined,
          privateKey: opts.key ? fs.readFileSync(opts.key) : undefined,
        };
      } catch (e) {
        throw new TernError('INVALID_CONFIG', `etcd TLS files: ${messageOf(e)}`, { cause: e });
      }
    }
    this.client = new (etcd3().Etcd3)(o);
    this.prefix = opts.prefix ?? '';
    this.timeoutMs = opts.timeoutMs ?? 5000;
  }

  private call() {
    return { deadline: Date.now() + this.timeoutMs };
  }

  private k(key: string): Buffer {
    return enc(this.prefix + key);
  }

  private toKv(kv: RPC.IKeyValue): KeyValue {
    return {
      key: kv.key.toString('utf8').slice(this.prefix.length),
      value: kv.value.toString('utf8'),
      modRevision: Number(kv.mod_revision),
      createRevision: Number(kv.create_revision),
    };
  }

  private rangeOp(key: string, prefix: boolean): RPC.IRequestOp {
    const k = this.k(key);
    return { request_range: prefix ? { key: k, range_end: etcdPrefixEnd(k) } : { key: k } };
  }



  async read(keys: string[], prefixes: string[] = []): Promise<Snapshot> {
    // A compare-less transaction of ranges: every read at one revision, one
    // round trip. Beyond etcd's per-transaction limit the chunks are pinned
    // to the first chunk's revision, so the snapshot stays consistent.
    const all = [...keys.map((k) => this.rangeOp(k, false)), ...prefixes.map((p) => this.rangeOp(p, true))];
    const responses: RPC.IResponseOp[] = [];
    let revision = 0;
    try {
      for (let i = 0; i === 0 || i < all.length; i += MAX_TXN_OPS) {
        const chunk = all.slice(i, i + MAX_TXN_OPS);
        if (revision) for (const op of chunk) op.request_range!.revision = String(revision);
        const res = await this.client.kv.txn({ compare: [], success: chunk, failure: [] }, this.call());
        if (!revision) revision = Number(res.header.revision);
        responses.push(...res.responses);
      }
    } catch (e) {
      throw toStoreError(e, 'read');
    }
    const values = new Map<string, KeyValue>();
    const lists = new Map<string, KeyValue[]>();
    keys.forEach((k, i) => {
      const kv = responses[i].response_range.kvs[0];
      if (kv) values.set(k, this.toKv(kv));
    });
    prefixes.forEach((p, i) => {
      lists.set(p, responses[keys.length + i].response_range.kvs.map((kv) => this.toKv(kv)));
    });
    return { revision, values, lists };
  }

  async txn(ops: TxnOp[]): Promise<TxnResult> {
    const compare: RPC.ICompare[] = [];
    const success: RPC.IRequestOp[] = [];
    for (const o of ops) {
      const key = this.k(o.key);
      const mod = (rev: number): RPC.ICompare => ({ key, target: 'Mod', result: 'Equal', mod_revision: String(rev) });
      switch (o.op) {
        case 'create':
          compare.push(mod(0));
          success.push({ request_put: { key, value: enc(o.value) } });
          break;
        case 'update':
          compare.push(mod(o.revision));
          success.push({ request_put: { key, value: enc(o.value) } });
          break;
        case 'put':
          success.push({ request_put: { key, value: enc(o.value) } });
          break;
        case 'delete':
          if (o.revision !== undefined) compare.push(mod(o.revision));
          success.push({ request_delete_range: { key } });
          break;
        case 'check':
          compare.push(mod(o.revision));
          break;
        case 'absent':
          // Over a range, etcd compares every key in it; an empty range compares as version 0.
          compare.push({ key, range_end: this.k(o.end), target: 'Version', result: 'Equal', version: '0' });
          break;
      }
    }
    const touched = [...new Set(ops.map((o) => o.key))];
    let res: RPC.ITxnResponse;
    try {
      res = await this.client.kv.txn({ compare, success, failure: touched.map((k) => this.rangeOp(k, false)) }, this.call());
    } catch (e) {
      throw toStoreError(e, 'txn');
    }
    const revision = Number(res.header.revision);
    if (res.succeeded) return { ok: true, revision };
    const current = new Map<string, KeyValue>();
    touched.forEach((k, i) => {
      const kv = res.responses[i].response_range.kvs[0];
      if (kv) current.set(k, this.toKv(kv));
    });
    return { ok: false, revision, current };
  }

  async watch(prefix: string, fromRevision: number, onEvent: (e: WatchEvent) => void, onError?: (e: Error) => void): Promise<Watcher> {
    let w;
    try {
      w = await this.client
        .watch()
        .prefix(this.prefix + prefix)
        .startRevision(String(fromRevision + 1))
        .create();
    } catch (e) {
      throw toStoreError(e, 'watch');
    }
    let last = fromRevision; // every event up to here was delivered
    let broken = false;
    let wake: (() => void) | undefined;
    const delivered = (rev: number) => {
      last = Math.max(last, rev);
      wake?.();
    };
    w.on('put', (kv) => {
      const v = this.toKv(kv);
      onEvent({ type: 'put', key: v.key, value: v.value, revision: v.modRevision });
      delivered(v.modRevision);
    });
    w.on('delete', (kv) => {
      onEvent({ type: 'delete', key: kv.key.toString('utf8').slice(this.prefix.length), revision: Number(kv.mod_revision) });
      delivered(Number(kv.mod_revision));
    });
    // 'error' is a cancelled watch (compacted, or rejected), 'end' a closed one: neither resumes.
    w.on('error', (e) => {
      broken = true;
      onError?.(e);
    });
    w.on('end', () => (broken = true));
    const key = this.k(prefix);
    const range = { key, range_end: etcdPrefixEnd(key) };
    const watcher: Watcher = {
      close: async () => {
        this.watchers.delete(watcher);
        await w.cancel().catch(() => undefined);
      },
      // etcd3 cannot ask for a progress notification, so compare instead: if no key under the prefix changed after
      // `last` and as many keys exist as at `last`, the prefix at the current revision is what the delivered events say.
      progress: async (timeoutMs) => {
        const deadline = Date.now() + timeoutMs;
        for (;;) {
          if (broken) throw new TernError('TRY_AGAIN_LATER', 'etcd watch ended');
          const at = last;
          if (at < 1) throw new TernError('TRY_AGAIN_LATER', 'etcd watch has no revision to compare');
          let res: RPC.ITxnResponse;
          try {
            res = await this.client.kv.txn(
              {
                compare: [{ ...range, target: 'Mod', result: 'Less', mod_revision: String(at + 1) }],
                success: [{ request_range: { ...range, count_only: true } }, { request_range: { ...range, count_only: true, revision: String(at) } }],
                failure: [],
              },
              this.call(),
            );
          } catch (e) {
            throw toStoreError(e, 'watch progress');
          }
          const counts = res.responses.map((r) => Number(r.response_range.count));
          // An event delivered meanwhile may be half of a pair the counts cannot see: compare again.
          if (res.succeeded && counts[0] === counts[1] && last === at) return Number(res.header.revision);
          if (Date.now() >= deadline) throw new TernError('TRY_AGAIN_LATER', `etcd watch of ${prefix} behind after ${timeoutMs} ms`);
          await new Promise<void>((r) => {
            const t = setTimeout(r, 5);
            wake = () => {
              clearTimeout(t);
              r();
            };
          });
          wake = undefined;
        }
      },
    };
    this.watchers.add(watcher);
    return watcher;
  }


  async close(): Promise<void> {
    for (const w of [...this.watchers]) await w.close();
    this.client.close();
  }
}
