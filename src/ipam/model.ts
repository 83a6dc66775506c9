/**
 * The block IPAM data model and its datastore layout. Everything lives under
 * /tern/ipam/v1/:
 *   pools/<pool>               IPPool
 *   affinity/<pool>/<block>    node name: which node owns the block (the claim index)
 *   blocks/<pool>/<block>      Block: per-address allocations, free queue, sequence
 *   handles/<handleId>         HandleRecord: what one attachment holds
 *   claims/v4|v6/<hex base>/<len>  block key: every block, in address order
 * A claim writes the affinity, the block and its claim in one transaction
 * guarded by "all absent", so a concurrent claimer (or a kill -9) cannot leave
 * half of it, and by "no claim inside it or around it", so no writer, whatever
 * pool record or block size it believes in, can claim a block overlapping
 * another one.
 */
import { TernError } from '../lib/errors';
import { formatPrefix, parsePrefix, prefixContainsPrefix, type Family, type Prefix } from '../lib/cidr';
import type { TxnOp } from '../datastore/types';

/** What an allocation records about its owner (written with the handle). */
export interface AllocationAttrs {
  namespace?: string;
  pod?: string;
  node?: string;
  tenant?: string;
}

export const ROOT = '/tern/ipam/v1/';
export const POOLS = `${ROOT}pools/`;
export const AFFINITY = `${ROOT}affinity/`;
export const BLOCKS = `${ROOT}blocks/`;
export const HANDLES = `${ROOT}handles/`;
export const CLAIMS = `${ROOT}claims/`;

export type PoolMode = 'routed' | 'vxlan' | 'vxlan-crosssubnet' | 'vlan';
export const POOL_MODES: readonly PoolMode[] = ['routed', 'vxlan', 'vxlan-crosssubnet', 'vlan'];

export interface IPPool {
  cidr: string;
  /** Prefix length of each block (default 26 for IPv4, 122 for IPv6). */
  blockSize: number;
  /** Labels a node must carry (all of them) to claim blocks here; empty = every node. */
  nodeSelector: Record<string, string>;
  disabled: boolean;
  mode: PoolMode;
  /** Addresses or CIDRs never handed out. */
  reserved: string[];
  /** When set, only requests from these namespaces/tenants use this pool (and prefer it). */
  namespaces?: string[];
  tenants?: string[];
  /** BGP communities the pool's blocks are advertised with: "65000:100" or large "65000:1:2". */
  communities?: string[];
  /** Mode vlan: the 802.1Q segment its pods are placed on. */
  vlan?: { id: number; parent: string; gateway: string; mtu?: number };
}

export interface BlockEntry {
  /** Handle id. */
  h: string;
  /** Sequence number of this assignment; a release must quote it. */
  s: number;
  /** Set when a node borrowed this address from another node's block. */
  b?: string;
}

export interface Block {
  cidr: string;
  pool: string;
  /** Owning node, or null while the block is being returned. */
  affinity: string | null;
  /** Last sequence number handed out in this block. */
  seq: number;
  /** Allocated ordinals (offset from the block base). */
  used: Record<string, BlockEntry>;
  /** Free ordinals with the time they were freed (0 = never used), oldest first. */
  free: [number, number][];
  /** When the block last became empty (ms), for returning it after a grace period. */
  emptySince?: number;
}

export interface HandleIp {
  address: string;
  family: Family;
  pool: string;
  block: string;
  seq: number;
}

export interface HandleRecord {
  id: string;
  network: string;
  containerId: string;
  ifname: string;
  node: string;
  attrs?: AllocationAttrs;
  ips: HandleIp[];
  /** Creation time (ms). */
  created: number;
}

/** "10.0.0.0/26" -> "10.0.0.0-26": key-safe without escaping. */
export function cidrName(cidr: string): string {
  return cidr.replace('/', '-');
}

export const poolKey = (pool: string): string => `${POOLS}${cidrName(pool)}`;
export const affinityKey = (pool: string, block: string): string => `${AFFINITY}${cidrName(pool)}/${cidrName(block)}`;
export const affinityPrefix = (pool: string): string => `${AFFINITY}${cidrName(pool)}/`;
export const blockKey = (pool: string, block: string): string => `${BLOCKS}${cidrName(pool)}/${cidrName(block)}`;
export const handleKey = (id: string): string => `${HANDLES}${id}`;

