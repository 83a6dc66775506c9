/**
 * BlockIpam: the store-backed shell around the pure allocator. It keeps a
 * cache of the pools, the block affinities and this node's blocks; every
 * write is a compare-and-swap transaction, so a stale cache only costs a
 * retry, never a duplicate. A failed transaction returns the current values
 * of the keys it touched, which refreshes the cache without another read:
 * in the steady state an allocation is exactly one round trip (the commit).
 */
import type { Logger } from '../lib/log';
import { silentLogger } from '../lib/log';
import { TernError, isTernError } from '../lib/errors';
import { canonicalAddr, familyOf, formatPrefix, parsePrefix, prefixContains, addrToBigInt, type Family } from '../lib/cidr';
import type { KeyValue, Store, TxnOp } from '../datastore/types';
import { handleId, type AllocateRequest, type AllocatedIp, type Allocation, type AllocationKey, type Ipam } from './types';
import {
  AFFINITY,
  CLAIMS,
  HANDLES,
  POOLS,
  ROOT,
  claimGuards,
  claimKey,
  prefixesOverlap,
  affinityKey,
  affinityPrefix,
  blockKey,
  handleKey,
  normalisePool,
  parseJson,
  poolKey,
  type Block,
  type HandleIp,
  type HandleRecord,
  type IPPool,
} from './model';
import { assign, blockFor, hasFree, nextFreeBlock, newBlock, release, selectPools, type AssignResult } from './allocator';

export interface BlockIpamOptions {
  store: Store;
  /** This node's name (see resolveNodeName). */
  node: string;
  log?: Logger;
  now?: () => number;
  nodeLabels?: Record<string, string>;
  /** Borrow from other nodes' blocks when the pool has no free block (off: strict affinity). */
  allowBorrow?: boolean;
  /** Freed addresses are not reused for this long (ms). */
  cooldownMs?: number;
  /** Compare-and-swap attempts before TRY_AGAIN_LATER. */
  maxAttempts?: number;
  /** Time allowed for conflicting retries before TRY_AGAIN_LATER (ms). */
  retryBudgetMs?: number;
  /** Close the store with the allocator (when the allocator opened it). */
  ownsStore?: boolean;
}

interface CachedBlock {
  kv: KeyValue;
  block: Block;
}

interface PlannedIp {
  ip: HandleIp;
  ops: TxnOp[];
  block: Block;
  key: string;
  borrowedFrom?: string;
}

/** Thrown by plan() when it would claim a block or give up on a possibly stale view. */
class StaleView extends Error {}

function toAllocation(rec: HandleRecord): Allocation {
  const a: Allocation = {
    key: { network: rec.network, containerId: rec.containerId, ifname: rec.ifname },
    ips: rec.ips.map((i) => ({ address: i.address, family: i.family, pool: i.pool })),
  };
  if (rec.attrs) a.attrs = rec.attrs;
  return a;
}

export class BlockIpam implements Ipam {
  readonly node: string;
  private readonly store: Store;
  private readonly log: Logger;
  private readonly now: () => number;
  private readonly opts: BlockIpamOptions;
  private readonly pools = new Map<string, IPPool>();
  /** pool cidr -> block cidr -> owning node. */
  private readonly affinity = new Map<string, Map<string, string>>();
  /** block key -> value, for this node's blocks (and borrowed ones). */
  private readonly blocks = new Map<string, CachedBlock>();
  /** Pools whose affinities and node blocks are loaded. */
  private readonly loaded = new Set<string>();
  /** pool cidr -> blocks whose claim was refused because they overlap an existing block (of another pool). */
  private readonly overlapped = new Map<string, Set<string>>();
  private chain: Promise<unknown> = Promise.resolve();

  constructor(opts: BlockIpamOptions) {
    this.opts = opts;
    this.store = opts.store;
    this.node = opts.node;
    this.log = (opts.log ?? silentLogger()).child({ component: 'ipam', node: opts.node });
    this.now = opts.now ?? Date.now;
  }

