/**
 * Pure planner for a routed workload endpoint (Calico-style): a veth whose
 * host end has no IP and answers ARP/NDP for the link-local gateway, the pod
 * address as /32 or /128 in the container, and a host route to it.
 */
import { createHash } from 'node:crypto';
import { GATEWAY_V4, GATEWAY_V6, HOST_VETH_MAC, LINK_PREFIX, RTPROT_POD } from '../lib/constants';
import { ifaceGroup } from '../lib/iface-group';
import type { Family } from '../lib/cidr';


export interface SysctlSetting {
  key: string; // e.g. net/ipv4/conf/tern1234/proxy_arp
  value: string;
}

export interface EndpointInput {
  network: string;
  containerId: string;
  ifname: string;
  ips: { address: string; family: Family }[];
  mtu: number;
}

/** A route in the plan names its device by role; the applier resolves indexes. */
export interface PlannedRoute {
  dst: string;
  via?: string;
  scope: 'link' | 'universe';
  protocol: number;
}

export interface EndpointPlan {
  hostIfName: string;
  hostMac: string;
  /** The host veth's device group: the ACL dispatch finds its chains by it. */
  hostGroup: number;
  containerIfName: string;
  mtu: number;
  /** Ownership mark on the host veth: lets GC map a link back to its attachment. */
  alias: string;
  hostSysctls: SysctlSetting[];
  containerAddrs: string[];
  containerRoutes: PlannedRoute[];
  hostRoutes: PlannedRoute[];
}

/** `tern` + 11 hex chars of a hash of (container ID, ifname): 15 chars, the kernel's limit. */
export function hostVethName(containerId: string, ifname: string): string {
  return LINK_PREFIX + createHash('sha1').update(`${containerId}.${ifname}`).digest('hex').slice(0, 11);
}

export function endpointAlias(network: string, containerId: string, ifname: string): string {
  return `tern:${network}:${containerId}:${ifname}`;
}

export function parseEndpointAlias(alias: string | undefined): { network: string; containerId: string; ifname: string } | undefined {
  if (!alias?.startsWith('tern:')) return undefined;
  const parts = alias.split(':');
  if (parts.length !== 4) return undefined;
  return { network: parts[1], containerId: parts[2], ifname: parts[3] };
}

export function planEndpoint(input: EndpointInput): EndpointPlan {
  const host = hostVethName(input.containerId, input.ifname);
  const has6 = input.ips.some((i) => i.family === 6);
  const has4 = input.ips.some((i) => i.family === 4);
  const sysctls: SysctlSetting[] = [];
  if (has4) {
    sysctls.push(
      { key: `net/ipv4/conf/${host}/proxy_arp`, value: '1' },
      { key: `net/ipv4/conf/${host}/forwarding`, value: '1' },
      { key: `net/ipv4/neigh/${host}/proxy_delay`, value: '0' },
    );
  }
  sysctls.push({ key: `net/ipv6/conf/${host}/accept_ra`, value: '0' });
  if (has6) {
    sysctls.push(
      { key: `net/ipv6/conf/${host}/forwarding`, value: '1' },
      { key: `net/ipv6/conf/${host}/proxy_ndp`, value: '1' },
      // The gateway fe80::ecee:eeff:feee:eeee must be usable at once, not after DAD.
      { key: `net/ipv6/conf/${host}/accept_dad`, value: '0' },
    );
  }
  const containerRoutes: PlannedRoute[] = [];
  if (has4) {
    containerRoutes.push({ dst: `${GATEWAY_V4}/32`, scope: 'link', protocol: RTPROT_POD });
    containerRoutes.push({ dst: '0.0.0.0/0', via: GATEWAY_V4, scope: 'universe', protocol: RTPROT_POD });
  }
  if (has6) containerRoutes.push({ dst: '::/0', via: GATEWAY_V6, scope: 'universe', protocol: RTPROT_POD });
  return {
    hostIfName: host,
    hostMac: HOST_VETH_MAC,
    hostGroup: ifaceGroup(host),
    containerIfName: input.ifname,
    mtu: input.mtu,
    alias: endpointAlias(input.network, input.containerId, input.ifname),
    hostSysctls: sysctls,
    containerAddrs: input.ips.map((i) => `${i.address}/${i.family === 4 ? 32 : 128}`),
    containerRoutes,
    hostRoutes: input.ips.map((i) => ({ dst: `${i.address}/${i.family === 4 ? 32 : 128}`, scope: 'link' as const, protocol: RTPROT_POD })),
  };
}
