/** Opens the allocator behind the `Ipam` seam for a network config: block IPAM on the configured datastore. */
import { TernError } from '../lib/errors';
import type { Logger } from '../lib/log';
import { openStore } from '../datastore';
import { BlockIpam, resolveNodeName } from '../ipam';
import type { Ipam } from '../ipam/types';
import type { NetConf } from './config';

export function openIpam(conf: NetConf, log?: Logger): Ipam {
  if (conf.ipam.type !== 'tern-ipam') throw new TernError('INVALID_CONFIG', `invalid field "ipam.type": only "tern-ipam" is supported, got "${conf.ipam.type}"`);
  let store;
  try {
    store = openStore(conf.datastore);
  } catch (e) {
    if (e instanceof TernError && e.code === 'TRY_AGAIN_LATER') throw e;
    throw new TernError('IO_FAILURE', `cannot open the datastore: ${(e as Error).message}`, { cause: e });
  }
  return new BlockIpam({ store, node: resolveNodeName({ nodename: conf.nodename }), log, ownsStore: true });
}
