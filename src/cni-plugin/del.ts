/** DEL: idempotent. Missing netns, interface or prevResult, or a repeat, are all success. */
import { hostVethName } from '../dataplane/endpoint-plan';
import { removeEndpoint } from '../dataplane/endpoint';
import { openIpam, useDatastore } from './ipam';
import { forgetEndpoints } from './acl';
import { poolOfAllocation } from './vlan';
import { allocationKey, type Ctx } from './context';

export async function cmdDel(ctx: Ctx): Promise<void> {
  const { env, conf, log } = ctx;
  const host = hostVethName(env.containerId, env.ifname);
  const removed = await (ctx.deleteLink ?? removeEndpoint)(host);
  const { store, done } = useDatastore(ctx);
  const ipam = openIpam(conf, log, store);
  try {
    // A VLAN pod hangs off its VLAN's bridge; the VLAN goes with its last pod.
    const alloc = await ipam.get(allocationKey(ctx));
    const vlanPool = alloc && (await poolOfAllocation(store, alloc.ips, 'vlan'));
    if (vlanPool?.vlan) {
      const v = vlanPool.vlan;
      const { detachVlanPod } = await import('../overlay/vlan');
      const r = await detachVlanPod({ pool: { vlanId: v.id, parent: v.parent, gateway: v.gateway, mtu: v.mtu }, containerId: env.containerId, ifName: env.ifname });
      log.info({ vlan: v.id, removedVlan: r.removedVlan }, 'detached from VLAN');
    }
    await ipam.release(allocationKey(ctx));
    await forgetEndpoints(store, ctx, [host]);
  } finally {
    await ipam.close();
    await done();
  }
  log.info({ host, removed }, 'detached');
}
