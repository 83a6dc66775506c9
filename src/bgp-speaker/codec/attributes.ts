/**
 * Path attributes as table rows (one row per type code): flags the RFCs
 * require, how to decode and encode the value, and what RFC 7606 says to do
 * when the value is malformed. A new attribute is a new row.
 */
import { AttrFlag, AttrType, AsSegmentType, NotifyCode, UpdateSubcode, Afi, Safi, familyKey } from './constants';
import { BgpProtocolError } from './errors';
import { decodeNlri, encodeNlri, v4ToString, v6ToString, addrToBytes, type Nlri } from './ip';

export interface CodecOptions {
  /** 4-octet AS numbers negotiated (RFC 6793). */
  as4: boolean;
  /** Families (familyKey) whose NLRI carry ADD-PATH identifiers in this direction (RFC 7911). */
  addPath?: ReadonlySet<number>;
  /** Extended messages negotiated (RFC 8654): up to 65535 octets. */
  extendedMessage?: boolean;
  /** Reading from an external peer: RFC 7606 §7.2, §7.5, §7.9 and §7.10 differ for them. */
  ebgp?: boolean;
}

export interface AsSegment {
  type: number;
  asns: number[];
}
export type LargeCommunity = [number, number, number];

interface Base {
  flags: number;
}
export type Attr =
  | (Base & { kind: 'origin'; origin: number })
  | (Base & { kind: 'as-path'; segments: AsSegment[] })
  | (Base & { kind: 'as4-path'; segments: AsSegment[] })
  | (Base & { kind: 'next-hop'; nextHop: string })
  | (Base & { kind: 'med'; med: number })
  | (Base & { kind: 'local-pref'; localPref: number })
  | (Base & { kind: 'atomic-aggregate' })
  | (Base & { kind: 'aggregator'; asn: number; address: string })
  | (Base & { kind: 'as4-aggregator'; asn: number; address: string })
  | (Base & { kind: 'communities'; communities: number[] })
  | (Base & { kind: 'large-communities'; communities: LargeCommunity[] })
  | (Base & { kind: 'originator-id'; originatorId: string })
  | (Base & { kind: 'cluster-list'; clusterList: string[] })
  | (Base & { kind: 'mp-reach'; afi: number; safi: number; nextHops: string[]; reserved: number; nlri: Nlri[] })
  | (Base & { kind: 'mp-unreach'; afi: number; safi: number; withdrawn: Nlri[] })
  | (Base & { kind: 'unknown'; code: number; data: Buffer });

export type AttrKind = Attr['kind'];

/** RFC 7606 outcomes, ordered so that the worst one wins. */
export type ErrorAction = 'none' | 'attribute-discard' | 'treat-as-withdraw' | 'session-reset';
export const ACTION_RANK: Record<ErrorAction, number> = { none: 0, 'attribute-discard': 1, 'treat-as-withdraw': 2, 'session-reset': 3 };

/** A malformed attribute value; the row says which action applies. */
export class MalformedAttribute extends Error {
  constructor(
    readonly subcode: number,
    message: string,
  ) {
    super(message);
  }
}

interface Row {
  code: number;
  kind: AttrKind;
  /** Required optional/transitive bits (Partial and Extended Length are not checked). */
  flags: number;
  /** RFC 7606 action for a malformed value (§7.x per attribute). */
  onError: Exclude<ErrorAction, 'none'>;
  decode(b: Buffer, s: number, e: number, o: CodecOptions): Attr;
  encode(a: Attr, o: CodecOptions): Buffer;
}

const WK = AttrFlag.TRANSITIVE;
const OPT_T = AttrFlag.OPTIONAL | AttrFlag.TRANSITIVE;
const OPT_NT = AttrFlag.OPTIONAL;

