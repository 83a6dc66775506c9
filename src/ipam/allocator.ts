/**
 * The pure allocator: block state in, decision out. No I/O and no logging:
 * the store-backed shell (block-ipam.ts) reads blocks, asks these functions
 * what to write, and writes it with compare-and-swap.
 */
import { addrToBigInt, bigIntToAddr, familyOf, parsePrefix, prefixContains, prefixSize, type Family, type Prefix } from '../lib/cidr';
import type { AllocationAttrs } from './types';
import type { Block, IPPool } from './model';

export type AssignFailure = 'full' | 'cooldown' | 'in-use' | 'reserved' | 'outside';

export type AssignResult =
  | { ok: true; block: Block; address: string; seq: number; ordinal: number }
  | { ok: false; reason: AssignFailure };

export type ReleaseResult =
  | { ok: true; block: Block }
  /** Not allocated, or allocated again since (another handle or a newer sequence). */
  | { ok: false; reason: 'not-allocated' | 'stale' | 'outside' };

export interface AssignOptions {
  /** A freed address is not reused until this long after its release (ms). */
  cooldownMs?: number;
  /** A specific address (no prefix length). */
  requested?: string;
  /** The borrowing node, when the block belongs to another node. */
  borrower?: string;
}

function blockPrefix(b: Block): Prefix {
  return parsePrefix(b.cidr);
}

function reservedPrefixes(pool: IPPool): Prefix[] {
  return pool.reserved.map((r) => parsePrefix(r));
}

function isReserved(res: Prefix[], addr: bigint): boolean {
  return res.some((r) => prefixContains(r, addr));
}

export function blockCapacity(b: Block): number {
  return Number(prefixSize(blockPrefix(b)));
}

/** A new block, every ordinal free since "never" (0), so never-used addresses go first in order. */
export function newBlock(pool: IPPool, cidr: string, node: string): Block {
  const size = Number(prefixSize(parsePrefix(cidr)));
  const free: [number, number][] = [];
  for (let i = 0; i < size; i++) free.push([i, 0]);
  return { cidr, pool: pool.cidr, affinity: node, seq: 0, used: {}, free };
}

function cloneBlock(b: Block): Block {
  return { ...b, used: { ...b.used }, free: b.free.slice() };
}

/**
 * Assign one address of `block` to `handle`: the oldest-freed address past
 * its cooldown, or exactly `requested`. Reservations are never handed out.
 */
export function assign(block: Block, pool: IPPool, handle: string, now: number, opts: AssignOptions = {}): AssignResult {
  const bp = blockPrefix(block);
  const res = reservedPrefixes(pool);
  let idx = -1;
  if (opts.requested !== undefined) {
    const a = addrToBigInt(opts.requested);
    if (familyOf(opts.requested) !== bp.family || !prefixContains(bp, a)) return { ok: false, reason: 'outside' };
    if (isReserved(res, a)) return { ok: false, reason: 'reserved' };
    const ord = Number(a - bp.base);
    if (block.used[ord]) return { ok: false, reason: 'in-use' };
    idx = block.free.findIndex(([o]) => o === ord);
    if (idx < 0) return { ok: false, reason: 'in-use' };
  } else {
    const cooldown = opts.cooldownMs ?? 0;
    let cooling = false;
    for (let i = 0; i < block.free.length; i++) {
      const [ord, t] = block.free[i];
      if (t !== 0 && now - t < cooldown) {
        // The queue is in release order: everything after this was freed later.
        cooling = true;
        break;
      }
      if (!isReserved(res, bp.base + BigInt(ord))) {
        idx = i;
        break;
      }
    }
    if (idx < 0) return { ok: false, reason: cooling ? 'cooldown' : 'full' };
  }
  const out = cloneBlock(block);
  const [ord] = out.free.splice(idx, 1)[0];
  const seq = out.seq + 1;
  out.seq = seq;
  out.used[ord] = opts.borrower ? { h: handle, s: seq, b: opts.borrower } : { h: handle, s: seq };
  delete out.emptySince;
  return { ok: true, block: out, address: bigIntToAddr(bp.base + BigInt(ord), bp.family), seq, ordinal: ord };
}

