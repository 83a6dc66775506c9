/**
 * VLAN mode, kernel part: attach a pod to `<parent>.<vid>` through the
 * per-VLAN bridge (see vlan-plan.ts for why a bridge), and detach it, removing
 * the bridge and the sub-interface with the last pod.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { withNodeLock } from '../lib/lock';
import * as ifla from 'netlink/dist/rt/ifla';
import { flat, NetnsHandle, Rtnl } from '../dataplane';
import { TernError, isTernError, messageOf } from '../lib/errors';
import { familyOf } from './addr';
import { checkVlanAddressing, vlanNames, VLAN_SUBIF_ALIAS, type VlanAttachment, type VlanNames, type VlanPool } from './vlan-plan';
import { openRtnl } from './netns';

const NLM_F_EXCL = 0x200;
const NLM_F_CREATE = 0x400;

export interface AttachVlanPodRequest extends VlanAttachment {
  /** Pod network namespace path (CNI_NETNS). */
  podNetnsPath: string;
  /** Node namespace; our own when absent (the CNI plugin runs in the node's). */
  nodeNetnsPath?: string;
}

export interface AttachVlanPodResult extends VlanNames {
  address: string;
  gateway: string;
  mac: string;
}

export interface DetachVlanPodRequest {
  pool: VlanPool;
  containerId: string;
  ifName?: string;
  nodeNetnsPath?: string;
}

export const MISSING_8021Q =
  'the kernel has no 802.1Q VLAN support (CONFIG_VLAN_8021Q, module 8021q): VLAN mode cannot run on this node';

function unsupportedVlan(e: unknown): boolean {
  return /EOPNOTSUPP|ENOTSUP|Unknown device type|Operation not supported/i.test(messageOf(e));
}

async function linkRaw(rtnl: Rtnl, name: string) {
  return (await rtnl.sock.getLinks()).find((l) => l.attrs.ifname === name);
}

async function ensureSubInterface(rtnl: Rtnl, n: VlanNames, pool: VlanPool): Promise<number> {
  const existing = await linkRaw(rtnl, n.subInterface);
  if (existing) {
    const info = existing.attrs.linkinfo ? ifla.parseInfo(existing.attrs.linkinfo) : undefined;
    const id = info?.kind === 'vlan' && info.data ? ifla.parseVlan(info.data).id : undefined;
    if (id !== pool.vlanId) throw new TernError('CONFLICT', `${n.subInterface} exists but is not VLAN ${pool.vlanId} on ${pool.parent}`);
    return existing.data.index!;
  }
  const parent = await rtnl.linkByName(pool.parent);
  if (!parent) throw new TernError('INVALID_CONFIG', `VLAN parent interface ${pool.parent} not found`);
  const link = Buffer.alloc(4);
  link.writeUInt32LE(parent.index);
  const linkinfo = flat(ifla.formatInfo({ kind: 'vlan', data: flat(ifla.formatVlan({ id: pool.vlanId })) }));
  try {
    await rtnl.sock.newLink({}, { ifname: n.subInterface, link, linkinfo, ...(pool.mtu ? { mtu: pool.mtu } : {}) }, { flags: NLM_F_CREATE | NLM_F_EXCL });
  } catch (e) {
    if (unsupportedVlan(e)) throw new TernError('UNSUPPORTED_KERNEL', MISSING_8021Q, { cause: e, details: '8021q' });
    if (!/EEXIST/.test(messageOf(e))) throw new TernError('IO_FAILURE', `create ${n.subInterface}: ${messageOf(e)}`, { cause: e });
  }
  await rtnl.setLink(n.subInterface, { alias: VLAN_SUBIF_ALIAS, up: true });
  await rtnl.setLink(pool.parent, { up: true });
  return (await rtnl.linkByName(n.subInterface))!.index;
}

async function ensureBridge(rtnl: Rtnl, n: VlanNames, pool: VlanPool): Promise<number> {
  if (!(await rtnl.linkByName(n.bridge))) {
    const linkinfo = flat(ifla.formatInfo({ kind: 'bridge' }));
    try {
      await rtnl.sock.newLink({}, { ifname: n.bridge, linkinfo, ...(pool.mtu ? { mtu: pool.mtu } : {}) }, { flags: NLM_F_CREATE | NLM_F_EXCL });
    } catch (e) {
      if (!/EEXIST/.test(messageOf(e))) throw new TernError('IO_FAILURE', `create ${n.bridge}: ${messageOf(e)}`, { cause: e });
    }
  }
  await rtnl.setLink(n.bridge, { up: true });
  return (await rtnl.linkByName(n.bridge))!.index;
}

async function setMaster(rtnl: Rtnl, name: string, master: number): Promise<void> {
  const l = await linkRaw(rtnl, name);
  if (!l) throw new TernError('IO_FAILURE', `${name} vanished`);
  if (l.attrs.master === master) return;
  if (l.attrs.master) throw new TernError('CONFLICT', `${name} is already enslaved to another device`);
  await rtnl.sock.setLink({ index: l.data.index }, { master });
}