  /** One operation at a time per instance: concurrent calls would only race each other's CAS. */
  private serial<T>(fn: () => Promise<T>): Promise<T> {
    const p = this.chain.then(fn, fn);
    this.chain = p.catch(() => undefined);
    return p;
  }

  async allocate(req: AllocateRequest): Promise<AllocatedIp[]> {
    return (await this.allocateNew(req)).ips;
  }

  allocateNew(req: AllocateRequest): Promise<{ ips: AllocatedIp[]; created: boolean }> {
    return this.serial(() => this.doAllocate(req));
  }

  release(key: AllocationKey, alongside: TxnOp[] = []): Promise<void> {
    return this.serial(() => this.doRelease(key, alongside));
  }

  poolRecord(cidr: string): IPPool | undefined {
    return this.pools.get(cidr);
  }

  async get(key: AllocationKey): Promise<Allocation | undefined> {
    const kv = await this.store.get(handleKey(handleId(key)));
    return kv ? toAllocation(parseJson<HandleRecord>('handle', kv.value)) : undefined;
  }

  async list(network?: string): Promise<Allocation[]> {
    const { items } = await this.store.list(network ? `${HANDLES}${network}.` : HANDLES);
    return items.map((kv) => toAllocation(parseJson<HandleRecord>('handle', kv.value)));
  }

  /**
   * Whether an allocation could succeed now (CNI STATUS): per family, one of
   * this node's blocks has a free address, or a pool still has an unclaimed
   * block (or borrowing is on and any block has room).
   */
  status(pools: string[]): Promise<void> {
    return this.serial(async () => {
      const cidrs = pools.map((p) => formatPrefix(parsePrefix(p)));
      await this.load(cidrs, undefined, true);
      const now = this.now();
      for (const f of new Set(cidrs.map((c) => familyOf(c.split('/')[0])))) {
        const usable = selectPools(cidrs.map((c) => this.pools.get(c)!), f, undefined, this.opts.nodeLabels ?? {});
        if (usable.length === 0) throw new TernError('NOT_READY', `no enabled IPv${f} pool for node ${this.node} among ${cidrs.join(', ')}`);
        const room = usable.some((pool) => {
          const mine = [...this.blocks.values()].filter((b) => b.block.pool === pool.cidr && (b.block.affinity === this.node || this.opts.allowBorrow));
          if (mine.some((b) => hasFree(b.block, pool, now, this.opts.cooldownMs ?? 0))) return true;
          return nextFreeBlock(pool, new Set(this.affinity.get(pool.cidr)?.keys() ?? [])) !== undefined;
        });
        if (!room) throw new TernError('NOT_READY', `IPv${f} pools ${usable.map((p) => p.cidr).join(', ')} have no free address for node ${this.node}`);
      }
    });
  }

  async close(): Promise<void> {
    await this.chain;
    if (this.opts.ownsStore) await this.store.close();
  }

  private poolFrom(cidr: string, kv: KeyValue | undefined): IPPool {
    return kv ? normalisePool(parseJson<IPPool>('pool', kv.value)) : normalisePool({ cidr });
  }

