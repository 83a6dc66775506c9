/**
 * Applies an EndpointPlan: host side in the calling thread's namespace,
 * container side through a socket opened inside the container namespace.
 * On any failure the host veth (and with it the peer) is removed.
 */
import { TernError, isTernError } from '../lib/errors';
import { familyOf } from '../lib/cidr';
import { parseEndpointAlias, type EndpointPlan } from './endpoint-plan';
import { ifaceGroup } from '../lib/iface-group';
import { NetnsHandle } from './netns';
import { Rtnl, type LinkInfo } from './rtnl';
import { readSysctl, writeSysctl } from './sysctl';

export interface ApplyResult {
  host: LinkInfo;
  container: LinkInfo;
}

export async function applyEndpoint(plan: EndpointPlan, containerNs: NetnsHandle): Promise<ApplyResult> {
  const host = Rtnl.open();
  const cont = Rtnl.open(containerNs);
  try {
    if (await cont.linkByName(plan.containerIfName)) {
      throw new TernError('ALREADY_EXISTS', `interface ${plan.containerIfName} already exists in ${containerNs.path}`);
    }
    // A host veth of the same name is a leftover of an interrupted ADD of this same attachment.
    await host.deleteLink(plan.hostIfName);
    try {
      await host.createVeth({
        name: plan.hostIfName,
        mac: plan.hostMac,
        group: plan.hostGroup,
        mtu: plan.mtu,
        alias: plan.alias,
        peer: { name: plan.containerIfName, mtu: plan.mtu, netns: containerNs },
      });
      for (const s of plan.hostSysctls) {
        if (s.key.startsWith('net/ipv6/') && readSysctl(s.key) === undefined) continue; // IPv6 disabled on this node
        writeSysctl(s);
      }
      await host.setLink(plan.hostIfName, { up: true });
      const hostLink = await host.linkByName(plan.hostIfName);
      const contLink = await cont.linkByName(plan.containerIfName);
      if (!hostLink || !contLink) throw new TernError('IO_FAILURE', `veth ${plan.hostIfName} vanished while being configured`);
      await cont.setLink(plan.containerIfName, { up: true });
      for (const a of plan.containerAddrs) await cont.addAddress(contLink.index, a, { nodad: familyOf(a.split('/')[0]) === 6 });
      for (const r of plan.containerRoutes) {
        await cont.replaceRoute({ dst: r.dst, dev: contLink.index, gateway: r.via, scope: r.scope, protocol: r.protocol });
      }
      // Exclusive: a /32 (/128) that already leads to another device is another pod's address; never take it over.
      for (const r of plan.hostRoutes) {
        try {
          await host.addRoute({ dst: r.dst, dev: hostLink.index, scope: r.scope, protocol: r.protocol });
        } catch (e) {
          if (!isTernError(e, 'ALREADY_EXISTS')) throw e;
          const other = (await host.listRoutes({ table: 254 })).find((x) => x.dst === r.dst);
          const dev = other?.dev !== undefined ? (await host.listLinks()).find((l) => l.index === other.dev)?.name ?? `#${other.dev}` : 'another device';
          throw new TernError('CONFLICT', `address ${r.dst} is already routed to ${dev} on this node; refusing to replace that route`);
        }
      }
      return { host: { ...hostLink, up: true }, container: { ...contLink, up: true } };
    } catch (e) {
      await host.deleteLink(plan.hostIfName).catch(() => undefined);
      throw e;
    }
  } finally {
    host.close();
    cont.close();
  }
}

/**
 * Give every pod host veth of this node (a Tern endpoint alias) the device
 * group its name gives. Veths made before the CNI plugin set it have group 0:
 * the ACL dispatch still finds their chains, by name, at a cost that grows
 * with the node's pods. Returns the veths changed.
 */
export async function alignVethGroups(): Promise<string[]> {
  const host = Rtnl.open();
  try {
    const changed: string[] = [];
    for (const l of await host.listLinks()) {
      if (!parseEndpointAlias(l.alias) || l.group === ifaceGroup(l.name)) continue;
      await host.setLink(l.name, { group: ifaceGroup(l.name) }).catch(() => undefined); // gone meanwhile (a DEL)
      changed.push(l.name);
    }
    return changed;
  } finally {
    host.close();
  }
}

/**
 * Remove an endpoint by deleting the host veth: the kernel removes its peer in
 * the container and every route through it. Already gone counts as success.
 */
export async function removeEndpoint(hostIfName: string): Promise<boolean> {
  const host = Rtnl.open();
  try {
    return await host.deleteLink(hostIfName);
  } finally {
    host.close();
  }
}