/** Fixed-width hex, so claim keys sort in address order. */
function claimBase(family: Family, base: bigint): string {
  return `${CLAIMS}v${family}/${base.toString(16).padStart(family === 4 ? 8 : 32, '0')}`;
}

export function claimKey(block: string): string {
  const p = parsePrefix(block);
  return `${claimBase(p.family, p.base)}/${p.length}`;
}

/** Blocks are never larger than 2^16 addresses (normalisePool), so at most 16 enclosing lengths need a look. */
const MAX_BLOCK_BITS = 16;

/**
 * The guards of a claim of `block`: no claimed block starts inside it (a key
 * range), and no claimed block of a shorter length encloses it (one key per
 * length). Together: no existing block overlaps it.
 */
export function claimGuards(block: string): TxnOp[] {
  const p = parsePrefix(block);
  const bits = p.family === 4 ? 32 : 128;
  const end = p.base + (1n << BigInt(bits - p.length));
  const ops: TxnOp[] = [{ op: 'absent', key: claimBase(p.family, p.base), end: end >> BigInt(bits) ? `${CLAIMS}v${p.family}/~` : claimBase(p.family, end) }];
  for (let len = Math.max(0, bits - MAX_BLOCK_BITS); len < p.length; len++) {
    const mask = ((1n << BigInt(len)) - 1n) << BigInt(bits - len);
    ops.push({ op: 'check', key: `${claimBase(p.family, p.base & mask)}/${len}`, revision: 0 });
  }
  return ops;
}

/** Whether two prefixes share an address. */
export function prefixesOverlap(a: string, b: string): boolean {
  const x = parsePrefix(a);
  const y = parsePrefix(b);
  return x.family === y.family && (prefixContainsPrefix(x, y) || prefixContainsPrefix(y, x));
}

export function defaultBlockSize(f: Family): number {
  return f === 4 ? 26 : 122;
}

/** A pool with defaults filled in and validated; throws INVALID_CONFIG. */
export function normalisePool(p: Partial<IPPool> & { cidr: string }): IPPool {
  const prefix = parsePrefix(p.cidr);
  // A pool smaller than the default block is one block.
  const blockSize = p.blockSize ?? Math.max(defaultBlockSize(prefix.family), prefix.length);
  const max = prefix.family === 4 ? 32 : 128;
  if (!Number.isInteger(blockSize) || blockSize < prefix.length || blockSize > max) {
    throw new TernError('INVALID_CONFIG', `pool ${p.cidr}: blockSize /${blockSize} must lie between /${prefix.length} and /${max}`);
  }
  if (max - blockSize > 16) throw new TernError('INVALID_CONFIG', `pool ${p.cidr}: blocks larger than 65536 addresses are not supported`);
  const mode = p.mode ?? 'routed';
  if (!POOL_MODES.includes(mode)) throw new TernError('INVALID_CONFIG', `pool ${p.cidr}: mode must be one of ${POOL_MODES.join(', ')}`);
  const reserved = (p.reserved ?? []).map((r) => {
    const rp = parsePrefix(r.includes('/') ? r : `${r}/${max}`);
    if (!prefixContainsPrefix(prefix, rp)) throw new TernError('INVALID_CONFIG', `pool ${p.cidr}: reservation ${r} lies outside it`);
    return formatPrefix(rp);
  });
  const out: IPPool = { cidr: formatPrefix(prefix), blockSize, nodeSelector: p.nodeSelector ?? {}, disabled: p.disabled ?? false, mode, reserved };
  if (p.namespaces?.length) out.namespaces = p.namespaces;
  if (p.tenants?.length) out.tenants = p.tenants;
  if (p.communities?.length) out.communities = p.communities.map((c) => checkCommunity(p.cidr, c));
  if (mode === 'vlan') {
    out.vlan = checkVlan(p, prefix);
    // A real L2 subnet: its router, and for IPv4 its network and broadcast addresses, are never a pod's.
    const host = (a: bigint) => formatPrefix({ ...prefix, base: a, length: max });
    const extra = [host(parsePrefix(`${out.vlan.gateway}/${max}`).base)];
    if (prefix.family === 4 && prefix.length < 31) extra.push(host(prefix.base), host(prefix.base + (1n << BigInt(max - prefix.length)) - 1n));
    out.reserved = [...new Set([...out.reserved, ...extra])];
  }
  else if (p.vlan) throw new TernError('INVALID_CONFIG', `pool ${p.cidr}: vlan settings need mode vlan`);
  return out;
}