function bad(subcode: number, msg: string): MalformedAttribute {
  return new MalformedAttribute(subcode, msg);
}
function needLen(s: number, e: number, n: number, what: string): void {
  if (e - s !== n) throw bad(UpdateSubcode.ATTRIBUTE_LENGTH_ERROR, `${what} length ${e - s}, want ${n}`);
}
function u32(v: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(v >>> 0, 0);
  return b;
}

function decodeSegments(b: Buffer, s: number, e: number, asnSize: 2 | 4, subcode: number): AsSegment[] {
  const segs: AsSegment[] = [];
  let off = s;
  while (off < e) {
    if (off + 2 > e) throw bad(subcode, 'AS path segment header overruns');
    const type = b[off];
    const count = b[off + 1];
    off += 2;
    if (type < 1 || type > 4) throw bad(subcode, `bad AS path segment type ${type}`);
    if (count === 0) throw bad(subcode, 'empty AS path segment');
    if (off + count * asnSize > e) throw bad(subcode, 'AS path segment overruns');
    const asns: number[] = new Array(count);
    for (let i = 0; i < count; i++) asns[i] = asnSize === 4 ? b.readUInt32BE(off + 4 * i) : b.readUInt16BE(off + 2 * i);
    off += count * asnSize;
    segs.push({ type, asns });
  }
  return segs;
}

/** A segment holds at most 255 ASes (one count octet): longer ones go out as consecutive segments of the same type. */
const MAX_SEGMENT = 255;

function encodeSegments(segs: readonly AsSegment[], asnSize: 2 | 4): Buffer {
  let size = 0;
  for (const sg of segs) size += 2 * Math.ceil(sg.asns.length / MAX_SEGMENT) + sg.asns.length * asnSize;
  const b = Buffer.alloc(size);
  let off = 0;
  for (const sg of segs) {
    for (let i = 0; i < sg.asns.length; i += MAX_SEGMENT) {
      const n = Math.min(MAX_SEGMENT, sg.asns.length - i);
      b[off++] = sg.type;
      b[off++] = n;
      for (let j = i; j < i + n; j++) off = asnSize === 4 ? b.writeUInt32BE(sg.asns[j] >>> 0, off) : b.writeUInt16BE(sg.asns[j] & 0xffff, off);
    }
  }
  return b;
}

function decodeMpNextHops(b: Buffer, s: number, len: number, afi: number): string[] {
  if (afi === Afi.IPV4 && len === 4) return [v4ToString(b, s)];
  if (afi === Afi.IPV6 && len === 16) return [v6ToString(b, s)];
  if (afi === Afi.IPV6 && len === 32) return [v6ToString(b, s), v6ToString(b, s + 16)]; // global + link-local
  if (afi === Afi.IPV4 && len === 16) return [v6ToString(b, s)]; // RFC 8950 IPv4 over IPv6 next hop
  throw new BgpProtocolError(NotifyCode.UPDATE_MESSAGE_ERROR, UpdateSubcode.OPTIONAL_ATTRIBUTE_ERROR, `MP_REACH next hop length ${len} for AFI ${afi}`);
}

const supportedFamily = (afi: number, safi: number): boolean => (afi === Afi.IPV4 || afi === Afi.IPV6) && safi === Safi.UNICAST;

