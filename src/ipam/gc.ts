/**
 * Check, repair and report: `checkIpam` (pure) compares blocks, affinities
 * and handles and returns findings; `repairIpam` frees them, one
 * compare-and-swap transaction per finding, so a concurrent allocation is
 * never undone; `utilisation` (pure) is the `ternctl ipam show` table.
 */
import type { KeyValue, Store, TxnOp } from '../datastore/types';
import { TernError } from '../lib/errors';
import { addrToBigInt, parsePrefix, bigIntToAddr, canonicalAddr, familyOf } from '../lib/cidr';
import { AFFINITY, BLOCKS, CLAIMS, HANDLES, POOLS, affinityKey, claimKey, handleKey, normalisePool, parseJson, type Block, type HandleRecord, type IPPool } from './model';
import { blockCapacity, release, usedCount } from './allocator';
import { handleId, type AllocationKey } from './types';

export interface IpamState {
  revision: number;
  pools: Map<string, { kv: KeyValue; pool: IPPool }>;
  /** block key -> { kv, block } */
  blocks: Map<string, { kv: KeyValue; block: Block }>;
  /** affinity key -> kv (value = node) */
  affinities: Map<string, KeyValue>;
  /** handle id -> { kv, rec } */
  handles: Map<string, { kv: KeyValue; rec: HandleRecord }>;
  /** claim key -> kv (value = block key) */
  claims: Map<string, KeyValue>;
}

/** Everything IPAM keeps, at one revision, in one round trip. */
export async function loadIpamState(store: Store): Promise<IpamState> {
  const snap = await store.read([], [POOLS, BLOCKS, AFFINITY, HANDLES, CLAIMS]);
  const list = (p: string) => snap.lists.get(p) ?? [];
  return {
    revision: snap.revision,
    pools: new Map(list(POOLS).map((kv) => { const pool = normalisePool(parseJson<IPPool>('pool', kv.value)); return [pool.cidr, { kv, pool }]; })),
    blocks: new Map(list(BLOCKS).map((kv) => [kv.key, { kv, block: parseJson<Block>('block', kv.value) }])),
    affinities: new Map(list(AFFINITY).map((kv) => [kv.key, kv])),
    handles: new Map(list(HANDLES).map((kv) => { const rec = parseJson<HandleRecord>('handle', kv.value); return [rec.id, { kv, rec }]; })),
    claims: new Map(list(CLAIMS).map((kv) => [kv.key, kv])),
  };
}

export type Finding =
  /** No live attachment for this handle (per the caller's live set) after the grace period. */
  | { kind: 'leaked-handle'; handle: string }
  /** A handle points at an address its block no longer gives it. */
  | { kind: 'dangling-handle'; handle: string; address: string }
  /** A block holds an address for a handle that does not exist. */
  | { kind: 'leaked-address'; block: string; address: string; handle: string; seq: number }
  /** A block without a (matching) affinity entry, or whose pool is gone. */
  | { kind: 'orphaned-block'; block: string; reason: 'no-affinity' | 'no-pool' }
  /** An affinity entry without its block. */
  | { kind: 'orphaned-affinity'; key: string; node: string }
  /** The affinity index names a different node than the block itself. */
  | { kind: 'inconsistent-affinity'; block: string; index: string; owner: string | null }
  /** Empty for longer than the grace period while its node has other blocks. */
  | { kind: 'empty-block'; block: string; node: string | null; since: number }
  /** Two blocks share addresses (a pool's block size changed, or pools overlapped, before claims were guarded; report only). */
  | { kind: 'overlapping-blocks'; block: string; other: string }
  /** A block without its address-ordered claim, so overlap guards cannot see it (written before the index). */
  | { kind: 'unindexed-block'; block: string; key: string }
  /** A claim whose block is gone: it would keep others from claiming those addresses. */
  | { kind: 'orphaned-claim'; key: string; blockKey: string }
  /** This node routes an address to a pod device whose attachment IPAM does not give it to (report only). */
  | { kind: 'misrouted-address'; address: string; dev: string; routedFor: string; holder?: string }
  /** One address in the endpoint records of several pods (report only). */
  | { kind: 'duplicate-endpoint-address'; address: string; endpoints: string[] };

/** A /32 (/128) route of this node to a pod device, with the attachment (handle id) its ownership mark names. */
export interface PodRoute {
  address: string;
  dev: string;
  handle: string;
}

