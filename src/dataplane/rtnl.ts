/**
 * Thin rtnetlink adapter over the `netlink` package: links, veths, addresses
 * and routes. No decisions here; planners decide, this writes. Kernel errors
 * come back as TernErrors carrying the errno name.
 */
// The rtnetlink part of the package only: its index loads genetlink, nl80211 and WireGuard too.
import { createRtNetlink, type RtNetlinkSocket } from 'netlink/dist/rt/rt';
import { Flags, FlagsNew } from 'netlink/dist/constants';
import type { MessageType } from 'netlink/dist/rt/structs';
import { AttrStream, type StreamData } from 'netlink/dist/structs';
import * as ifla from 'netlink/dist/rt/ifla';
import * as rts from 'netlink/dist/rt/gen_structs';
import { TernError } from '../lib/errors';
import { addrToBytes, bytesToAddr, familyOf, parsePrefix, bigIntToAddr, type Family } from '../lib/cidr';
import { NetnsHandle } from './netns';
import { AF_INET, AF_INET6, RT_SCOPE, RT_TABLE_MAIN, RTM_DELROUTE, RTM_NEWROUTE, RTN, RTNH_F_ONLINK, decodeMultipath, encodeRouteBody, type WireRoute } from './route-codec';

const AF = { 4: AF_INET, 6: AF_INET6 } as const;

export interface LinkInfo {
  index: number;
  name: string;
  mac?: string;
  mtu?: number;
  up: boolean;
  kind?: string;
  alias?: string;
  /** Device group (IFLA_GROUP). */
  group?: number;
}

export interface AddressInfo {
  index: number;
  address: string;
  prefixLen: number;
  family: Family;
}

export type RouteScopeName = 'universe' | 'link' | 'host';
export type RouteTypeName = 'unicast' | 'blackhole' | 'local';

export interface RouteSpec {
  /** "a.b.c.d/len" or "::/0" */
  dst: string;
  dev?: number;
  gateway?: string;
  scope?: RouteScopeName;
  onlink?: boolean;
  protocol?: number;
  table?: number;
  type?: RouteTypeName;
  /** ECMP next hops; replaces dev/gateway. */
  multipath?: { gateway: string; dev: number; onlink?: boolean }[];
}

export interface RouteInfo extends RouteSpec {
  family: Family;
  protocol: number;
  table: number;
}

export function flat(sd: StreamData): Buffer {
  const s = new AttrStream();
  s.emit(sd);
  return Buffer.concat(s.bufs);
}

export function macToBytes(mac: string): Buffer {
  const parts = mac.split(':');
  if (parts.length !== 6 || parts.some((p) => !/^[0-9a-fA-F]{2}$/.test(p))) throw new TernError('INVALID_CONFIG', `invalid MAC "${mac}"`);
  return Buffer.from(parts.map((p) => parseInt(p, 16)));
}

export function bytesToMac(b?: Buffer): string | undefined {
  return b && b.length === 6 ? Array.from(b, (x) => x.toString(16).padStart(2, '0')).join(':') : undefined;
}

/** Map the netlink package's "Request rejected: EEXIST" into a TernError with the errno name. */
function kernelError(op: string, e: unknown): TernError {
  const msg = e instanceof Error ? e.message : String(e);
  const name = /Request rejected: (\w+)/.exec(msg)?.[1] ?? 'EIO';
  const code = name === 'EEXIST' ? 'ALREADY_EXISTS' : name === 'ENODEV' || name === 'ESRCH' || name === 'ENOENT' ? 'NOT_FOUND' : 'IO_FAILURE';
  const err = new TernError(code, `${op}: ${name}`, { cause: e, details: name });
  return err;
}

export function errnoName(e: unknown): string | undefined {
  return e instanceof TernError ? e.details : undefined;
}

/** The netlink package decodes known enum values to their names; turn them back into numbers. */
function enumNum(v: unknown, e: Record<string, unknown>): number {
  if (typeof v === 'number') return v;
  if (typeof v === 'string' && typeof e[v] === 'number') return e[v] as number;
  return 0;
}

