/**
 * The one rtnetlink route encoder, with the one copy of the constants it and
 * the other netlink users need. Routes arrive in binary form (address octets
 * already parsed): the FIB parses 100k prefixes with its own fast codec, the
 * Rtnl adapter parses a few with lib/cidr. Messages are written into a
 * caller's buffer so that a batch of hundreds is one allocation.
 */

export const AF_INET = 2;
export const AF_INET6 = 10;
export const AF_BRIDGE = 7;
export const RT_TABLE_COMPAT = 252;
export const RT_TABLE_MAIN = 254;
export const RTNH_F_ONLINK = 4;

export const NLMSG_ERROR = 2;
export const RTM_NEWROUTE = 24;
export const RTM_DELROUTE = 25;
export const NLM_F_REQUEST = 0x1;
export const NLM_F_ACK = 0x4;
export const NLM_F_REPLACE = 0x100;
export const NLM_F_EXCL = 0x200;
export const NLM_F_CREATE = 0x400;
export const NETLINK_ROUTE = 0;

export const RTA_DST = 1;
export const RTA_OIF = 4;
export const RTA_GATEWAY = 5;
export const RTA_MULTIPATH = 9;
export const RTA_TABLE = 15;

export const RT_SCOPE = { universe: 0, link: 253, host: 254 } as const;
export const RTN = { unicast: 1, local: 2, blackhole: 6 } as const;

export const ENOENT = 2;
export const ESRCH = 3;

export interface WireHop {
  gateway: Uint8Array;
  dev?: number;
  onlink?: boolean;
}

/** One route, addresses as octets (4 or 16). */
export interface WireRoute {
  v6: boolean;
  /** Destination network octets; only the first `dstLen` bits count. */
  dst: Uint8Array;
  dstLen: number;
  gateway?: Uint8Array;
  dev?: number;
  onlink?: boolean;
  /** ECMP next hops; replaces gateway/dev. */
  hops?: WireHop[];
  protocol: number;
  table: number;
  scope: number;
  type: number;
}

const NLMSG_HDRLEN = 16;
const RTMSG_LEN = 12;

/** Upper bound of one message's size (header included), so that a batch is encoded into one buffer. */
export function routeMessageBound(r: WireRoute): number {
  const addr = r.v6 ? 16 : 4;
  const hops = r.hops?.length ?? 0;
  // nlmsghdr + rtmsg, RTA_DST, RTA_TABLE, RTA_OIF, RTA_GATEWAY, RTA_MULTIPATH of rtnexthop + RTA_GATEWAY each
  return NLMSG_HDRLEN + RTMSG_LEN + (4 + addr) + 8 + 8 + (4 + addr) + 4 + hops * (8 + 4 + 16);
}

function putAttrHeader(b: Buffer, off: number, type: number, payloadLen: number): number {
  b.writeUInt16LE(4 + payloadLen, off);
  b.writeUInt16LE(type, off + 2);
  return off + 4;
}

function putAddr(b: Buffer, off: number, type: number, a: Uint8Array): number {
  off = putAttrHeader(b, off, type, a.length);
  b.set(a, off);
  return off + a.length;
}

/**
 * The rtmsg and its attributes (the body of RTM_NEWROUTE/RTM_DELROUTE)
 * at `off`; returns the offset after it. Attributes stay 4-aligned: address
 * payloads are 4 or 16 octets.
 */
export function writeRouteBody(b: Buffer, off: number, r: WireRoute): number {
  const addrLen = r.v6 ? 16 : 4;
  b.fill(0, off, off + RTMSG_LEN);
  b[off] = r.v6 ? AF_INET6 : AF_INET;
  b[off + 1] = r.dstLen;
  b[off + 4] = r.table > 255 ? RT_TABLE_COMPAT : r.table; // the real id then goes in RTA_TABLE
  b[off + 5] = r.protocol;
  b[off + 6] = r.scope;
  b[off + 7] = r.type;
  if (r.onlink && !r.hops?.length) b.writeUInt32LE(RTNH_F_ONLINK, off + 8);
  off += RTMSG_LEN;
  if (r.dstLen > 0) {
    off = putAttrHeader(b, off, RTA_DST, addrLen);
    b.fill(0, off, off + addrLen);
    b.set(r.dst.subarray(0, addrLen), off);
    off += addrLen;
  }
  if (r.hops?.length) {
    const mpStart = off;
    off += 4;
    for (const h of r.hops) {
      const hopStart = off;
      b.fill(0, off, off + 8);
      b[off + 2] = h.onlink ? RTNH_F_ONLINK : 0;
      b.writeInt32LE(h.dev ?? 0, off + 4);
      off = putAddr(b, off + 8, RTA_GATEWAY, h.gateway);
      b.writeUInt16LE(off - hopStart, hopStart); // rtnh_len
    }
    putAttrHeader(b, mpStart, RTA_MULTIPATH, off - mpStart - 4);
  } else {
    if (r.dev !== undefined) {
      off = putAttrHeader(b, off, RTA_OIF, 4);
      off = b.writeInt32LE(r.dev, off);
    }
    if (r.gateway) off = putAddr(b, off, RTA_GATEWAY, r.gateway);
  }
  if (r.table > 255) {
    off = putAttrHeader(b, off, RTA_TABLE, 4);
    off = b.writeUInt32LE(r.table, off);
  }
  return off;
}

/** A whole netlink message (nlmsghdr + body) at `off`; returns the offset after it. */
export function writeRouteMessage(b: Buffer, off: number, r: WireRoute, del: boolean, seq: number, ack: boolean): number {
  const start = off;
  b.fill(0, off, off + NLMSG_HDRLEN);
  b.writeUInt16LE(del ? RTM_DELROUTE : RTM_NEWROUTE, off + 4);
  b.writeUInt16LE(NLM_F_REQUEST | (ack ? NLM_F_ACK : 0) | (del ? 0 : NLM_F_CREATE | NLM_F_REPLACE), off + 6);
  b.writeUInt32LE(seq, off + 8);
  off = writeRouteBody(b, off + NLMSG_HDRLEN, r);
  b.writeUInt32LE(off - start, start);
  return off;
}

/** One route body on its own (single requests through the netlink package). */
export function encodeRouteBody(r: WireRoute): Buffer {
  const b = Buffer.alloc(routeMessageBound(r));
  return b.subarray(0, writeRouteBody(b, 0, r));
}

/** The next hops of an RTA_MULTIPATH payload: gateway octets, device and onlink flag. */
export function decodeMultipath(b: Buffer): { gateway?: Buffer; dev: number; onlink: boolean }[] {
  const out: { gateway?: Buffer; dev: number; onlink: boolean }[] = [];
  let off = 0;
  while (off + 8 <= b.length) {
    const len = b.readUInt16LE(off);
    if (len < 8) break;
    const hop: { gateway?: Buffer; dev: number; onlink: boolean } = { dev: b.readInt32LE(off + 4), onlink: (b[off + 2] & RTNH_F_ONLINK) !== 0 };
    for (let a = off + 8; a + 4 <= off + len; ) {
      const alen = b.readUInt16LE(a);
      if (alen < 4) break;
      if (b.readUInt16LE(a + 2) === RTA_GATEWAY) hop.gateway = b.subarray(a + 4, a + alen);
      a += (alen + 3) & ~3;
    }
    out.push(hop);
    off += (len + 3) & ~3;
  }
  return out;
}