/** What ACL endpoint records say about addresses. */
export interface EndpointAddresses {
  key: string;
  ips: string[];
}

/** Findings that only an operator can resolve: `release --all` leaves them alone. */
export function repairable(f: Finding): boolean {
  return f.kind !== 'misrouted-address' && f.kind !== 'duplicate-endpoint-address' && f.kind !== 'overlapping-blocks';
}

export interface CheckOptions {
  now: number;
  /** Grace for leaked handles and empty blocks (ms). */
  graceMs: number;
  /** Handle ids with a live attachment; when absent, handles are not judged by liveness. */
  live?: ReadonlySet<string>;
  /** Only judge liveness for handles of this network (CNI GC is per network). */
  network?: string;
  /** This node's routes to pod devices, checked against who holds each address. */
  routes?: PodRoute[];
  /** Endpoint records, checked for an address recorded for two endpoints. */
  endpoints?: EndpointAddresses[];
}

const affKeyOf = (b: Block) => affinityKey(b.pool, b.cidr);

export function checkIpam(s: IpamState, o: CheckOptions): Finding[] {
  const out: Finding[] = [];
  const blocksByCidr = new Map([...s.blocks.values()].map((b) => [b.block.cidr, b.block]));
  for (const { rec } of s.handles.values()) {
    if (o.live && (!o.network || rec.network === o.network) && !o.live.has(rec.id) && o.now - rec.created >= o.graceMs) {
      out.push({ kind: 'leaked-handle', handle: rec.id });
      continue;
    }
    for (const ip of rec.ips) {
      const b = blocksByCidr.get(ip.block);
      const ord = b ? Number(addrToBigInt(ip.address) - parsePrefix(b.cidr).base) : -1;
      const e = b?.used[ord];
      if (!e || e.h !== rec.id || e.s !== ip.seq) out.push({ kind: 'dangling-handle', handle: rec.id, address: ip.address });
    }
  }
  const perNode = new Map<string | null, number>();
  for (const { block } of s.blocks.values()) perNode.set(block.affinity, (perNode.get(block.affinity) ?? 0) + 1);
  for (const { block } of s.blocks.values()) {
    const base = parsePrefix(block.cidr);
    for (const [ord, e] of Object.entries(block.used)) {
      if (!s.handles.has(e.h)) out.push({ kind: 'leaked-address', block: block.cidr, address: bigIntToAddr(base.base + BigInt(ord), base.family), handle: e.h, seq: e.s });
    }
    const aff = s.affinities.get(affKeyOf(block));
    if (!s.pools.has(block.pool)) out.push({ kind: 'orphaned-block', block: block.cidr, reason: 'no-pool' });
    else if (!aff) out.push({ kind: 'orphaned-block', block: block.cidr, reason: 'no-affinity' });
    else if (aff.value !== block.affinity) out.push({ kind: 'inconsistent-affinity', block: block.cidr, index: aff.value, owner: block.affinity });
    if (usedCount(block) === 0 && block.emptySince !== undefined && o.now - block.emptySince >= o.graceMs && (perNode.get(block.affinity) ?? 0) > 1) {
      out.push({ kind: 'empty-block', block: block.cidr, node: block.affinity, since: block.emptySince });
      // Each node keeps at least one block: count this one as gone for its siblings.
      perNode.set(block.affinity, perNode.get(block.affinity)! - 1);
    }
  }
  const blockKeys = new Set(s.blocks.keys());
  for (const [k, kv] of s.affinities) {
    if (!blockKeys.has(BLOCKS + k.slice(AFFINITY.length))) out.push({ kind: 'orphaned-affinity', key: k, node: kv.value });
  }
  const indexed = new Set([...s.claims.values()].map((kv) => kv.value));
  for (const [k, { block }] of s.blocks) if (!indexed.has(k)) out.push({ kind: 'unindexed-block', block: block.cidr, key: k });
  for (const [k, kv] of s.claims) if (!s.blocks.has(kv.value)) out.push({ kind: 'orphaned-claim', key: k, blockKey: kv.value });
  out.push(...overlappingBlocks([...s.blocks.values()].map((b) => b.block.cidr)));
  for (const r of o.routes ?? []) {
    const holder = holderOf(s, r.address);
    if (holder !== r.handle) out.push({ kind: 'misrouted-address', address: r.address, dev: r.dev, routedFor: r.handle, ...(holder ? { holder } : {}) });
  }
  const byAddress = new Map<string, string[]>();
  for (const e of o.endpoints ?? []) {
    for (const ip of new Set(e.ips.map((a) => canonicalAddr(a.split('/')[0])))) byAddress.set(ip, [...(byAddress.get(ip) ?? []), e.key]);
  }
  for (const [address, endpoints] of byAddress) if (endpoints.length > 1) out.push({ kind: 'duplicate-endpoint-address', address, endpoints: endpoints.sort() });
  return out;
}

