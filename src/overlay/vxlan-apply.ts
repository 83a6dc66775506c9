/**
 * Applier for the VXLAN plan: reads the VTEP, its FDB/neighbor entries and
 * Tern's routes from the node namespace over rtnetlink, diffs them against
 * the plan and applies the difference.
 *
 * What the overlay owns, and therefore may sweep:
 *  - the `tern.vxlan` device and every address, neighbor and FDB entry on it;
 *  - routes with its own mark, RTPROT_VXLAN: onlink through `tern.vxlan`,
 *    and CrossSubnet's direct routes on the uplink. Routes with the old
 *    shared mark (RTPROT_LEGACY) and a gateway through the VTEP or on the
 *    uplink were the overlay's too: wanted ones are re-marked in place, the
 *    rest removed. (The daemon runs either BGP or VXLAN, so no learned route
 *    of the shared mark is on a VXLAN node.)
 */
import * as os from 'node:os';
import type { RtNetlinkSocket } from 'netlink';
import * as ifla from 'netlink/dist/rt/ifla';
import { RTPROT_LEGACY, RTPROT_VXLAN } from '../lib/constants';
import { TernError, messageOf } from '../lib/errors';
import { canonicalIp, familyOf, ipBytes, ipFromBytes, networkOf, parseCidr } from './addr';
import { diffOverlay, type ObservedOverlay, type ObservedVtep, type OverlayOp } from './diff';
import { checksumOffloadBroken, planOverlay, VTEP_NAME } from './plan';
import { mustRunIn, openRtnl, runIn } from './netns';
import { flat, macToBytes, type Rtnl } from '../dataplane';
import { AF_BRIDGE, AF_INET, AF_INET6, NLM_F_CREATE, NLM_F_EXCL, NLM_F_REPLACE, RT_TABLE_MAIN } from '../dataplane/route-codec';
import type { FdbSpec, NeighborSpec, OverlayDesired, OverlayPlan, RouteSpec, SkippedBlock, UplinkFacts, VtepSpec } from './types';
import { formatMac } from './vtep-mac';
import { applyVxlanGuard } from './vxlan-guard';

export interface VxlanReconcilerOptions {
  /** Node namespace (e.g. /run/netns/node1); our own namespace when absent. */
  netnsPath?: string;
  /** iptables binary for the VXLAN guard: 'iptables' (default) or 'iptables-legacy'. */
  iptables?: string;
  /** Kernel release, for the checksum-offload decision; defaults to os.release(). */
  kernelRelease?: string;
}

export interface ReconcileResult {
  plan: OverlayPlan;
  ops: OverlayOp[];
  skipped: SkippedBlock[];
}

export class VxlanReconciler {
  private readonly rtnl: Rtnl;
  private readonly sock: RtNetlinkSocket;

  constructor(private readonly opts: VxlanReconcilerOptions = {}) {
    this.rtnl = openRtnl(opts.netnsPath);
    this.sock = this.rtnl.sock;
  }

  close(): void {
    this.rtnl.close();
  }

  async reconcile(desired: OverlayDesired): Promise<ReconcileResult> {
    const uplink = desired.mode === 'vxlan' || desired.mode === 'vxlan-crosssubnet' ? await this.findUplink(desired.self.underlayIp) : null;
    const plan = planOverlay(desired, uplink);
    const observed = await this.observe(uplink?.ifindex);
    const ops = diffOverlay(plan, observed);
    let vtepIndex = observed.vtep?.index;
    // Old-mark routes are not in `observed`, so the diff sets each wanted one (a replace, in place); the others go here.
    const wanted = new Set(plan.routes.map((r) => r.dst));
    for (const r of observed.legacyRoutes ?? []) if (!wanted.has(r.dst)) await this.deleteRoute(r, RTPROT_LEGACY, vtepIndex, uplink?.ifindex);
    for (const op of ops) vtepIndex = await this.apply(op, vtepIndex, uplink?.ifindex);
    if (plan.vtep) this.fixChecksumOffload(desired);
    applyVxlanGuard(this.opts.netnsPath, plan, this.opts.iptables ?? 'iptables');
    return { plan, ops, skipped: plan.skipped };
  }

  /** The link that holds the underlay address: its index, MTU and prefix. */
  async findUplink(underlayIp: string): Promise<UplinkFacts> {
    const fam = familyOf(underlayIp);
    const want = canonicalIp(underlayIp);
    const addrs = await this.sock.getAddresses({ family: fam === 4 ? AF_INET : AF_INET6 });
    const a = addrs.find((x) => x.attrs.local ? ipFromBytes(x.attrs.local) === want : x.attrs.address !== undefined && ipFromBytes(x.attrs.address) === want);
    if (!a || a.data.index === undefined || a.data.prefixlen === undefined) {
      throw new TernError('NOT_FOUND', `no interface holds the underlay address ${underlayIp}`);
    }
    const links = await this.sock.getLinks();
    const link = links.find((l) => l.data.index === a.data.index);
    return { ifindex: a.data.index, mtu: link?.attrs.mtu ?? 1500, subnet: networkOf(`${want}/${a.data.prefixlen}`) };
  }