export class Rtnl {
  private constructor(readonly sock: RtNetlinkSocket) {}

  /** Open a socket in `ns` (or the current namespace). */
  static open(ns?: NetnsHandle): Rtnl {
    const sock = ns ? ns.run(() => createRtNetlink()) : createRtNetlink();
    return new Rtnl(sock);
  }

  close(): void {
    this.sock.socket.close();
  }

  async listLinks(): Promise<LinkInfo[]> {
    const msgs = await this.sock.getLinks();
    return msgs.map((m) => {
      let kind: string | undefined;
      if (m.attrs.linkinfo) {
        try {
          kind = ifla.parseInfo(m.attrs.linkinfo).kind;
        } catch {
          kind = undefined;
        }
      }
      return {
        index: m.data.index ?? 0,
        name: m.attrs.ifname ?? '',
        mac: bytesToMac(m.attrs.address),
        mtu: m.attrs.mtu,
        up: Boolean(m.data.flags?.up),
        kind,
        alias: m.attrs.ifalias,
        group: m.attrs.group,
      };
    });
  }

  async linkByName(name: string): Promise<LinkInfo | undefined> {
    try {
      const msgs = await this.sock.getLink({}, { ifname: name });
      if (!msgs.length) return undefined;
      return briefLink(msgs[0], name);
    } catch (e) {
      const err = kernelError(`get link ${name}`, e);
      if (err.code === 'NOT_FOUND') return undefined;
      throw err;
    }
  }

  async linkByIndex(index: number): Promise<LinkInfo | undefined> {
    try {
      const [m] = await this.sock.getLink({ index }, {});
      return m ? briefLink(m, '') : undefined;
    } catch (e) {
      const err = kernelError(`get link ${index}`, e);
      if (err.code === 'NOT_FOUND') return undefined;
      throw err;
    }
  }

  /**
   * Create a veth whose peer is born directly inside another namespace (no
   * move, no rename). Returns both interface indexes when the kernel echoes
   * the new link (NLM_F_ECHO, Linux 6.3 and later: the host end's message
   * carries its index and, in IFLA_LINK, the peer's index in the peer's
   * namespace); {} when it does not, and the caller looks them up.
   */
  async createVeth(spec: { name: string; mac?: string; mtu?: number; alias?: string; group?: number; up?: boolean; peer: { name: string; mac?: string; mtu?: number; netns: NetnsHandle } }): Promise<{ index?: number; peerIndex?: number }> {
    const peerAttrs: ifla.LinkAttrs = { ifname: spec.peer.name, netNsFd: spec.peer.netns.fd };
    if (spec.peer.mac) peerAttrs.address = macToBytes(spec.peer.mac);
    if (spec.peer.mtu) peerAttrs.mtu = spec.peer.mtu;
    const peer = Buffer.concat([rts.formatLink({}), flat(ifla.formatLinkAttrs(peerAttrs))]);
    const linkinfo = flat(ifla.formatInfo({ kind: 'veth', data: flat(ifla.formatVethInfo({ peer })) }));
    const attrs: ifla.LinkAttrs = { ifname: spec.name, linkinfo };
    if (spec.mac) attrs.address = macToBytes(spec.mac);
    if (spec.mtu) attrs.mtu = spec.mtu;
    if (spec.group !== undefined) attrs.group = spec.group;
    // IFF_UP in the ifinfomsg (and its change mask) creates the host end up; the kernel refuses (ENOTCONN) the same for a peer in another namespace.
    const data: rts.Link = spec.up ? { flags: { up: true }, change: { up: true } } : {};
    let echoed: { data: rts.Link; attrs: ifla.LinkAttrs } | undefined;
    try {
      // The echo is sent once both ends exist and are configured (nothing that can still fail follows it for a veth without a master).
      [echoed] = await this.sock.newLink(data, attrs, { flags: FlagsNew.CREATE | FlagsNew.EXCL | Flags.ECHO });
    } catch (e) {
      throw kernelError(`create veth ${spec.name}/${spec.peer.name}`, e);
    }
    if (spec.alias) await this.setLink(spec.name, { alias: spec.alias });
    const peerIndex = echoed?.attrs.link?.length === 4 ? echoed.attrs.link.readUInt32LE(0) : undefined;
    return echoed?.attrs.ifname === spec.name && echoed.data.index && peerIndex ? { index: echoed.data.index, peerIndex } : {};
  }

