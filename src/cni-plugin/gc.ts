/**
 * GC (CNI 1.1): release every allocation of this network whose attachment is
 * not listed in cni.dev/valid-attachments (through the same repair path as
 * `ternctl ipam release`), remove the host veths of those attachments and
 * every other host veth marked with this network that is not listed, and
 * forget their ACL endpoints and every endpoint record this node wrote for
 * an attachment that is not listed (even one with no handle and no veth).
 */
import { TernError } from '../lib/errors';
import { Rtnl, hostVethName, parseEndpointAlias, removeEndpoint } from '../dataplane';
import { gcNetwork } from '../ipam/gc';
import { resolveNodeName } from '../ipam/nodename';
import { openIpam, useDatastore } from './ipam';
import { forgetEndpoints } from './acl';
import type { Ctx } from './context';

export async function cmdGc(ctx: Ctx): Promise<void> {
  const { conf, log } = ctx;
  if (!conf.validAttachments) throw new TernError('INVALID_CONFIG', 'invalid field "cni.dev/valid-attachments": GC needs the list of valid attachments');
  const valid = new Set(conf.validAttachments.map((a) => `${a.containerID}\u0000${a.ifname}`));
  const { store, done } = useDatastore(ctx);
  const ipam = openIpam(conf, log, store);
  const removed: string[] = [];
  try {
    // Host veths by name first: a kill -9 between creating a veth and marking it leaves no alias.
    for (const alloc of await ipam.list(conf.name)) {
      if (valid.has(`${alloc.key.containerId}\u0000${alloc.key.ifname}`)) continue;
      const host = hostVethName(alloc.key.containerId, alloc.key.ifname);
      await (ctx.deleteLink ?? removeEndpoint)(host);
      removed.push(host);
    }
    const rep = await gcNetwork(store, conf.name, conf.validAttachments.map((a) => ({ network: conf.name, containerId: a.containerID, ifname: a.ifname })), Date.now());
    if (rep.repaired.length || rep.skipped.length) log.info({ released: rep.repaired.length, skipped: rep.skipped.length }, 'gc: released stale allocations');
    if (rep.skipped.length) throw new TernError('TRY_AGAIN_LATER', `gc: ${rep.skipped.length} allocations changed while being released`);

    const rt = Rtnl.open();
    try {
      for (const link of await rt.listLinks()) {
        const owner = parseEndpointAlias(link.alias);
        if (!owner || owner.network !== conf.name || valid.has(`${owner.containerId}\u0000${owner.ifname}`)) continue;
        await rt.deleteLink(link.name);
        removed.push(link.name);
        log.info({ link: link.name }, 'gc: removed stale host veth');
      }
    } finally {
      rt.close();
    }
    const node = resolveNodeName({ nodename: conf.nodename });
    await forgetEndpoints(store, ctx, removed, (a) => a.network === conf.name && a.node === node && !valid.has(`${a.containerId}\u0000${a.ifname}`));
  } finally {
    await ipam.close();
    await done();
  }
}