  /**
   * Cold start for the given pools: the pool records, their affinity indexes
   * and the handle in one read, then this node's blocks in a second. Pools
   * named in the CNI config but absent from the store are created with defaults.
   */
  private async load(cidrs: string[], hk?: string, force = false): Promise<{ handle?: KeyValue; read: boolean }> {
    const todo = cidrs.filter((c) => force || !this.loaded.has(c));
    if (todo.length === 0) return { read: false };
    if (force) for (const k of [...this.blocks.keys()]) if (todo.some((c) => k.startsWith(blockKey(c, '')))) this.blocks.delete(k);
    const snap = await this.store.read([...(hk ? [hk] : []), ...todo.map(poolKey)], todo.map(affinityPrefix));
    const handle = hk ? snap.values.get(hk) : undefined;
    const mine: string[] = [];
    for (const c of todo) {
      const kv = snap.values.get(poolKey(c));
      const pool = this.poolFrom(c, kv);
      this.pools.set(c, pool);
      if (!kv) {
        const other = (await this.store.list(POOLS)).items.map((p) => parseJson<IPPool>('pool', p.value).cidr).find((o) => o !== c && prefixesOverlap(o, c));
        if (other) throw new TernError('INVALID_CONFIG', `invalid field "ipam.pools": pool ${c} overlaps pool ${other} in the datastore`);
        await this.store.create(poolKey(c), JSON.stringify(pool)).catch((e) => {
          if (!isTernError(e, 'ALREADY_EXISTS')) throw e;
        });
      }
      const aff = new Map<string, string>();
      for (const a of snap.lists.get(affinityPrefix(c)) ?? []) {
        const block = a.key.slice(affinityPrefix(c).length).replace('-', '/');
        aff.set(block, a.value);
        if (a.value === this.node && !this.blocks.has(blockKey(c, block))) mine.push(blockKey(c, block));
      }
      this.affinity.set(c, aff);
    }
    if (handle) return { handle, read: true };
    if (mine.length > 0) await this.fetchBlocks(mine);
    for (const c of todo) this.loaded.add(c);
    return { read: true };
  }

  private async fetchBlocks(keys: string[]): Promise<void> {
    const snap = await this.store.read(keys);
    for (const k of keys) {
      const kv = snap.values.get(k);
      if (kv) this.blocks.set(k, { kv, block: parseJson<Block>('block', kv.value) });
      else this.blocks.delete(k);
    }
  }

  /**
   * A failed claim that no racing write explains (its affinity and block are
   * still absent, every block it updates is unchanged) failed on an overlap
   * guard: that block overlaps an existing block, so never try it again.
   */
  private noteOverlaps(planned: PlannedIp[], ops: TxnOp[], cur: Map<string, KeyValue>): void {
    const raced = ops.some(
      (o) => (o.op === 'create' && !o.key.startsWith(CLAIMS) && o.key.startsWith(ROOT) && !o.key.startsWith(HANDLES) && cur.has(o.key)) || (o.op === 'update' && cur.get(o.key)?.modRevision !== o.revision),
    );
    if (raced) return;
    for (const p of planned) {
      if (!p.ops.some((o) => o.op === 'create' && o.key === claimKey(p.ip.block))) continue;
      const set = this.overlapped.get(p.ip.pool) ?? new Set<string>();
      set.add(p.ip.block);
      this.overlapped.set(p.ip.pool, set);
      this.log.warn({ block: p.ip.block, pool: p.ip.pool }, 'block overlaps an existing block of another pool; skipping it');
    }
  }

  /** Take what a failed transaction saw into the cache. */
  private absorb(current: Map<string, KeyValue>, touched: string[]): void {
    for (const k of touched) {
      const kv = current.get(k);
      if (k.startsWith(AFFINITY)) {
        const [poolName, blockName] = k.slice(AFFINITY.length).split('/');
        const pool = poolName.replace('-', '/');
        const aff = this.affinity.get(pool) ?? new Map<string, string>();
        this.affinity.set(pool, aff);
        if (kv) aff.set(blockName.replace('-', '/'), kv.value);
        else aff.delete(blockName.replace('-', '/'));
      } else if (k.startsWith(HANDLES) || k.startsWith(CLAIMS)) {
        continue;
      } else if (kv) {
        this.blocks.set(k, { kv, block: parseJson<Block>('block', kv.value) });
      } else {
        this.blocks.delete(k);
      }
    }
  }