const ROWS: Row[] = [
  {
    code: AttrType.ORIGIN,
    kind: 'origin',
    flags: WK,
    onError: 'treat-as-withdraw', // RFC 7606 §7.1
    decode(b, s, e) {
      needLen(s, e, 1, 'ORIGIN');
      if (b[s] > 2) throw bad(UpdateSubcode.INVALID_ORIGIN_ATTRIBUTE, `ORIGIN value ${b[s]}`);
      return { kind: 'origin', flags: 0, origin: b[s] };
    },
    encode: (a) => Buffer.from([(a as { origin: number }).origin]),
  },
  {
    code: AttrType.AS_PATH,
    kind: 'as-path',
    flags: WK,
    onError: 'treat-as-withdraw', // §7.2
    decode: (b, s, e, o) => ({ kind: 'as-path', flags: 0, segments: decodeSegments(b, s, e, o.as4 ? 4 : 2, UpdateSubcode.MALFORMED_AS_PATH) }),
    encode: (a, o) => encodeSegments((a as { segments: AsSegment[] }).segments, o.as4 ? 4 : 2),
  },
  {
    code: AttrType.NEXT_HOP,
    kind: 'next-hop',
    flags: WK,
    onError: 'treat-as-withdraw', // §7.3
    decode(b, s, e) {
      needLen(s, e, 4, 'NEXT_HOP');
      return { kind: 'next-hop', flags: 0, nextHop: v4ToString(b, s) };
    },
    encode: (a) => addrToBytes((a as { nextHop: string }).nextHop),
  },
  {
    code: AttrType.MULTI_EXIT_DISC,
    kind: 'med',
    flags: OPT_NT,
    onError: 'treat-as-withdraw', // §7.4
    decode(b, s, e) {
      needLen(s, e, 4, 'MULTI_EXIT_DISC');
      return { kind: 'med', flags: 0, med: b.readUInt32BE(s) };
    },
    encode: (a) => u32((a as { med: number }).med),
  },
  {
    code: AttrType.LOCAL_PREF,
    kind: 'local-pref',
    flags: WK,
    onError: 'treat-as-withdraw', // §7.5
    decode(b, s, e) {
      needLen(s, e, 4, 'LOCAL_PREF');
      return { kind: 'local-pref', flags: 0, localPref: b.readUInt32BE(s) };
    },
    encode: (a) => u32((a as { localPref: number }).localPref),
  },
  {
    code: AttrType.ATOMIC_AGGREGATE,
    kind: 'atomic-aggregate',
    flags: WK,
    onError: 'attribute-discard', // §7.6
    decode(_b, s, e) {
      needLen(s, e, 0, 'ATOMIC_AGGREGATE');
      return { kind: 'atomic-aggregate', flags: 0 };
    },
    encode: () => Buffer.alloc(0),
  },
  {
    code: AttrType.AGGREGATOR,
    kind: 'aggregator',
    flags: OPT_T,
    onError: 'attribute-discard', // §7.7
    decode(b, s, e, o) {
      needLen(s, e, o.as4 ? 8 : 6, 'AGGREGATOR');
      return o.as4
        ? { kind: 'aggregator', flags: 0, asn: b.readUInt32BE(s), address: v4ToString(b, s + 4) }
        : { kind: 'aggregator', flags: 0, asn: b.readUInt16BE(s), address: v4ToString(b, s + 2) };
    },
    encode(a, o) {
      const x = a as { asn: number; address: string };
      const b = Buffer.alloc(o.as4 ? 8 : 6);
      const off = o.as4 ? b.writeUInt32BE(x.asn >>> 0, 0) : b.writeUInt16BE(x.asn & 0xffff, 0);
      addrToBytes(x.address).copy(b, off);
      return b;
    },
  },
  {
    code: AttrType.COMMUNITIES,
    kind: 'communities',
    flags: OPT_T,
    onError: 'treat-as-withdraw', // §7.8
    decode(b, s, e) {
      if (e - s === 0 || (e - s) % 4 !== 0) throw bad(UpdateSubcode.OPTIONAL_ATTRIBUTE_ERROR, `COMMUNITIES length ${e - s}`);
      const c: number[] = [];
      for (let off = s; off < e; off += 4) c.push(b.readUInt32BE(off));
      return { kind: 'communities', flags: 0, communities: c };
    },
    encode: (a) => Buffer.concat((a as { communities: number[] }).communities.map(u32)),
  },
  {
    code: AttrType.ORIGINATOR_ID,
    kind: 'originator-id',
    flags: OPT_NT,
    onError: 'treat-as-withdraw', // §7.9
    decode(b, s, e) {
      needLen(s, e, 4, 'ORIGINATOR_ID');
      return { kind: 'originator-id', flags: 0, originatorId: v4ToString(b, s) };
    },
    encode: (a) => addrToBytes((a as { originatorId: string }).originatorId),
  },
  {
    code: AttrType.CLUSTER_LIST,
    kind: 'cluster-list',
    flags: OPT_NT,
    onError: 'treat-as-withdraw', // §7.10
    decode(b, s, e) {
      if (e - s === 0 || (e - s) % 4 !== 0) throw bad(UpdateSubcode.OPTIONAL_ATTRIBUTE_ERROR, `CLUSTER_LIST length ${e - s}`);
      const ids: string[] = [];
      for (let off = s; off < e; off += 4) ids.push(v4ToString(b, off));
      return { kind: 'cluster-list', flags: 0, clusterList: ids };
    },
    encode: (a) => Buffer.concat((a as { clusterList: string[] }).clusterList.map(addrToBytes)),
  },
  {
    code: AttrType.MP_REACH_NLRI,
    kind: 'mp-reach',
    flags: OPT_NT,
    onError: 'session-reset', // §7.11: the NLRI cannot be trusted, so no withdraw is possible
    decode(b, s, e, o) {
      if (e - s < 5) throw bad(UpdateSubcode.OPTIONAL_ATTRIBUTE_ERROR, 'MP_REACH_NLRI too short');
      const afi = b.readUInt16BE(s);
      const safi = b[s + 2];
      const nhLen = b[s + 3];
      if (s + 4 + nhLen + 1 > e) throw bad(UpdateSubcode.OPTIONAL_ATTRIBUTE_ERROR, 'MP_REACH_NLRI next hop overruns');
      if (!supportedFamily(afi, safi)) return { kind: 'unknown', flags: 0, code: AttrType.MP_REACH_NLRI, data: Buffer.from(b.subarray(s, e)) };
      const nextHops = decodeMpNextHops(b, s + 4, nhLen, afi);
      const reserved = b[s + 4 + nhLen];
      const nlri = decodeNlri(b, s + 5 + nhLen, e, afi === Afi.IPV6, o.addPath?.has(familyKey(afi, safi)) ?? false);
      return { kind: 'mp-reach', flags: 0, afi, safi, nextHops, reserved, nlri };
    },
    encode(a, o) {
      const x = a as Extract<Attr, { kind: 'mp-reach' }>;
      const nh = Buffer.concat(x.nextHops.map(addrToBytes));
      const head = Buffer.alloc(4);
      head.writeUInt16BE(x.afi, 0);
      head[2] = x.safi;
      head[3] = nh.length;
      return Buffer.concat([head, nh, Buffer.from([x.reserved]), encodeNlri(x.nlri, o.addPath?.has(familyKey(x.afi, x.safi)) ?? false)]);
    },
  },
  {
    code: AttrType.MP_UNREACH_NLRI,
    kind: 'mp-unreach',
    flags: OPT_NT,
    onError: 'session-reset', // §7.11
    decode(b, s, e, o) {
      if (e - s < 3) throw bad(UpdateSubcode.OPTIONAL_ATTRIBUTE_ERROR, 'MP_UNREACH_NLRI too short');
      const afi = b.readUInt16BE(s);
      const safi = b[s + 2];
      if (!supportedFamily(afi, safi)) return { kind: 'unknown', flags: 0, code: AttrType.MP_UNREACH_NLRI, data: Buffer.from(b.subarray(s, e)) };
      const withdrawn = decodeNlri(b, s + 3, e, afi === Afi.IPV6, o.addPath?.has(familyKey(afi, safi)) ?? false);
      return { kind: 'mp-unreach', flags: 0, afi, safi, withdrawn };
    },
    encode(a, o) {
      const x = a as Extract<Attr, { kind: 'mp-unreach' }>;
      const head = Buffer.alloc(3);
      head.writeUInt16BE(x.afi, 0);
      head[2] = x.safi;
      return Buffer.concat([head, encodeNlri(x.withdrawn, o.addPath?.has(familyKey(x.afi, x.safi)) ?? false)]);
    },
  },
  {
    code: AttrType.AS4_PATH,
    kind: 'as4-path',
    flags: OPT_T,
    onError: 'attribute-discard', // RFC 6793 §6, RFC 7606 §7.2
    decode: (b, s, e) => ({ kind: 'as4-path', flags: 0, segments: decodeSegments(b, s, e, 4, UpdateSubcode.MALFORMED_AS_PATH) }),
    encode: (a) => encodeSegments((a as { segments: AsSegment[] }).segments, 4),
  },
  {
    code: AttrType.AS4_AGGREGATOR,
    kind: 'as4-aggregator',
    flags: OPT_T,
    onError: 'attribute-discard', // RFC 6793 §6
    decode(b, s, e) {
      needLen(s, e, 8, 'AS4_AGGREGATOR');
      return { kind: 'as4-aggregator', flags: 0, asn: b.readUInt32BE(s), address: v4ToString(b, s + 4) };
    },
    encode(a) {
      const x = a as { asn: number; address: string };
      return Buffer.concat([u32(x.asn), addrToBytes(x.address)]);
    },
  },
  {
    code: AttrType.LARGE_COMMUNITY,
    kind: 'large-communities',
    flags: OPT_T,
    onError: 'treat-as-withdraw', // RFC 8092 §5
    decode(b, s, e) {
      if (e - s === 0 || (e - s) % 12 !== 0) throw bad(UpdateSubcode.OPTIONAL_ATTRIBUTE_ERROR, `LARGE_COMMUNITY length ${e - s}`);
      const c: LargeCommunity[] = [];
      for (let off = s; off < e; off += 12) c.push([b.readUInt32BE(off), b.readUInt32BE(off + 4), b.readUInt32BE(off + 8)]);
      return { kind: 'large-communities', flags: 0, communities: c };
    },
    encode: (a) => Buffer.concat((a as { communities: LargeCommunity[] }).communities.flatMap((c) => c.map(u32))),
  },
];