  async observe(uplinkIndex: number | undefined): Promise<ObservedOverlay & { legacyRoutes: RouteSpec[] }> {
    const links = await this.sock.getLinks();
    const dev = links.find((l) => l.attrs.ifname === VTEP_NAME);
    let vtep: ObservedVtep | null = null;
    if (dev && dev.data.index !== undefined) {
      const info = dev.attrs.linkinfo ? ifla.parseInfo(dev.attrs.linkinfo) : undefined;
      if (info?.kind !== 'vxlan' || !info.data) {
        // Our name on something that is not a VTEP: recreate it as one.
        vtep = { index: dev.data.index, vni: -1, port: -1, local: '', linkIndex: -1, learning: true, mac: '', mtu: 0, up: false };
      } else {
        const v = ifla.parseVxlan(info.data);
        const local = v.local ?? v.local6;
        vtep = {
          index: dev.data.index,
          vni: v.id ?? -1,
          port: v.port ? v.port.readUInt16BE(0) : -1,
          local: local ? ipFromBytes(local) : '',
          linkIndex: v.link ?? 0,
          learning: v.learning !== 0,
          mac: dev.attrs.address ? formatMac(dev.attrs.address) : '',
          mtu: dev.attrs.mtu ?? 0,
          up: dev.data.flags?.up === true,
        };
      }
    }
    const routes: RouteSpec[] = [];
    const legacyRoutes: RouteSpec[] = [];
    for (const r of await this.rtnl.listRoutes({ table: RT_TABLE_MAIN })) {
      if ((r.protocol !== RTPROT_VXLAN && r.protocol !== RTPROT_LEGACY) || !r.gateway || r.dst.endsWith('/0')) continue;
      const into = r.protocol === RTPROT_VXLAN ? routes : legacyRoutes;
      if (vtep && r.dev === vtep.index) into.push({ dst: r.dst, gateway: r.gateway, dev: 'vtep' });
      else if (uplinkIndex !== undefined && r.dev === uplinkIndex) into.push({ dst: r.dst, gateway: r.gateway, dev: 'uplink' });
    }
    const empty: ObservedOverlay & { legacyRoutes: RouteSpec[] } = { vtep, addresses: [], neighbors: [], fdb: [], routes, legacyRoutes };
    if (!vtep) return empty;

    const addresses: string[] = [];
    for (const family of [AF_INET, AF_INET6]) {
      for (const a of await this.sock.getAddresses({ family })) {
        if (a.data.index !== vtep.index) continue;
        const ip = a.attrs.local ?? a.attrs.address;
        // The kernel's own IPv6 link-local is not ours to manage.
        if (!ip || (family === AF_INET6 && ip[0] === 0xfe && (ip[1] & 0xc0) === 0x80)) continue;
        addresses.push(`${ipFromBytes(ip)}/${a.data.prefixlen}`);
      }
    }
    const neighbors: NeighborSpec[] = [];
    const fdb: FdbSpec[] = [];
    // The FDB is its own dump (AF_BRIDGE); an unspecified family returns only IP neighbors.
    for (const family of [AF_INET, AF_INET6, AF_BRIDGE]) {
      for (const n of await this.sock.getNeighbors({ family })) {
        if (n.data.ifindex !== vtep.index || !n.attrs.lladdr || !n.attrs.dst) continue;
        if (family === AF_BRIDGE) fdb.push({ mac: formatMac(n.attrs.lladdr), dst: ipFromBytes(n.attrs.dst) });
        else if (n.data.state?.permanent) neighbors.push({ ip: ipFromBytes(n.attrs.dst), mac: formatMac(n.attrs.lladdr) });
      }
    }
    return { vtep, addresses, neighbors, fdb, routes, legacyRoutes };
  }