  private async doAllocate(req: AllocateRequest): Promise<{ ips: AllocatedIp[]; created: boolean }> {
    const id = handleId(req.key);
    const hk = handleKey(id);
    const cidrs = [...new Set(req.pools.map((p) => formatPrefix(parsePrefix(p))))];
    if (cidrs.length === 0) throw new TernError('INVALID_CONFIG', 'no pools given');
    const families = [...new Set(cidrs.map((c) => familyOf(c.split('/')[0])))].sort();
    const requested = new Map<Family, string>();
    for (const r of req.requested ?? []) {
      const a = canonicalAddr(r);
      const f = familyOf(a);
      if (requested.has(f)) throw new TernError('INVALID_CONFIG', `more than one IPv${f} address requested`);
      if (!families.includes(f)) throw new TernError('INVALID_CONFIG', `requested ${a} but no IPv${f} pool is configured`);
      requested.set(f, a);
    }
    const existing = (kv: KeyValue) => ({ ips: toAllocation(parseJson<HandleRecord>('handle', kv.value)).ips, created: false });
    const first = await this.load(cidrs, hk);
    if (first.handle) return existing(first.handle);
    // A cached view is good enough to allocate from (the CAS catches staleness),
    // but claiming a block or reporting exhaustion must see the current state.
    let fresh = first.read;

    const maxAttempts = this.opts.maxAttempts ?? 500;
    const deadline = Date.now() + (this.opts.retryBudgetMs ?? 30_000);
    for (let attempt = 1; attempt <= maxAttempts && Date.now() < deadline; attempt++) {
      let planned: PlannedIp[];
      try {
        planned = [];
        for (const f of families) planned.push(await this.plan(req, id, cidrs, f, requested.get(f), fresh));
      } catch (e) {
        if (!(e instanceof StaleView)) throw e;
        fresh = true;
        const h = await this.load(cidrs, hk, true);
        if (h.handle) return existing(h.handle);
        continue;
      }
      const rec: HandleRecord = {
        id,
        network: req.key.network,
        containerId: req.key.containerId,
        ifname: req.key.ifname,
        node: this.node,
        ips: planned.map((p) => p.ip),
        created: this.now(),
      };
      if (req.attrs) rec.attrs = req.attrs;
      const ips = rec.ips.map((i) => ({ address: i.address, family: i.family, pool: i.pool }));
      const ops: TxnOp[] = [...planned.flatMap((p) => p.ops), { op: 'create', key: hk, value: JSON.stringify(rec) }];
      const r = await this.store.txn([...ops, ...(req.alongside?.(ips) ?? [])]);
      if (r.ok) {
        for (const p of planned) {
          this.blocks.set(p.key, { kv: { key: p.key, value: JSON.stringify(p.block), modRevision: r.revision, createRevision: r.revision }, block: p.block });
          const aff = this.affinity.get(p.ip.pool)!;
          if (!aff.has(p.ip.block)) aff.set(p.ip.block, this.node);
          if (p.borrowedFrom) this.log.warn({ address: p.ip.address, block: p.ip.block, owner: p.borrowedFrom, handle: id }, 'borrowed an address from another node\'s block');
          if (p.ops.some((o) => o.op === 'create')) this.log.info({ block: p.ip.block, pool: p.ip.pool }, 'claimed block');
        }
        return { ips, created: true };
      }
      const cur = r.current ?? new Map<string, KeyValue>();
      const h = cur.get(hk);
      if (h) return existing(h);
      this.noteOverlaps(planned, ops, cur);
      this.absorb(cur, ops.map((o) => o.key));
      // Lost a claim race: others are claiming too, so learning one block per
      // conflict could trail them forever. Re-read the whole index instead.
      if (ops.some((o) => o.op === 'create' && o.key !== hk && cur.has(o.key))) fresh = false;
      this.log.debug({ attempt, handle: id, keys: ops.map((o) => o.key) }, 'allocation conflicted; retrying');
      // Exponential backoff with full jitter, so racing writers spread out.
      await new Promise((res) => setTimeout(res, Math.random() * Math.min(200, 5 * 2 ** Math.min(attempt, 6))));
    }
    throw new TernError('TRY_AGAIN_LATER', `allocation of ${id} kept conflicting with concurrent writers`);
  }

