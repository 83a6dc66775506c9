/** Opens the allocator behind the `Ipam` seam for a network config. */
import { TernError } from '../lib/errors';
import { LocalAllocator } from '../ipam/local-allocator';
import type { Ipam } from '../ipam/types';
import type { NetConf } from './config';
import { DEFAULT_DB_PATH } from './config';

export function openIpam(conf: NetConf): Ipam {
  if (conf.ipam.type !== 'tern-ipam') throw new TernError('INVALID_CONFIG', `invalid field "ipam.type": only "tern-ipam" is supported, got "${conf.ipam.type}"`);
  if (conf.datastore.type !== 'sqlite') {
    throw new TernError('INVALID_CONFIG', 'invalid field "datastore.type": the embedded allocator needs "sqlite"');
  }
  return new LocalAllocator(conf.datastore.path ?? DEFAULT_DB_PATH);
}
