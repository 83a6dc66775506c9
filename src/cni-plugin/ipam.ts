/** Opens the datastore and the allocator behind the `Ipam` seam for a network config. */
import { TernError } from '../lib/errors';
import type { Logger } from '../lib/log';
import { openStore } from '../datastore/open-store';
import type { Store } from '../datastore/types';
import type { DatastoreConfig } from '../datastore/config';
import { BlockIpam } from '../ipam/block-ipam';
import { resolveNodeName } from '../ipam/nodename';
import type { Ipam } from '../ipam/types';
import type { NetConf } from './config';
import type { Ctx } from './context';

export function openDatastore(conf: NetConf): Store {
  return openDatastoreConfig(conf.datastore);
}

/**
 * Open a network config's datastore; errors become CNI's (TRY_AGAIN_LATER
 * kept, anything else IO_FAILURE). Commits on the embedded store survive the
 * plugin being killed, not a power loss, which ends the node's pods too
 * (datastore/sqlite-store.ts).
 */
export function openDatastoreConfig(c: DatastoreConfig): Store {
  try {
    return openStore(c, { durability: 'process-crash' });
  } catch (e) {
    if (e instanceof TernError && e.code === 'TRY_AGAIN_LATER') throw e;
    throw new TernError('IO_FAILURE', `cannot open the datastore: ${(e as Error).message}`, { cause: e });
  }
}

/**
 * The datastore for one request: the daemon's pooled handle when it serves
 * the request (`ctx.stores`), else one opened now; `done()` releases or closes it.
 */
export function useDatastore(ctx: Pick<Ctx, 'conf' | 'stores'>): { store: Store; done: () => Promise<void> } {
  if (ctx.stores) {
    const lease = ctx.stores.borrow(ctx.conf.datastore);
    return { store: lease.store, done: () => lease.release() };
  }
  const store = openDatastore(ctx.conf);
  return { store, done: () => store.close() };
}

/** Block IPAM on `store` (or on a store of its own, closed with it). */
export function openIpam(conf: NetConf, log?: Logger, store?: Store): Ipam {
  if (conf.ipam.type !== 'tern-ipam') throw new TernError('INVALID_CONFIG', `invalid field "ipam.type": only "tern-ipam" is supported, got "${conf.ipam.type}"`);
  return new BlockIpam({ store: store ?? openDatastore(conf), node: resolveNodeName({ nodename: conf.nodename }), log, ownsStore: !store });
}