  async setLink(name: string, change: { up?: boolean; mtu?: number; mac?: string; alias?: string; group?: number }): Promise<void> {
    const attrs: ifla.LinkAttrs = { ifname: name };
    if (change.mtu) attrs.mtu = change.mtu;
    if (change.mac) attrs.address = macToBytes(change.mac);
    if (change.alias !== undefined) attrs.ifalias = change.alias;
    if (change.group !== undefined) attrs.group = change.group;
    const data: rts.Link = change.up === undefined ? {} : { flags: { up: change.up || undefined }, change: { up: true } };
    try {
      await this.sock.setLink(data, attrs);
    } catch (e) {
      throw kernelError(`set link ${name}`, e);
    }
  }

  async deleteLink(name: string): Promise<boolean> {
    try {
      await this.sock.delLink({}, { ifname: name });
      return true;
    } catch (e) {
      const err = kernelError(`delete link ${name}`, e);
      if (err.code === 'NOT_FOUND') return false;
      throw err;
    }
  }

  /** Delete every link of a device group in one request: the kernel unregisters them as one batch. */
  async deleteGroup(group: number): Promise<void> {
    try {
      await this.sock.delLink({}, { group });
    } catch (e) {
      throw kernelError(`delete link group ${group}`, e);
    }
  }

  async addAddress(index: number, cidr: string, opts: { nodad?: boolean } = {}): Promise<void> {
    const [addr, len] = cidr.split('/');
    const family = familyOf(addr);
    const bytes = addrToBytes(addr);
    const flags = opts.nodad ? { nodad: true as const } : undefined;
    try {
      await this.sock.newAddress(
        { family: AF[family], prefixlen: Number(len), index, scope: 0, ...(flags ? { flags } : {}) },
        { local: bytes, address: bytes, ...(flags ? { flags } : {}) },
        { flags: FlagsNew.CREATE | FlagsNew.REPLACE },
      );
    } catch (e) {
      throw kernelError(`add address ${cidr}`, e);
    }
  }

  async listAddresses(index?: number): Promise<AddressInfo[]> {
    const msgs = await this.sock.getAddresses();
    return msgs
      .filter((m) => index === undefined || m.data.index === index)
      .map((m) => {
        const b = m.attrs.local ?? m.attrs.address ?? Buffer.alloc(0);
        return { index: m.data.index ?? 0, address: bytesToAddr(b), prefixLen: m.data.prefixlen ?? 0, family: (m.data.family === 10 ? 6 : 4) as Family };
      });
  }

  private routeBody(r: RouteSpec): Buffer {
    return encodeRouteBody(wireRoute(r));
  }

  /** Create or replace a route (idempotent). */
  async replaceRoute(r: RouteSpec): Promise<void> {
    try {
      await this.sock.request(RTM_NEWROUTE as MessageType, this.routeBody(r), { flags: FlagsNew.CREATE | FlagsNew.REPLACE });
    } catch (e) {
      throw kernelError(`route ${r.dst}`, e);
    }
  }

  /** Create a route that must not exist yet (ALREADY_EXISTS if one to the same destination does). */
  async addRoute(r: RouteSpec): Promise<void> {
    try {
      await this.sock.request(RTM_NEWROUTE as MessageType, this.routeBody(r), { flags: FlagsNew.CREATE | FlagsNew.EXCL });
    } catch (e) {
      throw kernelError(`route ${r.dst}`, e);
    }
  }

