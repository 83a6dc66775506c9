/**
 * Applies an EndpointPlan: host side in the calling thread's namespace,
 * container side through a socket opened inside the container namespace.
 * On any failure the host veth (and with it the peer) is removed.
 */
import { randomBytes } from 'node:crypto';
import { TernError, isTernError } from '../lib/errors';
import { familyOf } from '../lib/cidr';
import { parseEndpointAlias, type EndpointPlan } from './endpoint-plan';
import { ifaceGroup } from '../lib/iface-group';
import { NetnsHandle } from './netns';
import { Rtnl, type LinkInfo } from './rtnl';
import { readSysctl, writeSysctl } from './sysctl';

/** A random locally administered unicast MAC address. */
export function randomMac(): string {
  const b = randomBytes(6);
  b[0] = (b[0] & 0xfe) | 0x02;
  return [...b].map((x) => x.toString(16).padStart(2, '0')).join(':');
}

export interface ApplyResult {
  host: LinkInfo;
  container: LinkInfo;
}

/**
 * Each netlink request costs a trip through the event loop, so requests that
 * do not depend on each other's answers go out together; the kernel handles a
 * socket's requests in the order sent. With the indexes echoed by the create,
 * an ADD takes 2 rounds instead of 12: delete a leftover and create, then
 * everything else. `cont`: a socket the caller already opened in the
 * container namespace and used to check that the container interface is
 * absent; this call then uses it (and leaves it open) instead of checking again.
 */
export async function applyEndpoint(plan: EndpointPlan, containerNs: NetnsHandle, opts: { cont?: Rtnl } = {}): Promise<ApplyResult> {
  const host = Rtnl.open();
  const cont = opts.cont ?? Rtnl.open(containerNs);
  try {
    if (!opts.cont && (await cont.linkByName(plan.containerIfName))) {
      throw new TernError('ALREADY_EXISTS', `interface ${plan.containerIfName} already exists in ${containerNs.path}`);
    }
    // Chosen here as the kernel would (random, locally administered, unicast), so the result needs no lookup.
    const contMac = randomMac();
    try {
      const [, created] = await Promise.all([
        // A host veth of the same name is a leftover of an interrupted ADD of this same attachment.
        host.deleteLink(plan.hostIfName),
        host.createVeth({
          name: plan.hostIfName,
          mac: plan.hostMac,
          group: plan.hostGroup,
          mtu: plan.mtu,
          up: true,
          peer: { name: plan.containerIfName, mac: contMac, mtu: plan.mtu, netns: containerNs },
        }),
      ]);
      for (const s of plan.hostSysctls) {
        if (s.key.startsWith('net/ipv6/') && readSysctl(s.key) === undefined) continue; // IPv6 disabled on this node
        writeSysctl(s);
      }
      let { index: hostIndex, peerIndex: contIndex } = created;
      if (!hostIndex || !contIndex) {
        // A kernel that does not echo a new link (before 6.3).
        const [h, c] = await Promise.all([host.linkByName(plan.hostIfName), cont.linkByName(plan.containerIfName)]);
        if (!h || !c) throw new TernError('IO_FAILURE', `veth ${plan.hostIfName} vanished while being configured`);
        [hostIndex, contIndex] = [h.index, c.index];
      }
      const sent: Promise<unknown>[] = [
        // The kernel takes no alias on creation.
        host.setLink(plan.hostIfName, { alias: plan.alias }),
        // On the container's socket, in this order: up, then addresses, then the gateway's link route before the default route through it.
        cont.setLink(plan.containerIfName, { up: true }),
        ...plan.containerAddrs.map((a) => cont.addAddress(contIndex, a, { nodad: familyOf(a.split('/')[0]) === 6 })),
        ...plan.containerRoutes.map((r) => cont.replaceRoute({ dst: r.dst, dev: contIndex, gateway: r.via, scope: r.scope, protocol: r.protocol })),
        // Exclusive: a /32 (/128) that already leads to another device is another pod's address; never take it over.
        ...plan.hostRoutes.map((r) =>
          host.addRoute({ dst: r.dst, dev: hostIndex, scope: r.scope, protocol: r.protocol }).catch(async (e) => {
            if (!isTernError(e, 'ALREADY_EXISTS')) throw e;
            const other = (await host.listRoutes({ table: 254 })).find((x) => x.dst === r.dst);
            const dev = other?.dev !== undefined ? (await host.listLinks()).find((l) => l.index === other.dev)?.name ?? `#${other.dev}` : 'another device';
            throw new TernError('CONFLICT', `address ${r.dst} is already routed to ${dev} on this node; refusing to replace that route`);
          }),
        ),
      ];
      // Every answer is in before the first failure is thrown, so the cleanup below comes after the last write.
      const failed = (await Promise.allSettled(sent)).find((x): x is PromiseRejectedResult => x.status === 'rejected');
      if (failed) throw failed.reason;
      return {
        host: { index: hostIndex, name: plan.hostIfName, mac: plan.hostMac, mtu: plan.mtu, up: true, alias: plan.alias },
        container: { index: contIndex, name: plan.containerIfName, mac: contMac, mtu: plan.mtu, up: true },
      };
    } catch (e) {
      await host.deleteLink(plan.hostIfName).catch(() => undefined);
      throw e;
    }
  } finally {
    host.close();
    if (!opts.cont) cont.close();
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
