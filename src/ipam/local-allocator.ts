/**
 * Interim embedded allocator behind the `Ipam` seam: one SQLite file shared
 * by concurrent CNI processes. Each allocation runs in a BEGIN IMMEDIATE
 * transaction, so two processes never pick the same address, and SQLite's
 * journal makes a kill -9 at any point leave either all or nothing.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import Database from 'better-sqlite3';
import { TernError } from '../lib/errors';
import { addrToBigInt, bigIntToAddr, canonicalAddr, familyOf, parsePrefix, prefixContains, prefixSize, type Family, type Prefix } from '../lib/cidr';
import { handleId, type AllocateRequest, type AllocatedIp, type Allocation, type AllocationKey, type Ipam } from './types';

interface Row {
  handle: string;
  network: string;
  container_id: string;
  ifname: string;
  address: string;
  family: number;
  pool: string;
  attrs: string | null;
}

function isBusy(e: unknown): boolean {
  const code = (e as { code?: string })?.code ?? '';
  return code.startsWith('SQLITE_BUSY') || code.startsWith('SQLITE_LOCKED');
}

/** First and last usable offsets: skip the network and broadcast addresses of IPv4 pools, the subnet-router anycast of IPv6. */
function usableRange(p: Prefix): [bigint, bigint] {
  const size = prefixSize(p);
  if (p.family === 4 && p.length <= 30) return [p.base + 1n, p.base + size - 2n];
  if (p.family === 6 && p.length <= 126) return [p.base + 1n, p.base + size - 1n];
  return [p.base, p.base + size - 1n];
}

export class LocalAllocator implements Ipam {
  private readonly db: Database.Database;

  constructor(file: string) {
    try {
      fs.mkdirSync(path.dirname(file), { recursive: true });
      this.db = new Database(file, { timeout: 15_000 });
      this.db.pragma('journal_mode = WAL');
      this.db.pragma('synchronous = NORMAL');
      this.db.exec(`CREATE TABLE IF NOT EXISTS interim_allocations (
        handle TEXT NOT NULL, network TEXT NOT NULL, container_id TEXT NOT NULL, ifname TEXT NOT NULL,
        address TEXT NOT NULL UNIQUE, family INTEGER NOT NULL, pool TEXT NOT NULL, attrs TEXT,
        created INTEGER NOT NULL, PRIMARY KEY (handle, family))`);
    } catch (e) {
      if (isBusy(e)) throw new TernError('TRY_AGAIN_LATER', `datastore ${file} is busy`, { cause: e });
      throw new TernError('IO_FAILURE', `cannot open datastore ${file}`, { cause: e });
    }
  }

  private rows(handle: string): Row[] {
    return this.db.prepare('SELECT * FROM interim_allocations WHERE handle = ? ORDER BY family').all(handle) as Row[];
  }

  private static toIps(rows: Row[]): AllocatedIp[] {
    return rows.map((r) => ({ address: r.address, family: r.family as Family, pool: r.pool }));
  }