  /** Decide where one family's address comes from, as transaction ops. */
  private async plan(req: AllocateRequest, id: string, cidrs: string[], f: Family, requested: string | undefined, fresh: boolean): Promise<PlannedIp> {
    const now = this.now();
    const labels = { 'kubernetes.io/hostname': this.node, ...(this.opts.nodeLabels ?? {}) };
    const familyPools = cidrs.map((c) => this.pools.get(c)!).filter((p) => familyOf(p.cidr.split('/')[0]) === f);
    const pools = selectPools(familyPools, f, req.attrs, labels);
    const cooldownMs = this.opts.cooldownMs ?? 0;

    const fromBlock = (pool: IPPool, key: string, cached: CachedBlock, r: AssignResult & { ok: true }, owner: string): PlannedIp => ({
      ip: { address: r.address, family: f, pool: pool.cidr, block: cached.block.cidr, seq: r.seq },
      ops: [{ op: 'update', key, value: JSON.stringify(r.block), revision: cached.kv.modRevision }],
      block: r.block,
      key,
      borrowedFrom: owner === this.node ? undefined : owner,
    });
    const claim = (pool: IPPool, cidr: string, want?: string): PlannedIp | undefined => {
      const r = assign(newBlock(pool, cidr, this.node), pool, id, now, { requested: want });
      if (!r.ok) return undefined;
      const key = blockKey(pool.cidr, cidr);
      return {
        ip: { address: r.address, family: f, pool: pool.cidr, block: cidr, seq: r.seq },
        ops: [
          { op: 'create', key: affinityKey(pool.cidr, cidr), value: this.node },
          { op: 'create', key, value: JSON.stringify(r.block) },
          { op: 'create', key: claimKey(cidr), value: key },
          ...claimGuards(cidr),
        ],
        block: r.block,
        key,
      };
    };

    if (requested) {
      const pool = familyPools.find((p) => prefixContains(parsePrefix(p.cidr), addrToBigInt(requested)));
      if (!pool) throw new TernError('INVALID_CONFIG', `requested ${requested} lies outside the configured pools`);
      const cidr = blockFor(pool, requested)!;
      const owner = this.affinity.get(pool.cidr)?.get(cidr);
      if (owner === undefined) {
        if (this.overlapped.get(pool.cidr)?.has(cidr)) throw new TernError('CONFLICT', `requested ${requested} lies in block ${cidr}, which overlaps a block of another pool`);
        if (!fresh) throw new StaleView();
        const p = claim(pool, cidr, requested);
        if (!p) throw new TernError('CONFLICT', `requested ${requested} is reserved`);
        return p;
      }
      if (owner !== this.node && !this.opts.allowBorrow) {
        throw new TernError('CONFLICT', `requested ${requested} lies in block ${cidr} of node ${owner} (strict affinity)`);
      }
      const key = blockKey(pool.cidr, cidr);
      if (!this.blocks.has(key)) await this.fetchBlocks([key]);
      const cached = this.blocks.get(key);
      if (!cached) throw new TernError('TRY_AGAIN_LATER', `block ${cidr} is changing`);
      const r = assign(cached.block, pool, id, now, { requested, borrower: owner === this.node ? undefined : this.node });
      if (!r.ok) throw new TernError('CONFLICT', `requested ${requested} is ${r.reason === 'reserved' ? 'reserved' : 'in use'}`);
      return fromBlock(pool, key, cached, r, owner);
    }

    if (pools.length === 0) throw new TernError('IPAM_EXHAUSTED', `no usable IPv${f} pool for node ${this.node} among ${cidrs.join(', ')}`);
    // 1. This node's own blocks, in address order.
    for (const pool of pools) {
      const mine = [...(this.affinity.get(pool.cidr) ?? new Map<string, string>())].filter(([, n]) => n === this.node).map(([b]) => b).sort();
      for (const cidr of mine) {
        const key = blockKey(pool.cidr, cidr);
        const cached = this.blocks.get(key);
        if (!cached) continue;
        const r = assign(cached.block, pool, id, now, { cooldownMs });
        if (r.ok) return fromBlock(pool, key, cached, r, this.node);
      }
    }
    if (!fresh) throw new StaleView();
    // 2. A new block.
    for (const pool of pools) {
      const cidr = nextFreeBlock(pool, new Set([...(this.affinity.get(pool.cidr)?.keys() ?? []), ...(this.overlapped.get(pool.cidr) ?? [])]));
      const p = cidr ? claim(pool, cidr) : undefined;
      if (p) return p;
    }
    // 3. Another node's block, only when borrowing is on.
    if (this.opts.allowBorrow) {
      for (const pool of pools) {
        const others = [...(this.affinity.get(pool.cidr) ?? new Map<string, string>())].filter(([, n]) => n !== this.node).sort();
        const missing = others.map(([b]) => blockKey(pool.cidr, b)).filter((k) => !this.blocks.has(k));
        if (missing.length) await this.fetchBlocks(missing);
        for (const [cidr, owner] of others) {
          const key = blockKey(pool.cidr, cidr);
          const cached = this.blocks.get(key);
          if (!cached || !hasFree(cached.block, pool, now, cooldownMs)) continue;
          const r = assign(cached.block, pool, id, now, { cooldownMs, borrower: this.node });
          if (r.ok) return fromBlock(pool, key, cached, r, owner);
        }
      }
    }
    throw new TernError('IPAM_EXHAUSTED', `IPv${f} pools ${pools.map((p) => p.cidr).join(', ')} have no free block for node ${this.node}${this.opts.allowBorrow ? '' : ' (strict affinity)'}`);
  }