  async deleteRoute(r: RouteSpec): Promise<boolean> {
    try {
      await this.sock.request(RTM_DELROUTE as MessageType, this.routeBody(r));
      return true;
    } catch (e) {
      const err = kernelError(`delete route ${r.dst}`, e);
      if (err.code === 'NOT_FOUND') return false;
      throw err;
    }
  }

  async listRoutes(filter: { family?: Family; protocol?: number; table?: number } = {}): Promise<RouteInfo[]> {
    const out: RouteInfo[] = [];
    for (const family of filter.family ? [filter.family] : ([4, 6] as Family[])) {
      const msgs = await this.sock.getRoutes({ family: AF[family] });
      for (const m of msgs) {
        const table = m.attrs.table ?? m.data.table ?? 0;
        const protocol = enumNum(m.data.protocol, rts.RouteProtocol as never);
        if (filter.table !== undefined && table !== filter.table) continue;
        if (filter.protocol !== undefined && protocol !== filter.protocol) continue;
        const dst = m.attrs.dst ? `${bytesToAddr(m.attrs.dst)}/${m.data.dstLen}` : family === 4 ? '0.0.0.0/0' : '::/0';
        const scopeNum = enumNum(m.data.scope, rts.RouteScope as never);
        const typeNum = enumNum(m.data.type, rts.RouteType as never);
        const mp = m.attrs.multipath;
        out.push({
          family,
          dst,
          table,
          protocol,
          dev: m.attrs.oif,
          gateway: m.attrs.gateway ? bytesToAddr(m.attrs.gateway) : undefined,
          scope: scopeNum === 253 ? 'link' : scopeNum === 254 ? 'host' : 'universe',
          type: typeNum === 6 ? 'blackhole' : typeNum === 2 ? 'local' : 'unicast',
          onlink: ((m.data.flags as { __unknown?: number } | undefined)?.__unknown ?? 0) & RTNH_F_ONLINK ? true : undefined,
          multipath: mp
            ? decodeMultipath(mp).map((h) => ({ gateway: h.gateway ? bytesToAddr(h.gateway) : family === 4 ? '0.0.0.0' : '::', dev: h.dev, ...(h.onlink ? { onlink: true } : {}) }))
            : undefined,
        });
      }
    }
    return out;
  }

  /** The kernel's own answer for one destination (`ip route get`): its gateway, if it has one; undefined also when unreachable. */
  async routeGet(addr: string): Promise<string | undefined> {
    const family = familyOf(addr);
    try {
      const [m] = await this.sock.getRoute({ family: AF[family], dstLen: family === 4 ? 32 : 128 }, { dst: addrToBytes(addr) });
      return m?.attrs.gateway ? bytesToAddr(m.attrs.gateway) : undefined;
    } catch {
      return undefined;
    }
  }
}

function briefLink(m: Awaited<ReturnType<RtNetlinkSocket['getLink']>>[number], name: string): LinkInfo {
  return { index: m.data.index ?? 0, name: m.attrs.ifname ?? name, mac: bytesToMac(m.attrs.address), mtu: m.attrs.mtu, up: Boolean(m.data.flags?.up), alias: m.attrs.ifalias };
}

/** A route spec in the encoder's binary form. */
export function wireRoute(r: RouteSpec): WireRoute {
  const p = parsePrefix(r.dst);
  return {
    v6: p.family === 6,
    dst: addrToBytes(bigIntToAddr(p.base, p.family)),
    dstLen: p.length,
    dev: r.dev,
    gateway: r.gateway ? addrToBytes(r.gateway) : undefined,
    onlink: r.onlink,
    hops: r.multipath?.length ? r.multipath.map((h) => ({ gateway: addrToBytes(h.gateway), dev: h.dev, onlink: h.onlink })) : undefined,
    protocol: r.protocol ?? 3, // RTPROT_BOOT, as ip(8) marks routes without a protocol
    table: r.table ?? RT_TABLE_MAIN,
    scope: RT_SCOPE[r.scope ?? 'universe'],
    type: RTN[r.type ?? 'unicast'],
  };
}
