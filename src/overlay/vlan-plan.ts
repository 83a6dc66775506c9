/**
 * VLAN mode, pure part: names and checks for attaching a pod to an 802.1Q
 * segment.
 *
 * Design: a per-VLAN Linux bridge (`ternbr<vid>`) enslaving `<parent>.<vid>`,
 * with one veth per pod. We chose it over macvlan on the sub-interface
 * because (1) the node itself can reach its pods (kubelet probes; a macvlan's
 * lower device cannot talk to its macvlans), and (2) "last pod gone" is
 * visible in the node namespace as the bridge's port list, so the
 * sub-interface is removed from kernel state alone, with no state file
 * (macvlans moved into pod namespaces are invisible from the node's).
 * Isolation between VLAN IDs comes from the tag: each VID has its own
 * sub-interface and bridge, so frames of different VIDs never share an L2
 * domain on the node, and the trunk carries them tagged.
 */
import { createHash } from 'node:crypto';
import { TernError } from '../lib/errors';
import { LINK_PREFIX } from '../lib/constants';
import { familyOf, inSubnet, networkOf, parseCidr } from './addr';

/** Alias on sub-interfaces Tern created (an operator's own `<parent>.<vid>` is used, never deleted). */
export const VLAN_SUBIF_ALIAS = 'tern-vlan';
const IFNAMSIZ = 15;

export interface VlanPool {
  vlanId: number;
  /** Trunk interface in the node namespace, e.g. eth1. */
  parent: string;
  /** The VLAN's router; pods take their default route via it. */
  gateway: string;
  mtu?: number;
}

export interface VlanAttachment {
  pool: VlanPool;
  containerId: string;
  /** Pod's interface name, default eth0. */
  ifName?: string;
  /** Pod address with the VLAN subnet's prefix length, e.g. 10.100.0.11/24. */
  address: string;
}

export interface VlanNames {
  subInterface: string;
  bridge: string;
  hostVeth: string;
  ifName: string;
  alias: string;
}

export function vlanNames(a: Pick<VlanAttachment, 'pool' | 'containerId' | 'ifName'>): VlanNames {
  const { vlanId, parent } = a.pool;
  if (!Number.isInteger(vlanId) || vlanId < 1 || vlanId > 4094) throw new TernError('INVALID_CONFIG', `VLAN ID ${vlanId} out of range 1..4094`);
  if (!/^[A-Za-z0-9_.-]+$/.test(parent)) throw new TernError('INVALID_CONFIG', `invalid parent interface name "${parent}"`);
  const subInterface = `${parent}.${vlanId}`;
  if (subInterface.length > IFNAMSIZ) throw new TernError('INVALID_CONFIG', `VLAN sub-interface name ${subInterface} is longer than ${IFNAMSIZ} characters`);
  const ifName = a.ifName ?? 'eth0';
  const h = createHash('sha256').update(`${a.containerId}/${ifName}`).digest('hex').slice(0, 10);
  return { subInterface, bridge: `${LINK_PREFIX}br${vlanId}`, hostVeth: `${LINK_PREFIX}v${h}`, ifName, alias: `tern-vlan:${a.containerId}:${ifName}` };
}

/** Validate the addressing: gateway and pod address in one subnet, same family. */
export function checkVlanAddressing(a: VlanAttachment): { address: string; gateway: string; subnet: string } {
  const c = parseCidr(a.address);
  if (familyOf(a.pool.gateway) !== c.family) throw new TernError('INVALID_CONFIG', `gateway ${a.pool.gateway} and address ${a.address} are of different families`);
  const subnet = networkOf(a.address);
  if (!inSubnet(a.pool.gateway, subnet)) throw new TernError('INVALID_CONFIG', `gateway ${a.pool.gateway} is not inside the pod subnet ${subnet}`);
  if (c.ip === a.pool.gateway) throw new TernError('INVALID_CONFIG', `pod address ${a.address} is the gateway`);
  return { address: `${c.ip}/${c.len}`, gateway: a.pool.gateway, subnet };
}