/**
 * One VLAN of one node at a time: a DEL removing the VLAN's last port must not
 * delete the bridge or sub-interface an ADD is attaching a new port to.
 */
function vlanLock(nodeNetnsPath: string | undefined, vlanId: number): string {
  const ns = fs.statSync(nodeNetnsPath ?? '/proc/self/ns/net').ino;
  return path.join('/run/tern', `vlan-${ns}-${vlanId}.lock`);
}

/** Attach a pod to its pool's VLAN. On failure nothing of this pod is left behind. */
export function attachVlanPod(req: AttachVlanPodRequest): Promise<AttachVlanPodResult> {
  vlanNames(req); // bad IDs and names fail before any lock
  return withNodeLock(vlanLock(req.nodeNetnsPath, req.pool.vlanId), () => attachLocked(req));
}

async function attachLocked(req: AttachVlanPodRequest): Promise<AttachVlanPodResult> {
  const n = vlanNames(req);
  const addr = checkVlanAddressing(req);
  const node = openRtnl(req.nodeNetnsPath);
  const podNs = NetnsHandle.open(req.podNetnsPath);
  const pod = Rtnl.open(podNs);
  try {
    if (await pod.linkByName(n.ifName)) throw new TernError('ALREADY_EXISTS', `interface ${n.ifName} already exists in ${req.podNetnsPath}`);
    try {
      // Sub-interface first: on a kernel without 8021q this fails before anything exists.
      await ensureSubInterface(node, n, req.pool);
      const bridge = await ensureBridge(node, n, req.pool);
      await setMaster(node, n.subInterface, bridge);
      await node.deleteLink(n.hostVeth); // leftover of an interrupted ADD of this same attachment
      await node.createVeth({ name: n.hostVeth, alias: n.alias, mtu: req.pool.mtu, peer: { name: n.ifName, netns: podNs, mtu: req.pool.mtu } });
      await setMaster(node, n.hostVeth, bridge);
      await node.setLink(n.hostVeth, { up: true });
      const podLink = await pod.linkByName(n.ifName);
      if (!podLink) throw new TernError('IO_FAILURE', `${n.ifName} vanished from ${req.podNetnsPath}`);
      await pod.setLink(n.ifName, { up: true });
      await pod.addAddress(podLink.index, addr.address, { nodad: familyOf(addr.gateway) === 6 });
      await pod.replaceRoute({ dst: familyOf(addr.gateway) === 4 ? '0.0.0.0/0' : '::/0', gateway: addr.gateway, dev: podLink.index });
      return { ...n, address: addr.address, gateway: addr.gateway, mac: podLink.mac ?? '' };
    } catch (e) {
      await node.deleteLink(n.hostVeth).catch(() => undefined);
      await sweepVlan(node, n).catch(() => undefined);
      throw e;
    }
  } catch (e) {
    if (isTernError(e)) throw e;
    throw new TernError('IO_FAILURE', `attach to VLAN ${req.pool.vlanId}: ${messageOf(e)}`, { cause: e });
  } finally {
    pod.close();
    podNs.close();
    node.close();
  }
}

/**
 * Detach a pod: deleting the host veth removes its peer in the pod. Already
 * gone counts as success (CNI DEL may repeat). Returns whether the VLAN's
 * bridge and sub-interface went with it.
 */
export function detachVlanPod(req: DetachVlanPodRequest): Promise<{ removedVlan: boolean }> {
  vlanNames(req);
  return withNodeLock(vlanLock(req.nodeNetnsPath, req.pool.vlanId), () => detachLocked(req));
}

async function detachLocked(req: DetachVlanPodRequest): Promise<{ removedVlan: boolean }> {
  const n = vlanNames(req);
  const node = openRtnl(req.nodeNetnsPath);
  try {
    await node.deleteLink(n.hostVeth);
    return { removedVlan: await sweepVlan(node, n) };
  } finally {
    node.close();
  }
}

/** Remove the bridge and our sub-interface once no pod port is left on the bridge. */
async function sweepVlan(node: Rtnl, n: VlanNames): Promise<boolean> {
  const links = await node.sock.getLinks();
  const br = links.find((l) => l.attrs.ifname === n.bridge);
  const sub = links.find((l) => l.attrs.ifname === n.subInterface);
  if (br) {
    const ports = links.filter((l) => l.attrs.master === br.data.index && l.attrs.ifname !== n.subInterface);
    if (ports.length > 0) return false;
    await node.deleteLink(n.bridge);
  }
  if (sub && sub.attrs.ifalias === VLAN_SUBIF_ALIAS) await node.deleteLink(n.subInterface);
  return true;
}