  async allocate(req: AllocateRequest): Promise<AllocatedIp[]> {
    const handle = handleId(req.key);
    const pools = req.pools.map((p) => ({ text: p, prefix: parsePrefix(p) }));
    const requested = (req.requested ?? []).map(canonicalAddr);
    const families = [...new Set(pools.map((p) => p.prefix.family))].sort();
    if (!families.length) throw new TernError('INVALID_CONFIG', 'ipam.pools is empty');
    for (const r of requested) {
      if (!families.includes(familyOf(r))) throw new TernError('INVALID_CONFIG', `requested IP ${r} has no pool of its family`);
    }
    const insert = this.db.prepare(
      'INSERT INTO interim_allocations (handle, network, container_id, ifname, address, family, pool, attrs, created) VALUES (?,?,?,?,?,?,?,?,?)',
    );
    const txn = this.db.transaction((): AllocatedIp[] => {
      const existing = this.rows(handle);
      if (existing.length) return LocalAllocator.toIps(existing);
      const out: AllocatedIp[] = [];
      for (const family of families) {
        const familyPools = pools.filter((p) => p.prefix.family === family);
        const want = requested.find((r) => familyOf(r) === family);
        let chosen: { address: string; pool: string } | undefined;
        if (want) {
          const n = addrToBigInt(want);
          const pool = familyPools.find((p) => prefixContains(p.prefix, n));
          if (!pool) throw new TernError('INVALID_CONFIG', `requested IP ${want} is not in any pool`);
          const owner = this.db.prepare('SELECT handle FROM interim_allocations WHERE address = ?').get(want) as { handle: string } | undefined;
          if (owner) throw new TernError('CONFLICT', `requested IP ${want} is already allocated to ${owner.handle}`);
          chosen = { address: want, pool: pool.text };
        } else {
          for (const pool of familyPools) {
            const used = new Set(
              (this.db.prepare('SELECT address FROM interim_allocations WHERE pool = ?').all(pool.text) as { address: string }[]).map((r) => addrToBigInt(r.address)),
            );
            const [first, last] = usableRange(pool.prefix);
            for (let n = first; n <= last; n++) {
              if (!used.has(n)) {
                chosen = { address: bigIntToAddr(n, family), pool: pool.text };
                break;
              }
            }
            if (chosen) break;
          }
          if (!chosen) throw new TernError('IPAM_EXHAUSTED', `no free IPv${family} address in ${familyPools.map((p) => p.text).join(', ')}`);
        }
        insert.run(handle, req.key.network, req.key.containerId, req.key.ifname, chosen.address, family, chosen.pool, req.attrs ? JSON.stringify(req.attrs) : null, Date.now());
        out.push({ address: chosen.address, family, pool: chosen.pool });
      }
      return out;
    });
    try {
      return txn.immediate();
    } catch (e) {
      if (isBusy(e)) throw new TernError('TRY_AGAIN_LATER', 'datastore is busy', { cause: e });
      throw e;
    }
  }

  async release(key: AllocationKey): Promise<void> {
    try {
      this.db.prepare('DELETE FROM interim_allocations WHERE handle = ?').run(handleId(key));
    } catch (e) {
      if (isBusy(e)) throw new TernError('TRY_AGAIN_LATER', 'datastore is busy', { cause: e });
      throw e;
    }
  }

  private static toAllocation(rows: Row[]): Allocation {
    const r = rows[0];
    return {
      key: { network: r.network, containerId: r.container_id, ifname: r.ifname },
      ips: LocalAllocator.toIps(rows),
      attrs: r.attrs ? JSON.parse(r.attrs) : undefined,
    };
  }

  async get(key: AllocationKey): Promise<Allocation | undefined> {
    const rows = this.rows(handleId(key));
    return rows.length ? LocalAllocator.toAllocation(rows) : undefined;
  }

  async list(network?: string): Promise<Allocation[]> {
    const rows = (network
      ? this.db.prepare('SELECT * FROM interim_allocations WHERE network = ? ORDER BY handle, family').all(network)
      : this.db.prepare('SELECT * FROM interim_allocations ORDER BY handle, family').all()) as Row[];
    const byHandle = new Map<string, Row[]>();
    for (const r of rows) byHandle.set(r.handle, [...(byHandle.get(r.handle) ?? []), r]);
    return [...byHandle.values()].map(LocalAllocator.toAllocation);
  }

  async status(pools: string[]): Promise<void> {
    for (const text of pools) {
      const p = parsePrefix(text);
      const [first, last] = usableRange(p);
      const used = (this.db.prepare('SELECT COUNT(*) AS n FROM interim_allocations WHERE pool = ?').get(text) as { n: number }).n;
      if (BigInt(used) > last - first) throw new TernError('NOT_READY', `pool ${text} is exhausted`);
    }
  }

  async close(): Promise<void> {
    this.db.close();
  }
}