/**
 * Free `address` if it is still held by `handle` under `seq`. A stale
 * release (the address was freed and handed out again since) changes nothing.
 * Without handle and seq the address is freed whoever holds it (operator repair).
 */
export function release(block: Block, address: string, now: number, owner?: { handle: string; seq: number }): ReleaseResult {
  const bp = blockPrefix(block);
  const a = addrToBigInt(address);
  if (familyOf(address) !== bp.family || !prefixContains(bp, a)) return { ok: false, reason: 'outside' };
  const ord = Number(a - bp.base);
  const e = block.used[ord];
  if (!e) return { ok: false, reason: 'not-allocated' };
  if (owner && (e.h !== owner.handle || e.s !== owner.seq)) return { ok: false, reason: 'stale' };
  const out = cloneBlock(block);
  delete out.used[ord];
  out.free.push([ord, now]);
  if (Object.keys(out.used).length === 0) out.emptySince = now;
  return { ok: true, block: out };
}

export function usedCount(b: Block): number {
  return Object.keys(b.used).length;
}

/** Whether the block could satisfy a non-specific request now. */
export function hasFree(block: Block, pool: IPPool, now: number, cooldownMs = 0): boolean {
  return assign(block, pool, '', now, { cooldownMs }).ok;
}

/** The block (CIDR) of `pool` that contains `address`. */
export function blockFor(pool: IPPool, address: string): string | undefined {
  const pp = parsePrefix(pool.cidr);
  const a = addrToBigInt(address);
  if (familyOf(address) !== pp.family || !prefixContains(pp, a)) return undefined;
  const size = 1n << BigInt((pp.family === 4 ? 32 : 128) - pool.blockSize);
  return `${bigIntToAddr(a - ((a - pp.base) % size), pp.family)}/${pool.blockSize}`;
}

/** The first block of `pool` (in address order) that nobody holds and that is not wholly reserved. */
export function nextFreeBlock(pool: IPPool, taken: ReadonlySet<string>): string | undefined {
  const pp = parsePrefix(pool.cidr);
  const bits = pp.family === 4 ? 32 : 128;
  const size = 1n << BigInt(bits - pool.blockSize);
  const count = prefixSize(pp) / size;
  const res = reservedPrefixes(pool);
  for (let i = 0n; i < count; i++) {
    const base = pp.base + i * size;
    const cidr = `${bigIntToAddr(base, pp.family)}/${pool.blockSize}`;
    if (taken.has(cidr)) continue;
    const r = res.find((x) => x.length <= pool.blockSize && prefixContains(x, base));
    // Jump past a reservation that covers whole blocks instead of stepping through it.
    if (r) i = (r.base + prefixSize(r) - pp.base) / size - 1n;
    else return cidr;
  }
  return undefined;
}

export function poolFamily(pool: IPPool): Family {
  return familyOf(pool.cidr.split('/')[0]);
}

function matchesSelector(sel: Record<string, string>, labels: Record<string, string>): boolean {
  return Object.entries(sel).every(([k, v]) => labels[k] === v);
}

function scopedTo(pool: IPPool, attrs: AllocationAttrs | undefined): boolean | undefined {
  if (!pool.namespaces && !pool.tenants) return undefined;
  return (!!attrs?.namespace && !!pool.namespaces?.includes(attrs.namespace)) || (!!attrs?.tenant && !!pool.tenants?.includes(attrs.tenant));
}

/**
 * Pools a request of `family` may use, in preference order: pools scoped to
 * the request's namespace or tenant if any match, otherwise the unscoped ones.
 * Disabled pools and pools whose nodeSelector the node does not match are out.
 */
export function selectPools(pools: IPPool[], family: Family, attrs: AllocationAttrs | undefined, nodeLabels: Record<string, string>): IPPool[] {
  const eligible = pools.filter((p) => poolFamily(p) === family && !p.disabled && matchesSelector(p.nodeSelector, nodeLabels));
  const scoped = eligible.filter((p) => scopedTo(p, attrs) === true);
  return scoped.length > 0 ? scoped : eligible.filter((p) => scopedTo(p, attrs) === undefined);
}