/** A VLAN pool names its VLAN ID, trunk (parent) interface and router, which lies inside the pool. */
function checkVlan(p: Partial<IPPool> & { cidr: string }, prefix: ReturnType<typeof parsePrefix>): NonNullable<IPPool['vlan']> {
  const v = p.vlan;
  if (!v) throw new TernError('INVALID_CONFIG', `pool ${p.cidr}: mode vlan needs vlan.id, vlan.parent and vlan.gateway`);
  if (!Number.isInteger(v.id) || v.id < 1 || v.id > 4094) throw new TernError('INVALID_CONFIG', `pool ${p.cidr}: vlan.id must be 1 to 4094`);
  if (typeof v.parent !== 'string' || !/^[A-Za-z0-9_.-]{1,15}$/.test(v.parent)) throw new TernError('INVALID_CONFIG', `pool ${p.cidr}: vlan.parent must be an interface name`);
  let gw: ReturnType<typeof parsePrefix>;
  try {
    gw = parsePrefix(`${v.gateway}/${prefix.family === 4 ? 32 : 128}`);
  } catch {
    throw new TernError('INVALID_CONFIG', `pool ${p.cidr}: vlan.gateway must be an address`);
  }
  if (!prefixContainsPrefix(prefix, gw)) throw new TernError('INVALID_CONFIG', `pool ${p.cidr}: vlan.gateway ${v.gateway} lies outside it`);
  if (v.mtu !== undefined && (!Number.isInteger(v.mtu) || v.mtu < 68 || v.mtu > 65535)) throw new TernError('INVALID_CONFIG', `pool ${p.cidr}: vlan.mtu must be 68 to 65535`);
  return { id: v.id, parent: v.parent, gateway: v.gateway, ...(v.mtu ? { mtu: v.mtu } : {}) };
}

/** "a:b" (RFC 1997, 16 bits each) or "a:b:c" (RFC 8092, 32 bits each). */
function checkCommunity(pool: string, c: string): string {
  const parts = c.split(':');
  const max = parts.length === 2 ? 0xffff : 0xffffffff;
  if ((parts.length !== 2 && parts.length !== 3) || parts.some((x) => !/^\d+$/.test(x) || Number(x) > max)) {
    throw new TernError('INVALID_CONFIG', `pool ${pool}: community "${c}" must be a:b (0-65535 each) or a:b:c (0-4294967295 each)`);
  }
  return parts.map(Number).join(':');
}

/** A pool's communities as BGP attributes. */
export function poolCommunities(p: Pick<IPPool, 'communities'>): { communities?: number[]; largeCommunities?: [number, number, number][] } {
  const std = (p.communities ?? []).map((c) => c.split(':').map(Number)).filter((x) => x.length === 2);
  const large = (p.communities ?? []).map((c) => c.split(':').map(Number)).filter((x) => x.length === 3) as [number, number, number][];
  const out: { communities?: number[]; largeCommunities?: [number, number, number][] } = {};
  if (std.length) out.communities = std.map(([a, b]) => a * 65536 + b);
  if (large.length) out.largeCommunities = large;
  return out;
}

export function parseJson<T>(what: string, text: string): T {
  try {
    return JSON.parse(text) as T;
  } catch (e) {
    throw new TernError('DECODE_FAILURE', `corrupt ${what} record`, { cause: e });
  }
}

export function poolPrefix(p: IPPool): Prefix {
  return parsePrefix(p.cidr);
}
