/**
 * Applier for the VXLAN plan: reads the VTEP, its FDB/neighbor entries and
 * Tern's routes from the node namespace over rtnetlink, diffs them against
 * the plan and applies the difference.
 *
 * What the overlay owns, and therefore may sweep:
 *  - the `tern.vxlan` device and every address, neighbor and FDB entry on it;
 *  - routes with rtm_protocol RTPROT_TERN through `tern.vxlan`, and
 *    RTPROT_TERN routes *with a gateway* on the uplink (CrossSubnet's direct
 *    routes). Pod /32 routes (RTPROT_TERN, no gateway, on tern<hex> veths)
 *    are the CNI plugin's and never match.
 */
import * as os from 'node:os';
import type { RtNetlinkSocket } from 'netlink';
import * as ifla from 'netlink/dist/rt/ifla';
import { RTPROT_TERN } from '../lib/constants';
import { TernError, messageOf } from '../lib/errors';
import { canonicalIp, familyOf, ipBytes, ipFromBytes, networkOf, parseCidr } from './addr';
import { diffOverlay, type ObservedOverlay, type ObservedVtep, type OverlayOp } from './diff';
import { checksumOffloadBroken, planOverlay, VTEP_NAME } from './plan';
import { mustRunIn, openRtnl, runIn } from './netns';
import { flat, macToBytes, type Rtnl } from '../dataplane';
import type { FdbSpec, NeighborSpec, OverlayDesired, OverlayPlan, RouteSpec, SkippedBlock, UplinkFacts, VtepSpec } from './types';
import { formatMac } from './vtep-mac';
import { applyVxlanGuard } from './vxlan-guard';

const AF_INET = 2;
const AF_INET6 = 10;
const AF_BRIDGE = 7;
const RT_TABLE_MAIN = 254;
const RTNH_F_ONLINK = 4;
const NLM_F_REPLACE = 0x100;
const NLM_F_EXCL = 0x200;
const NLM_F_CREATE = 0x400;

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

  async observe(uplinkIndex: number | undefined): Promise<ObservedOverlay> {
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
    const empty: ObservedOverlay = { vtep, addresses: [], neighbors: [], fdb: [], routes: [] };
    const routes: RouteSpec[] = [];
    for (const family of [AF_INET, AF_INET6]) {
      for (const r of await this.sock.getRoutes({ family })) {
        if (Number(r.data.protocol) !== RTPROT_TERN || (r.attrs.table ?? r.data.table) !== RT_TABLE_MAIN || !r.attrs.dst || !r.attrs.gateway) continue;
        const dst = `${ipFromBytes(r.attrs.dst)}/${r.data.dstLen}`;
        const gateway = ipFromBytes(r.attrs.gateway);
        if (vtep && r.attrs.oif === vtep.index) routes.push({ dst, gateway, dev: 'vtep' });
        else if (uplinkIndex !== undefined && r.attrs.oif === uplinkIndex) routes.push({ dst, gateway, dev: 'uplink' });
      }
    }
    empty.routes = routes;
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
    return { vtep, addresses, neighbors, fdb, routes };
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
        case 'delRoute': {
          const r = op.route;
          const c = parseCidr(r.dst);
          const oif = r.dev === 'vtep' ? vtepIndex : uplinkIndex;
          const data = {
            family: c.family === 4 ? AF_INET : AF_INET6,
            dstLen: c.len,
            table: RT_TABLE_MAIN,
            protocol: RTPROT_TERN as never,
            scope: 'UNIVERSE' as const,
            type: 'UNICAST' as const,
            flags: r.dev === 'vtep' ? { __unknown: RTNH_F_ONLINK } : {},
          };
          const attrs = { dst: ipBytes(c.ip), gateway: ipBytes(r.gateway), oif };
          if (op.kind === 'setRoute') await this.sock.newRoute(data, attrs, { flags: NLM_F_CREATE | NLM_F_REPLACE });
          else await this.sock.delRoute(data, attrs);
          return vtepIndex;
        }
      }
    } catch (e) {
      throw new TernError('IO_FAILURE', `overlay ${op.kind} failed: ${messageOf(e)}`, { cause: e, details: JSON.stringify(op) });
    }
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