/** Pairs of blocks sharing addresses: sorted by base, each block against the widest one still open before it. */
export function overlappingBlocks(cidrs: string[]): Finding[] {
  const out: Finding[] = [];
  const blocks = cidrs.map((c) => ({ c, p: parsePrefix(c) })).sort((a, b) => a.p.family - b.p.family || (a.p.base < b.p.base ? -1 : a.p.base > b.p.base ? 1 : a.p.length - b.p.length));
  let open: { c: string; end: bigint; family: number } | undefined;
  for (const { c, p } of blocks) {
    const end = p.base + (1n << BigInt((p.family === 4 ? 32 : 128) - p.length));
    if (open && open.family === p.family && p.base < open.end) out.push({ kind: 'overlapping-blocks', block: c, other: open.c });
    if (!open || open.family !== p.family || end > open.end) open = { c, end, family: p.family };
  }
  return out;
}

/** The handle a block gives `address` to, if any. */
function holderOf(s: IpamState, address: string): string | undefined {
  const a = addrToBigInt(address);
  for (const { block } of s.blocks.values()) {
    const p = parsePrefix(block.cidr);
    if (p.family !== familyOf(address) || a < p.base || a >= p.base + BigInt(blockCapacity(block))) continue;
    const e = block.used[Number(a - p.base)];
    if (e) return e.h;
  }
  return undefined;
}

function findBlock(s: IpamState, cidr: string): { kv: KeyValue; block: Block } | undefined {
  for (const b of s.blocks.values()) if (b.block.cidr === cidr) return b;
  return undefined;
}

/** The transaction that repairs one finding against state `s`, or undefined if nothing is left to do. */
export function repairOps(s: IpamState, f: Finding, now: number): TxnOp[] | undefined {
  switch (f.kind) {
    case 'leaked-handle':
    case 'dangling-handle': {
      const h = s.handles.get(f.handle);
      if (!h) return undefined;
      const ops: TxnOp[] = [];
      const keep = [];
      for (const ip of h.rec.ips) {
        const b = findBlock(s, ip.block);
        if (f.kind === 'dangling-handle' && ip.address !== f.address) {
          keep.push(ip);
          continue;
        }
        if (!b) continue;
        const r = release(b.block, ip.address, now, { handle: f.handle, seq: ip.seq });
        if (r.ok) ops.push({ op: 'update', key: b.kv.key, value: JSON.stringify(r.block), revision: b.kv.modRevision });
      }
      if (keep.length) ops.push({ op: 'update', key: h.kv.key, value: JSON.stringify({ ...h.rec, ips: keep }), revision: h.kv.modRevision });
      else ops.push({ op: 'delete', key: h.kv.key, revision: h.kv.modRevision });
      return ops;
    }
    case 'leaked-address': {
      const b = findBlock(s, f.block);
      const r = b && release(b.block, f.address, now, { handle: f.handle, seq: f.seq });
      if (!b || !r?.ok) return undefined;
      return [
        { op: 'update', key: b.kv.key, value: JSON.stringify(r.block), revision: b.kv.modRevision },
        { op: 'check', key: handleKey(f.handle), revision: 0 },
      ];
    }
    case 'orphaned-block': {
      const b = findBlock(s, f.block);
      if (!b) return undefined;
      // An empty orphan goes; one still holding addresses gets its index back.
      if (usedCount(b.block) === 0) return [{ op: 'delete', key: b.kv.key, revision: b.kv.modRevision }, { op: 'delete', key: affKeyOf(b.block) }, { op: 'delete', key: claimKey(b.block.cidr) }];
      if (f.reason === 'no-affinity' && b.block.affinity) return [{ op: 'create', key: affKeyOf(b.block), value: b.block.affinity }, { op: 'check', key: b.kv.key, revision: b.kv.modRevision }];
      return undefined;
    }
    case 'orphaned-affinity': {
      const kv = s.affinities.get(f.key);
      return kv ? [{ op: 'delete', key: f.key, revision: kv.modRevision }, { op: 'check', key: BLOCKS + f.key.slice(AFFINITY.length), revision: 0 }] : undefined;
    }
    case 'inconsistent-affinity': {
      const b = findBlock(s, f.block);
      const kv = b && s.affinities.get(affKeyOf(b.block));
      if (!b || !kv || !b.block.affinity) return undefined;
      return [{ op: 'update', key: kv.key, value: b.block.affinity, revision: kv.modRevision }, { op: 'check', key: b.kv.key, revision: b.kv.modRevision }];
    }
    case 'misrouted-address':
    case 'duplicate-endpoint-address':
    case 'overlapping-blocks':
      return undefined;
    case 'unindexed-block': {
      const b = s.blocks.get(f.key);
      return b ? [{ op: 'create', key: claimKey(b.block.cidr), value: f.key }, { op: 'check', key: f.key, revision: b.kv.modRevision }] : undefined;
    }
    case 'orphaned-claim': {
      const kv = s.claims.get(f.key);
      return kv ? [{ op: 'delete', key: f.key, revision: kv.modRevision }, { op: 'check', key: f.blockKey, revision: 0 }] : undefined;
    }
    case 'empty-block': {
      const b = findBlock(s, f.block);
      if (!b || usedCount(b.block) > 0) return undefined;
      const aff = s.affinities.get(affKeyOf(b.block));
      return [{ op: 'delete', key: b.kv.key, revision: b.kv.modRevision }, { op: 'delete', key: claimKey(b.block.cidr) }, ...(aff ? [{ op: 'delete' as const, key: aff.key, revision: aff.modRevision }] : [])];
    }
  }
}

