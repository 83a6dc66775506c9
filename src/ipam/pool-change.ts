/**
 * Whether a pool may be created, changed or deleted given the other pools and
 * the blocks carved from it (pure): pools never overlap, a pool's block size
 * is fixed while blocks exist, and a pool with addresses in use stays.
 */
import { TernError } from '../lib/errors';
import { parsePrefix, prefixContainsPrefix } from '../lib/cidr';
import type { IPPool } from './model';

export interface PoolBlock {
  pool: string;
  cidr: string;
  used: number;
}

/** `next` undefined: delete `prev`. Throws INVALID_CONFIG (a change never allowed) or CONFLICT (not allowed now). */
export function validatePoolChange(prev: IPPool | undefined, next: IPPool | undefined, others: IPPool[], blocks: PoolBlock[]): void {
  const cidr = (next ?? prev)?.cidr;
  if (!cidr) return;
  const mine = blocks.filter((b) => b.pool === cidr);
  if (!next) {
    const inUse = mine.reduce((n, b) => n + b.used, 0);
    if (inUse > 0) throw new TernError('CONFLICT', `pool ${cidr} has ${inUse} addresses in use: disable it (spec.disabled: true) and let them be released first`);
    return;
  }
  const p = parsePrefix(next.cidr);
  for (const o of others) {
    if (o.cidr === next.cidr) continue;
    const q = parsePrefix(o.cidr);
    if (q.family === p.family && (prefixContainsPrefix(p, q) || prefixContainsPrefix(q, p))) throw new TernError('INVALID_CONFIG', `pool ${next.cidr} overlaps pool ${o.cidr}; pools must not overlap (field "spec.cidr")`);
  }
  if (prev && prev.blockSize !== next.blockSize && mine.length > 0) {
    throw new TernError('INVALID_CONFIG', `pool ${cidr}: blockSize cannot change from /${prev.blockSize} to /${next.blockSize} while it has ${mine.length} blocks (field "spec.blockSize")`);
  }
}