  private async apply(op: OverlayOp, vtepIndex: number | undefined, uplinkIndex: number | undefined): Promise<number | undefined> {
    try {
      switch (op.kind) {
        case 'deleteVtep':
          if (vtepIndex !== undefined) await this.sock.delLink({ index: vtepIndex });
          return undefined;
        case 'createVtep':
          return await this.createVtep(op.vtep);
        case 'updateVtep':
          await this.sock.setLink(
            { index: vtepIndex, ...(op.up ? { flags: { up: true }, change: { up: true } } : {}) },
            { ...(op.mtu !== undefined ? { mtu: op.mtu } : {}), ...(op.mac !== undefined ? { address: macToBytes(op.mac) } : {}) },
          );
          return vtepIndex;
        case 'addAddress':
        case 'delAddress': {
          const c = parseCidr(op.cidr);
          const data = { family: c.family === 4 ? AF_INET : AF_INET6, prefixlen: c.len, index: vtepIndex };
          const attrs = { local: ipBytes(c.ip), address: ipBytes(c.ip) };
          if (op.kind === 'addAddress') await this.sock.newAddress(data, attrs, { flags: NLM_F_CREATE | NLM_F_REPLACE });
          else await this.sock.delAddress(data, attrs);
          return vtepIndex;
        }
        case 'setFdb':
          await this.sock.newNeighbor(
            { family: AF_BRIDGE, ifindex: vtepIndex, state: { permanent: true }, flags: { self: true } },
            { lladdr: macToBytes(op.fdb.mac), dst: ipBytes(op.fdb.dst) },
            { flags: NLM_F_CREATE | NLM_F_REPLACE },
          );
          return vtepIndex;
        case 'delFdb':
          await this.sock.delNeighbor({ family: AF_BRIDGE, ifindex: vtepIndex, flags: { self: true } }, { lladdr: macToBytes(op.fdb.mac), dst: ipBytes(op.fdb.dst) });
          return vtepIndex;
        case 'setNeighbor':
        case 'delNeighbor': {
          const n = op.neighbor;
          const data = { family: familyOf(n.ip) === 4 ? AF_INET : AF_INET6, ifindex: vtepIndex, state: { permanent: true as const } };
          if (op.kind === 'setNeighbor') await this.sock.newNeighbor(data, { dst: ipBytes(n.ip), lladdr: macToBytes(n.mac) }, { flags: NLM_F_CREATE | NLM_F_REPLACE });
          else await this.sock.delNeighbor(data, { dst: ipBytes(n.ip) });
          return vtepIndex;
        }
        case 'setRoute':
          await this.rtnl.replaceRoute(this.kernelRoute(op.route, RTPROT_VXLAN, vtepIndex, uplinkIndex));
          return vtepIndex;
        case 'delRoute':
          await this.deleteRoute(op.route, RTPROT_VXLAN, vtepIndex, uplinkIndex);
          return vtepIndex;
      }
    } catch (e) {
      throw new TernError('IO_FAILURE', `overlay ${op.kind} failed: ${messageOf(e)}`, { cause: e, details: JSON.stringify(op) });
    }
  }

  private kernelRoute(r: RouteSpec, protocol: number, vtepIndex: number | undefined, uplinkIndex: number | undefined) {
    return { dst: r.dst, gateway: r.gateway, dev: r.dev === 'vtep' ? vtepIndex : uplinkIndex, onlink: r.dev === 'vtep', protocol };
  }

  private async deleteRoute(r: RouteSpec, protocol: number, vtepIndex: number | undefined, uplinkIndex: number | undefined): Promise<void> {
    await this.rtnl.deleteRoute(this.kernelRoute(r, protocol, vtepIndex, uplinkIndex));
  }

  private async createVtep(v: VtepSpec): Promise<number> {
    const port = Buffer.alloc(2);
    port.writeUInt16BE(v.port);
    const data = flat(
      ifla.formatVxlan({
        id: v.vni,
        link: v.linkIndex,
        ...(v.family === 4 ? { local: ipBytes(v.local) } : { local6: ipBytes(v.local) }),
        learning: 0,
        port,
      }),
    );
    const linkinfo = flat(ifla.formatInfo({ kind: 'vxlan', data }));
    await this.sock.newLink({}, { ifname: v.name, mtu: v.mtu, address: macToBytes(v.mac), linkinfo }, { flags: NLM_F_CREATE | NLM_F_EXCL });
    const link = (await this.sock.getLinks()).find((l) => l.attrs.ifname === v.name);
    if (link?.data.index === undefined) throw new TernError('INTERNAL', `${v.name} vanished after creation`);
    await this.sock.setLink({ index: link.data.index, flags: { up: true }, change: { up: true } }, {});
    return link.data.index;
  }

  private fixChecksumOffload(d: OverlayDesired): void {
    const want = d.txChecksumOffloadOff ?? 'auto';
    const off = want === 'auto' ? checksumOffloadBroken(this.opts.kernelRelease ?? os.release()) : want;
    if (!off) return;
    const cur = runIn(this.opts.netnsPath, 'ethtool', ['-k', VTEP_NAME]);
    if (cur.code === 0 && /^tx-checksumming: off/m.test(cur.stdout)) return;
    mustRunIn(this.opts.netnsPath, 'ethtool', ['-K', VTEP_NAME, 'tx', 'off']);
  }
}