export interface RepairReport {
  repaired: Finding[];
  /** Findings whose transaction lost a race (re-run check to see if they remain). */
  skipped: Finding[];
}

/** Apply repairs one transaction each; the state is updated as they land so later ones see earlier writes. */
export async function repairIpam(store: Store, s: IpamState, findings: Finding[], now: number): Promise<RepairReport> {
  const rep: RepairReport = { repaired: [], skipped: [] };
  for (const f of findings) {
    const ops = repairOps(s, f, now);
    if (!ops) {
      rep.skipped.push(f);
      continue;
    }
    const r = await store.txn(ops);
    if (!r.ok) {
      rep.skipped.push(f);
      continue;
    }
    rep.repaired.push(f);
    for (const o of ops) {
      if (o.op === 'check' || o.op === 'absent') continue;
      const kv: KeyValue = { key: o.key, value: o.op === 'delete' ? '' : o.value, modRevision: r.revision, createRevision: r.revision };
      if (o.key.startsWith(BLOCKS)) {
        if (o.op === 'delete') s.blocks.delete(o.key);
        else s.blocks.set(o.key, { kv, block: parseJson<Block>('block', kv.value) });
      } else if (o.key.startsWith(AFFINITY)) {
        if (o.op === 'delete') s.affinities.delete(o.key);
        else s.affinities.set(o.key, kv);
      } else if (o.key.startsWith(CLAIMS)) {
        if (o.op === 'delete') s.claims.delete(o.key);
        else s.claims.set(o.key, kv);
      } else if (o.key.startsWith(HANDLES)) {
        const id = o.key.slice(HANDLES.length);
        if (o.op === 'delete') s.handles.delete(id);
        else s.handles.set(id, { kv, rec: parseJson<HandleRecord>('handle', kv.value) });
      }
    }
  }
  return rep;
}

/**
 * CNI GC (spec 1.1): every handle of `network` not among the valid
 * attachments (and older than the grace period) is released.
 */
export async function gcNetwork(store: Store, network: string, valid: AllocationKey[], now: number, graceMs = 0): Promise<RepairReport> {
  const s = await loadIpamState(store);
  const live = new Set(valid.map(handleId));
  const leaked = checkIpam(s, { now, graceMs, live, network }).filter((f) => f.kind === 'leaked-handle');
  return repairIpam(store, s, leaked, now);
}