  private async doRelease(key: AllocationKey, alongside: TxnOp[]): Promise<void> {
    const id = handleId(key);
    const hk = handleKey(id);
    let hkv = await this.store.get(hk);
    for (let attempt = 1; hkv && attempt <= (this.opts.maxAttempts ?? 500); attempt++) {
      const rec = parseJson<HandleRecord>('handle', hkv.value);
      const keys = [...new Set(rec.ips.map((i) => blockKey(i.pool, i.block)))];
      const missing = keys.filter((k) => !this.blocks.has(k));
      if (missing.length) await this.fetchBlocks(missing);
      const ops: TxnOp[] = [];
      const next = new Map<string, Block>();
      for (const ip of rec.ips) {
        const k = blockKey(ip.pool, ip.block);
        const cached = this.blocks.get(k);
        if (!cached) continue;
        const r = release(next.get(k) ?? cached.block, ip.address, this.now(), { handle: id, seq: ip.seq });
        if (r.ok) next.set(k, r.block);
        else this.log.info({ address: ip.address, reason: r.reason, handle: id }, 'release skipped an address no longer held by this handle');
      }
      for (const [k, b] of next) ops.push({ op: 'update', key: k, value: JSON.stringify(b), revision: this.blocks.get(k)!.kv.modRevision });
      ops.push({ op: 'delete', key: hk, revision: hkv.modRevision });
      const r = await this.store.txn([...ops, ...alongside]);
      if (r.ok) {
        for (const [k, b] of next) this.blocks.set(k, { kv: { key: k, value: JSON.stringify(b), modRevision: r.revision, createRevision: 0 }, block: b });
        return;
      }
      const cur = r.current ?? new Map<string, KeyValue>();
      this.absorb(cur, ops.map((o) => o.key));
      hkv = cur.get(hk);
    }
    if (hkv) throw new TernError('TRY_AGAIN_LATER', `release of ${id} kept conflicting`);
    // Nothing (or no longer anything) to release: the records that go with it still go.
    if (alongside.length && !(await this.store.txn(alongside)).ok) throw new TernError('CONFLICT', `datastore transaction of release ${id} failed`);
  }
}
