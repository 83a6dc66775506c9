/** Opens the datastore and the allocator behind the `Ipam` seam for a network config. */
import { TernError } from '../lib/errors';
import type { Logger } from '../lib/log';
import { openStore } from '../datastore/open-store';
import type { Store } from '../datastore/types';
import { BlockIpam } from '../ipam/block-ipam';
import { resolveNodeName } from '../ipam/nodename';
import type { Ipam } from '../ipam/types';
import type { NetConf } from './config';

export function openDatastore(conf: NetConf): Store {
  try {
    return openStore(conf.datastore);
  } catch (e) {
    if (e instanceof TernError && e.code === 'TRY_AGAIN_LATER') throw e;
    throw new TernError('IO_FAILURE', `cannot open the datastore: ${(e as Error).message}`, { cause: e });
  }
}

/** Block IPAM on `store` (or on a store of its own, closed with it). */
export function openIpam(conf: NetConf, log?: Logger, store?: Store): Ipam {
  if (conf.ipam.type !== 'tern-ipam') throw new TernError('INVALID_CONFIG', `invalid field "ipam.type": only "tern-ipam" is supported, got "${conf.ipam.type}"`);
  return new BlockIpam({ store: store ?? openDatastore(conf), node: resolveNodeName({ nodename: conf.nodename }), log, ownsStore: !store });
}