/** Empty blocks past the grace period go back to the pool; each node keeps one. With `node`, only that node's. */
export async function reclaimEmptyBlocks(store: Store, now: number, graceMs: number, node?: string): Promise<RepairReport> {
  const s = await loadIpamState(store);
  return repairIpam(store, s, checkIpam(s, { now, graceMs }).filter((f) => f.kind === 'empty-block' && (node === undefined || f.node === node)), now);
}

/** Free one address whoever holds it (operator repair), fixing its handle in the same transaction. */
export async function releaseAddress(store: Store, address: string, now: number): Promise<boolean> {
  const s = await loadIpamState(store);
  const a = addrToBigInt(address);
  for (const b of s.blocks.values()) {
    const p = parsePrefix(b.block.cidr);
    if (a < p.base || a >= p.base + BigInt(blockCapacity(b.block))) continue;
    const e = b.block.used[Number(a - p.base)];
    if (!e) return false;
    const h = s.handles.get(e.h);
    const f: Finding = h ? { kind: 'dangling-handle', handle: e.h, address } : { kind: 'leaked-address', block: b.block.cidr, address, handle: e.h, seq: e.s };
    const ops = repairOps(s, f, now);
    if (!ops) return false;
    const r = await store.txn(ops);
    if (!r.ok) throw new TernError('TRY_AGAIN_LATER', `${address} changed while releasing it`);
    return true;
  }
  return false;
}

export interface BlockRow {
  pool: string;
  block: string;
  node: string | null;
  used: number;
  capacity: number;
  /** Addresses in this block lent to other nodes. */
  borrowed: number;
}

export interface Utilisation {
  pools: { pool: string; mode: string; disabled: boolean; capacity: number; blocks: number; used: number; utilisation: number }[];
  nodes: { node: string | null; blocks: number; used: number; capacity: number; borrowedIn: number }[];
  blocks: BlockRow[];
  /** Routes a fabric router needs: one per block plus one /32 (/128) per borrowed address. */
  fabricRoutes: number;
}

export function utilisation(s: IpamState): Utilisation {
  const blocks: BlockRow[] = [...s.blocks.values()]
    .map(({ block }) => ({
      pool: block.pool,
      block: block.cidr,
      node: block.affinity,
      used: usedCount(block),
      capacity: blockCapacity(block),
      borrowed: Object.values(block.used).filter((e) => e.b).length,
    }))
    .sort((x, y) => (x.pool === y.pool ? compareCidr(x.block, y.block) : x.pool < y.pool ? -1 : 1));
  const pools = [...s.pools.values()].map(({ pool }) => {
    const mine = blocks.filter((b) => b.pool === pool.cidr);
    const p = parsePrefix(pool.cidr);
    const capacity = Number(1n << BigInt((p.family === 4 ? 32 : 128) - p.length));
    const used = mine.reduce((n, b) => n + b.used, 0);
    return { pool: pool.cidr, mode: pool.mode, disabled: pool.disabled, capacity, blocks: mine.length, used, utilisation: capacity ? used / capacity : 0 };
  });
  const nodes = new Map<string | null, Utilisation['nodes'][number]>();
  for (const b of blocks) {
    const n = nodes.get(b.node) ?? { node: b.node, blocks: 0, used: 0, capacity: 0, borrowedIn: 0 };
    n.blocks++;
    n.used += b.used - b.borrowed;
    n.capacity += b.capacity;
    nodes.set(b.node, n);
  }
  for (const { block } of s.blocks.values()) {
    for (const e of Object.values(block.used)) {
      if (!e.b) continue;
      const n = nodes.get(e.b) ?? { node: e.b, blocks: 0, used: 0, capacity: 0, borrowedIn: 0 };
      n.borrowedIn++;
      n.used++;
      nodes.set(e.b, n);
    }
  }
  return {
    pools,
    nodes: [...nodes.values()].sort((a, b) => String(a.node).localeCompare(String(b.node))),
    blocks,
    fabricRoutes: blocks.length + blocks.reduce((n, b) => n + b.borrowed, 0),
  };
}

function compareCidr(a: string, b: string): number {
  const x = addrToBigInt(a.split('/')[0]);
  const y = addrToBigInt(b.split('/')[0]);
  return x < y ? -1 : x > y ? 1 : 0;
}

