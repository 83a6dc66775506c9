/** Which pool an attachment's addresses came from, when that pool is in a given mode (VLAN pods are wired differently). */
import type { Store } from '../datastore/types';
import { poolKey, type IPPool } from '../ipam/model';
import type { AllocatedIp } from '../ipam/types';

export async function poolOfAllocation(store: Store, ips: Pick<AllocatedIp, 'pool'>[], mode: IPPool['mode']): Promise<IPPool | undefined> {
  for (const pool of new Set(ips.map((i) => i.pool))) {
    const kv = await store.get(poolKey(pool));
    const p = kv ? (JSON.parse(kv.value) as IPPool) : undefined;
    if (p?.mode === mode) return p;
  }
  return undefined;
}