const BY_CODE = new Map<number, Row>(ROWS.map((r) => [r.code, r]));
const BY_KIND = new Map<AttrKind, Row>(ROWS.map((r) => [r.kind, r]));

export function attrRow(code: number): Row | undefined {
  return BY_CODE.get(code);
}

/** Type code of a decoded attribute. */
export function attrCode(a: Attr): number {
  return a.kind === 'unknown' ? a.code : BY_KIND.get(a.kind)!.code;
}

/** The flags a freshly built attribute of this kind carries. */
export function defaultFlags(kind: AttrKind): number {
  return BY_KIND.get(kind)?.flags ?? OPT_T;
}

/** An attribute or message that does not fit the wire's length fields; the caller decides what not to send. */
export class TooLong extends Error {}

export function encodeAttr(a: Attr, o: CodecOptions): Buffer {
  const value = a.kind === 'unknown' ? a.data : BY_KIND.get(a.kind)!.encode(a, o);
  if (value.length > 0xffff) throw new TooLong(`attribute ${attrCode(a)} of ${value.length} octets`);
  // Keep the sender's Extended Length choice; a value too long for one octet forces it.
  const ext = (a.flags & AttrFlag.EXTENDED_LENGTH) !== 0 || value.length > 255;
  const head = Buffer.alloc(ext ? 4 : 3);
  head[0] = ext ? a.flags | AttrFlag.EXTENDED_LENGTH : a.flags;
  head[1] = attrCode(a);
  if (ext) head.writeUInt16BE(value.length, 2);
  else head[2] = value.length;
  return Buffer.concat([head, value]);
}

export const SEGMENT = AsSegmentType;
