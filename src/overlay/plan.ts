/**
 * Pure planner: desired overlay state (+ uplink facts) -> the kernel objects
 * that should exist. No I/O; the applier diffs this against the kernel.
 */
import { canonicalIp, familyOf, networkOf, parseCidr } from './addr';
import { selectPath } from './select';
import type { FdbSpec, NeighborSpec, OverlayDesired, OverlayPlan, RouteSpec, SkippedBlock, UplinkFacts } from './types';
import { vtepMacFor } from './vtep-mac';
import { TernError } from '../lib/errors';

export const VTEP_NAME = 'tern.vxlan';
export const DEFAULT_VNI = 4096;
export const DEFAULT_VXLAN_PORT = 4789;

/** Outer IP + UDP + VXLAN + inner Ethernet: 20+8+8+14 (v4), 40+8+8+14 (v6). */
export function vxlanOverhead(underlayFamily: 4 | 6): number {
  return underlayFamily === 4 ? 50 : 70;
}

/**
 * The VXLAN tx-checksum stall: with NAT on the path, kernels before 5.7
 * computed a wrong inner checksum when offloading on a VXLAN device, and
 * packets sat until a retransmit (Calico and flannel turn offload off).
 */
export function checksumOffloadBroken(release: string): boolean {
  const m = /^(\d+)\.(\d+)/.exec(release);
  if (!m) return true;
  const [maj, min] = [Number(m[1]), Number(m[2])];
  return maj < 5 || (maj === 5 && min < 7);
}

export function planOverlay(d: OverlayDesired, uplink: UplinkFacts | null): OverlayPlan {
  const port = d.port ?? DEFAULT_VXLAN_PORT;
  const empty: OverlayPlan = { vtep: null, neighbors: [], fdb: [], routes: [], vxlanPeers: [], port, skipped: [] };
  if (d.mode !== 'vxlan' && d.mode !== 'vxlan-crosssubnet') return empty;
  if (!uplink) throw new TernError('NOT_FOUND', `no uplink holds ${d.self.underlayIp}`);
  const vni = d.vni ?? DEFAULT_VNI;
  if (!Number.isInteger(vni) || vni < 1 || vni > 0xffffff) throw new TernError('INVALID_CONFIG', `VNI ${vni} out of range 1..16777215`);
  if (!Number.isInteger(port) || port < 1 || port > 65535) throw new TernError('INVALID_CONFIG', `VXLAN port ${port} out of range`);

  const family = familyOf(d.self.underlayIp);
  const tunnelFamily = familyOf(d.self.tunnelIp);
  const selfSubnet = networkOf(d.self.subnet ?? uplink.subnet);
  const neighbors: NeighborSpec[] = [];
  const fdb: FdbSpec[] = [];
  const routes: RouteSpec[] = [];
  const skipped: SkippedBlock[] = [];
  const peers = new Set<string>();

  for (const r of [...d.remotes].sort((a, b) => a.name.localeCompare(b.name))) {
    if (r.name === d.self.name) continue;
    if (familyOf(r.underlayIp) !== family) {
      for (const block of r.blocks) skipped.push({ node: r.name, block, reason: `underlay family differs from ours (IPv${family})` });
      continue;
    }
    peers.add(canonicalIp(r.underlayIp));
    const path = selectPath(d.mode, selfSubnet, r.underlayIp);
    let vtepUsed = false;
    for (const block of r.blocks) {
      const b = parseCidr(block);
      const dst = networkOf(block);
      if (path === 'direct') {
        if (b.family !== family) {
          skipped.push({ node: r.name, block, reason: 'block family differs from the underlay; a direct route needs a same-family gateway' });
          continue;
        }
        routes.push({ dst, gateway: canonicalIp(r.underlayIp), dev: 'uplink' });
      } else {
        if (b.family !== tunnelFamily || familyOf(r.tunnelIp) !== tunnelFamily) {
          skipped.push({ node: r.name, block, reason: `block or remote tunnel address is not IPv${tunnelFamily} like our tunnel address` });
          continue;
        }
        routes.push({ dst, gateway: canonicalIp(r.tunnelIp), dev: 'vtep' });
        vtepUsed = true;
      }
    }
    if (vtepUsed) {
      const mac = r.vtepMac.toLowerCase();
      neighbors.push({ ip: canonicalIp(r.tunnelIp), mac });
      fdb.push({ mac, dst: canonicalIp(r.underlayIp) });
    }
  }

  return {
    vtep: {
      name: VTEP_NAME,
      vni,
      port,
      local: canonicalIp(d.self.underlayIp),
      family,
      linkIndex: uplink.ifindex,
      mac: (d.self.vtepMac ?? vtepMacFor(d.self.name)).toLowerCase(),
      mtu: uplink.mtu - vxlanOverhead(family),
      address: `${canonicalIp(d.self.tunnelIp)}/${tunnelFamily === 4 ? 32 : 128}`,
    },
    neighbors: dedupe(neighbors, (n) => n.ip),
    fdb: dedupe(fdb, (f) => f.mac),
    routes: dedupe(routes, (r) => r.dst),
    vxlanPeers: [...peers].sort(),
    port,
    skipped,
  };
}

/** First one wins, so a conflicting duplicate (two nodes claiming a block) is deterministic. */
function dedupe<T>(xs: T[], key: (x: T) => string): T[] {
  const seen = new Set<string>();
  return xs.filter((x) => (seen.has(key(x)) ? false : (seen.add(key(x)), true)));
}
