/**
 * Between wire attributes and the RIB's view: one normalized attribute set
 * per UPDATE (4-octet AS path merged per RFC 6793), and the reverse: packing
 * routes into as few UPDATEs as the message size allows.
 */
import { AS_TRANS, AsSegmentType, AttrFlag, Afi, Safi, familyKey, HEADER_LEN, MAX_EXTENDED_LEN, MAX_MESSAGE_LEN, Origin } from './constants';
import { TooLong, defaultFlags, type AsSegment, type Attr, type CodecOptions, type LargeCommunity } from './attributes';
import { encodeMessage, endOfRibFamily, type UpdateMessage } from './message';
import { nlriLength, type Nlri } from './ip';

export interface UnknownAttr {
  flags: number;
  code: number;
  data: Buffer;
}

/** What the RIB keeps per path. Treat as immutable: many routes share one object. */
export interface RouteAttrs {
  origin: number;
  asPath: AsSegment[];
  nextHop: string;
  /** IPv6 link-local next hop when the peer sent one. */
  nextHopLocal?: string;
  med?: number;
  localPref?: number;
  atomicAggregate?: boolean;
  aggregator?: { asn: number; address: string };
  communities?: number[];
  largeCommunities?: LargeCommunity[];
  originatorId?: string;
  clusterList?: string[];
  unknown?: UnknownAttr[];
}

export interface FamilyChanges {
  family: number;
  announce: Nlri[];
  withdraw: Nlri[];
  attrs?: RouteAttrs;
}

export interface UpdateChanges {
  families: FamilyChanges[];
  /** End-of-RIB for this family (RFC 4724). */
  endOfRib?: number;
}

/** Number of ASes an AS path counts as for RFC 6793 §4.2.3 (a set counts one, confederation segments none). */
export function asPathCount(segs: readonly AsSegment[]): number {
  let n = 0;
  for (const s of segs) n += s.type === AsSegmentType.AS_SEQUENCE ? s.asns.length : s.type === AsSegmentType.AS_SET ? 1 : 0;
  return n;
}

/** Reconstruct the real path from AS_PATH and AS4_PATH (RFC 6793 §4.2.3). */
export function mergeAs4Path(asPath: readonly AsSegment[], as4Path: readonly AsSegment[]): AsSegment[] {
  const n = asPathCount(asPath);
  const m = asPathCount(as4Path);
  if (m > n) return asPath.map((s) => ({ type: s.type, asns: [...s.asns] }));
  let keep = n - m;
  const head: AsSegment[] = [];
  for (const s of asPath) {
    if (keep <= 0) break;
    if (s.type === AsSegmentType.AS_SEQUENCE) {
      const take = s.asns.slice(0, keep);
      head.push({ type: s.type, asns: take });
      keep -= take.length;
    } else if (s.type === AsSegmentType.AS_SET) {
      head.push({ type: s.type, asns: [...s.asns] });
      keep -= 1;
    } else head.push({ type: s.type, asns: [...s.asns] });
  }
  return [...head, ...as4Path.map((s) => ({ type: s.type, asns: [...s.asns] }))];
}

