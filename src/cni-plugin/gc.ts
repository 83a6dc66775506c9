/**
 * GC (CNI 1.1): release every allocation of this network, and remove every
 * host veth marked with this network, whose attachment is not listed in
 * cni.dev/valid-attachments.
 */
import { TernError } from '../lib/errors';
import { Rtnl, hostVethName, parseEndpointAlias, removeEndpoint } from '../dataplane';
import { openDatastore, openIpam } from './ipam';
import { forgetEndpoints } from './acl';
import type { Ctx } from './context';

export async function cmdGc(ctx: Ctx): Promise<void> {
  const { conf, log } = ctx;
  if (!conf.validAttachments) throw new TernError('INVALID_CONFIG', 'invalid field "cni.dev/valid-attachments": GC needs the list of valid attachments');
  const valid = new Set(conf.validAttachments.map((a) => `${a.containerID}\u0000${a.ifname}`));
  const store = openDatastore(conf);
  const ipam = openIpam(conf, log, store);
  const removed: string[] = [];
  try {
    for (const alloc of await ipam.list(conf.name)) {
      if (valid.has(`${alloc.key.containerId}\u0000${alloc.key.ifname}`)) continue;
      const host = hostVethName(alloc.key.containerId, alloc.key.ifname);
      await removeEndpoint(host);
      await ipam.release(alloc.key);
      removed.push(host);
      log.info({ containerId: alloc.key.containerId, ifname: alloc.key.ifname, ips: alloc.ips.map((i) => i.address) }, 'gc: released stale attachment');
    }
    await forgetEndpoints(store, ctx, removed);
  } finally {
    await ipam.close();
    await store.close();
  }
  const rt = Rtnl.open();
  try {
    for (const link of await rt.listLinks()) {
      const owner = parseEndpointAlias(link.alias);
      if (!owner || owner.network !== conf.name || valid.has(`${owner.containerId}\u0000${owner.ifname}`)) continue;
      await rt.deleteLink(link.name);
      log.info({ link: link.name }, 'gc: removed stale host veth');
    }
  } finally {
    rt.close();
  }
}