/** Turn a decoded UPDATE into per-family announcements and withdrawals. */
export function interpretUpdate(m: UpdateMessage, o: Pick<CodecOptions, 'as4'>): UpdateChanges {
  const eor = endOfRibFamily(m);
  if (eor) return { families: [], endOfRib: familyKey(eor.afi, eor.safi) };
  const base: Partial<RouteAttrs> = {};
  let asPath: AsSegment[] = [];
  let as4Path: AsSegment[] | undefined;
  let as4Agg: { asn: number; address: string } | undefined;
  let nextHop: string | undefined;
  const unknown: UnknownAttr[] = [];
  const out: FamilyChanges[] = [];
  const fam = (family: number): FamilyChanges => {
    let f = out.find((x) => x.family === family);
    if (!f) out.push((f = { family, announce: [], withdraw: [] }));
    return f;
  };
  let mpReach: Extract<Attr, { kind: 'mp-reach' }> | undefined;
  for (const a of m.attrs) {
    switch (a.kind) {
      case 'origin': base.origin = a.origin; break;
      case 'as-path': asPath = a.segments; break;
      case 'as4-path': as4Path = a.segments; break;
      case 'next-hop': nextHop = a.nextHop; break;
      case 'med': base.med = a.med; break;
      case 'local-pref': base.localPref = a.localPref; break;
      case 'atomic-aggregate': base.atomicAggregate = true; break;
      case 'aggregator': base.aggregator = { asn: a.asn, address: a.address }; break;
      case 'as4-aggregator': as4Agg = { asn: a.asn, address: a.address }; break;
      case 'communities': base.communities = a.communities; break;
      case 'large-communities': base.largeCommunities = a.communities; break;
      case 'originator-id': base.originatorId = a.originatorId; break;
      case 'cluster-list': base.clusterList = a.clusterList; break;
      case 'mp-reach': mpReach = a; break;
      case 'mp-unreach': fam(familyKey(a.afi, a.safi)).withdraw.push(...a.withdrawn); break;
      case 'unknown': unknown.push({ flags: a.flags, code: a.code, data: a.data }); break;
    }
  }
  // RFC 6793 §4.2.3: AS4_PATH/AS4_AGGREGATOR only matter on a 2-octet session.
  if (!o.as4 && as4Path) asPath = mergeAs4Path(asPath, as4Path);
  if (!o.as4 && as4Agg && base.aggregator?.asn === AS_TRANS) base.aggregator = as4Agg;
  const attrs = { origin: Origin.INCOMPLETE, ...base, asPath, nextHop: '' } as RouteAttrs;
  if (unknown.length) attrs.unknown = unknown;
  const withdrawAll = m.action === 'treat-as-withdraw';
  if (m.withdrawn.length) fam(familyKey(Afi.IPV4, Safi.UNICAST)).withdraw.push(...m.withdrawn);
  if (m.nlri.length) {
    const f = fam(familyKey(Afi.IPV4, Safi.UNICAST));
    if (withdrawAll) f.withdraw.push(...m.nlri);
    else {
      f.announce.push(...m.nlri);
      f.attrs = { ...attrs, nextHop: nextHop ?? '' };
    }
  }
  if (mpReach && mpReach.nlri.length) {
    const f = fam(familyKey(mpReach.afi, mpReach.safi));
    if (withdrawAll) f.withdraw.push(...mpReach.nlri);
    else {
      f.announce.push(...mpReach.nlri);
      f.attrs = { ...attrs, nextHop: mpReach.nextHops[0] };
      if (mpReach.nextHops[1]) f.attrs.nextHopLocal = mpReach.nextHops[1];
    }
  }
  return { families: out };
}

const flagged = (kind: Attr['kind']) => defaultFlags(kind);

/** Path attributes for the wire, in type order with MP_REACH first (RFC 7606 §5.1). */
function wireAttrs(family: number, a: RouteAttrs, nlri: Nlri[], o: CodecOptions): Attr[] {
  const out: Attr[] = [];
  const v4 = family === familyKey(Afi.IPV4, Safi.UNICAST);
  if (!v4) {
    out.push({ kind: 'mp-reach', flags: flagged('mp-reach'), afi: family >> 8, safi: family & 0xff, nextHops: a.nextHopLocal ? [a.nextHop, a.nextHopLocal] : [a.nextHop], reserved: 0, nlri });
  }
  out.push({ kind: 'origin', flags: flagged('origin'), origin: a.origin });
  const needsAs4 = !o.as4 && a.asPath.some((s) => s.asns.some((x) => x > 0xffff));
  const asPath = o.as4 ? a.asPath : a.asPath.map((s) => ({ type: s.type, asns: s.asns.map((x) => (x > 0xffff ? AS_TRANS : x)) }));
  out.push({ kind: 'as-path', flags: flagged('as-path'), segments: asPath });
  if (v4) out.push({ kind: 'next-hop', flags: flagged('next-hop'), nextHop: a.nextHop });
  if (a.med !== undefined) out.push({ kind: 'med', flags: flagged('med'), med: a.med });
  if (a.localPref !== undefined) out.push({ kind: 'local-pref', flags: flagged('local-pref'), localPref: a.localPref });
  if (a.atomicAggregate) out.push({ kind: 'atomic-aggregate', flags: flagged('atomic-aggregate') });
  if (a.aggregator) {
    const big = !o.as4 && a.aggregator.asn > 0xffff;
    out.push({ kind: 'aggregator', flags: flagged('aggregator'), asn: big ? AS_TRANS : a.aggregator.asn, address: a.aggregator.address });
  }
  if (a.communities?.length) out.push({ kind: 'communities', flags: flagged('communities'), communities: a.communities });
  if (a.originatorId) out.push({ kind: 'originator-id', flags: flagged('originator-id'), originatorId: a.originatorId });
  if (a.clusterList?.length) out.push({ kind: 'cluster-list', flags: flagged('cluster-list'), clusterList: a.clusterList });
  if (needsAs4) out.push({ kind: 'as4-path', flags: flagged('as4-path'), segments: a.asPath });
  if (!o.as4 && a.aggregator && a.aggregator.asn > 0xffff) out.push({ kind: 'as4-aggregator', flags: flagged('as4-aggregator'), asn: a.aggregator.asn, address: a.aggregator.address });
  if (a.largeCommunities?.length) out.push({ kind: 'large-communities', flags: flagged('large-communities'), communities: a.largeCommunities });
  // Unknown optional transitive attributes travel on with Partial set (RFC 4271 §5);
  // unknown non-transitive ones stop here.
  for (const u of a.unknown ?? []) {
    if (u.flags & AttrFlag.TRANSITIVE) out.push({ kind: 'unknown', flags: (u.flags | AttrFlag.PARTIAL) & ~AttrFlag.EXTENDED_LENGTH, code: u.code, data: u.data });
  }
  return out;
}

function maxLen(o: CodecOptions): number {
  return o.extendedMessage ? MAX_EXTENDED_LEN : MAX_MESSAGE_LEN;
}

/** Split NLRI into batches whose encoded size fits `room` octets. */
function packNlri(nlri: readonly Nlri[], addPath: boolean, room: number): Nlri[][] {
  const out: Nlri[][] = [];
  let batch: Nlri[] = [];
  let used = 0;
  for (const n of nlri) {
    const l = nlriLength(n, addPath);
    if (used + l > room && batch.length) {
      out.push(batch);
      batch = [];
      used = 0;
    }
    batch.push(n);
    used += l;
  }
  if (batch.length) out.push(batch);
  return out;
}

/** Octets left for NLRI in an UPDATE carrying `attrs` (negative or TooLong when they alone overflow). */
function nlriRoom(family: number, attrs: RouteAttrs, o: CodecOptions): number {
  const v4 = family === familyKey(Afi.IPV4, Safi.UNICAST);
  const fixed = encodeMessage({ type: 2, withdrawn: [], attrs: wireAttrs(family, attrs, [], o), nlri: [] }, o).length;
  // MP_REACH may switch to an extended length header as NLRI grow: reserve one octet.
  return maxLen(o) - fixed - (v4 ? 0 : 1);
}

/** The longest one prefix of the family can be on the wire. */
function longestNlri(family: number, o: CodecOptions): number {
  return (o.addPath?.has(family) ? 4 : 0) + 1 + (family === familyKey(Afi.IPV4, Safi.UNICAST) ? 4 : 16);
}

/**
 * `attrs` as they can go to a peer with options `o`: as they are, without the
 * attributes RFC 7606 lets a speaker discard when that is what makes them fit
 * (RFC 8654 §4), or undefined when even then no UPDATE can carry one route.
 */
export function fitAttrs(family: number, attrs: RouteAttrs, o: CodecOptions): RouteAttrs | undefined {
  const fits = (a: RouteAttrs) => {
    try {
      return nlriRoom(family, a, o) >= longestNlri(family, o);
    } catch (e) {
      if (e instanceof TooLong) return false;
      throw e;
    }
  };
  if (fits(attrs)) return attrs;
  if (!attrs.aggregator && !attrs.atomicAggregate) return undefined;
  const reduced = { ...attrs };
  delete reduced.aggregator;
  delete reduced.atomicAggregate;
  return fits(reduced) ? reduced : undefined;
}

/** UPDATEs announcing `nlri` with one attribute set, packed up to the message size (pass attributes through fitAttrs first). */
export function buildAnnouncements(family: number, attrs: RouteAttrs, nlri: readonly Nlri[], o: CodecOptions): Buffer[] {
  const v4 = family === familyKey(Afi.IPV4, Safi.UNICAST);
  const room = nlriRoom(family, attrs, o);
  if (room < longestNlri(family, o)) throw new TooLong(`attributes leave ${room} octets for NLRI`);
  return packNlri(nlri, o.addPath?.has(family) ?? false, room).map((batch) =>
    encodeMessage(v4 ? { type: 2, withdrawn: [], attrs: wireAttrs(family, attrs, [], o), nlri: batch } : { type: 2, withdrawn: [], attrs: wireAttrs(family, attrs, batch, o), nlri: [] }, o),
  );
}

/** UPDATEs withdrawing `nlri`, packed up to the message size. */
export function buildWithdrawals(family: number, nlri: readonly Nlri[], o: CodecOptions): Buffer[] {
  const v4 = family === familyKey(Afi.IPV4, Safi.UNICAST);
  const room = maxLen(o) - HEADER_LEN - 4 - (v4 ? 0 : 7);
  return packNlri(nlri, o.addPath?.has(family) ?? false, room).map((batch) =>
    encodeMessage(
      v4
        ? { type: 2, withdrawn: batch, attrs: [], nlri: [] }
        : { type: 2, withdrawn: [], nlri: [], attrs: [{ kind: 'mp-unreach', flags: flagged('mp-unreach'), afi: family >> 8, safi: family & 0xff, withdrawn: batch }] },
      o,
    ),
  );
}
