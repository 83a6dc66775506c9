/**
 * Whole messages: header (RFC 4271 §4.1), UPDATE with RFC 7606 revised error
 * handling, NOTIFICATION, KEEPALIVE, ROUTE-REFRESH (RFC 2918/7313).
 * Pure: negotiated facts come in as CodecOptions; nothing is remembered.
 */
import { AttrFlag, AttrType, AsSegmentType, HEADER_LEN, HeaderSubcode, MAX_EXTENDED_LEN, MAX_MESSAGE_LEN, MsgType, NotifyCode, UpdateSubcode, IPV4_UNICAST, Afi } from './constants';
import { BgpProtocolError } from './errors';
import { decodeNlri, encodeNlri, type Nlri } from './ip';
import { ACTION_RANK, MalformedAttribute, TooLong, attrRow, encodeAttr, type Attr, type CodecOptions, type ErrorAction } from './attributes';
import { decodeOpen, encodeOpenBody, type OpenMessage } from './open';

export interface AttrProblem {
  code: number;
  action: ErrorAction;
  subcode: number;
  reason: string;
}

export interface UpdateMessage {
  type: 2;
  withdrawn: Nlri[];
  attrs: Attr[];
  nlri: Nlri[];
  /** RFC 7606 outcome of decoding; 'none' for a clean message (session-reset errors are thrown). */
  action?: ErrorAction;
  problems?: AttrProblem[];
}
export interface NotificationMessage {
  type: 3;
  code: number;
  subcode: number;
  data: Buffer;
}
export interface KeepaliveMessage {
  type: 4;
}
export interface RouteRefreshMessage {
  type: 5;
  afi: number;
  /** RFC 7313: 0 normal request, 1 BoRR, 2 EoRR. */
  subtype: number;
  safi: number;
}
export type Message = OpenMessage | UpdateMessage | NotificationMessage | KeepaliveMessage | RouteRefreshMessage;
export type { OpenMessage };

function headerError(subcode: number, msg: string, data?: Buffer): BgpProtocolError {
  return new BgpProtocolError(NotifyCode.MESSAGE_HEADER_ERROR, subcode, msg, data);
}
function u16(v: number): Buffer {
  const b = Buffer.alloc(2);
  b.writeUInt16BE(v & 0xffff, 0);
  return b;
}

/**
 * Length of the message at `off` if it is complete in `b`, else 0.
 * Validates marker and length (§6.1) so that a stream reader can trust it.
 */
export function frameLength(b: Buffer, off: number, o: Pick<CodecOptions, 'extendedMessage'> = {}): number {
  if (b.length - off < HEADER_LEN) return 0;
  for (let i = 0; i < 16; i++) if (b[off + i] !== 0xff) throw headerError(HeaderSubcode.CONNECTION_NOT_SYNCHRONIZED, 'marker is not all ones');
  const len = b.readUInt16BE(off + 16);
  const max = o.extendedMessage ? MAX_EXTENDED_LEN : MAX_MESSAGE_LEN;
  if (len < HEADER_LEN || len > max) throw headerError(HeaderSubcode.BAD_MESSAGE_LENGTH, `message length ${len}`, u16(len));
  return b.length - off >= len ? len : 0;
}

const MIN_LEN: Record<number, number> = {
  [MsgType.OPEN]: 29,
  [MsgType.UPDATE]: 23,
  [MsgType.NOTIFICATION]: 21,
  [MsgType.KEEPALIVE]: 19,
  [MsgType.ROUTE_REFRESH]: 23,
};

/** Decode exactly one message; `b` may be a slice of a larger (pooled) buffer. */
export function decodeMessage(b: Buffer, o: CodecOptions): Message {
  const len = frameLength(b, 0, o);
  if (len !== b.length) throw headerError(HeaderSubcode.BAD_MESSAGE_LENGTH, `length field ${b.length >= HEADER_LEN ? b.readUInt16BE(16) : 0} but ${b.length} octets`, u16(b.length));
  const type = b[18];
  const min = MIN_LEN[type];
  if (min === undefined) throw headerError(HeaderSubcode.BAD_MESSAGE_TYPE, `message type ${type}`, Buffer.from([type]));
  if (len < min || (type === MsgType.KEEPALIVE && len !== 19)) throw headerError(HeaderSubcode.BAD_MESSAGE_LENGTH, `type ${type} with length ${len}`, u16(len));
  switch (type) {
    case MsgType.OPEN:
      return decodeOpen(b, HEADER_LEN, len);
    case MsgType.UPDATE:
      return decodeUpdate(b, HEADER_LEN, len, o);
    case MsgType.NOTIFICATION:
      return { type: 3, code: b[19], subcode: b[20], data: Buffer.from(b.subarray(21, len)) };
    case MsgType.KEEPALIVE:
      return { type: 4 };
    default:
      if (len !== 23) throw new BgpProtocolError(NotifyCode.ROUTE_REFRESH_MESSAGE_ERROR, 1, `ROUTE-REFRESH length ${len}`, Buffer.from(b.subarray(0, len)));
      return { type: 5, afi: b.readUInt16BE(19), subtype: b[21], safi: b[22] };
  }
}

const REQUIRED_FLAGS_MASK = AttrFlag.OPTIONAL | AttrFlag.TRANSITIVE;
const EBGP_DISCARD = new Set<number>([AttrType.LOCAL_PREF, AttrType.ORIGINATOR_ID, AttrType.CLUSTER_LIST]);

function decodeUpdate(b: Buffer, s: number, e: number, o: CodecOptions): UpdateMessage {
  const malformedList = (msg: string) => new BgpProtocolError(NotifyCode.UPDATE_MESSAGE_ERROR, UpdateSubcode.MALFORMED_ATTRIBUTE_LIST, msg);
  const wLen = b.readUInt16BE(s);
  if (s + 2 + wLen + 2 > e) throw malformedList('withdrawn routes length overruns the message');
  const wEnd = s + 2 + wLen;
  const aLen = b.readUInt16BE(wEnd);
  const aStart = wEnd + 2;
  const aEnd = aStart + aLen;
  if (aEnd > e) throw malformedList('total path attribute length overruns the message');
  const v4AddPath = o.addPath?.has(IPV4_UNICAST) ?? false;
  const withdrawn = decodeNlri(b, s + 2, wEnd, false, v4AddPath);
  const nlri = decodeNlri(b, aEnd, e, false, v4AddPath);

  const attrs: Attr[] = [];
  const problems: AttrProblem[] = [];
  let action: ErrorAction = 'none';
  const note = (p: AttrProblem) => {
    problems.push(p);
    if (ACTION_RANK[p.action] > ACTION_RANK[action]) action = p.action;
  };
  const seen = new Set<number>();
  let sawMp = false;
  let off = aStart;
  while (off < aEnd) {
    // An attribute header or value that overruns the attribute field (§4 of RFC 7606):
    // the NLRI field is still where the totals say, so withdraw what it names,
    // unless an MP attribute was already seen (its NLRI could be wrong too).
    const flags = b[off];
    const hdr = flags & AttrFlag.EXTENDED_LENGTH ? 4 : 3;
    if (off + hdr > aEnd) {
      if (sawMp) throw malformedList('attribute header overruns the attribute field');
      note({ code: off + 1 < aEnd ? b[off + 1] : 0, action: 'treat-as-withdraw', subcode: UpdateSubcode.ATTRIBUTE_LENGTH_ERROR, reason: 'attribute header overruns' });
      break;
    }
    const code = b[off + 1];
    const vLen = hdr === 4 ? b.readUInt16BE(off + 2) : b[off + 2];
    const vs = off + hdr;
    const ve = vs + vLen;
    if (ve > aEnd) {
      if (sawMp || code === AttrType.MP_REACH_NLRI || code === AttrType.MP_UNREACH_NLRI) throw malformedList(`attribute ${code} overruns the attribute field`);
      note({ code, action: 'treat-as-withdraw', subcode: UpdateSubcode.ATTRIBUTE_LENGTH_ERROR, reason: `attribute ${code} overruns` });
      break;
    }
    off = ve;
    const row = attrRow(code);
    if (seen.has(code)) {
      // RFC 7606 §3g: duplicates are discarded, except MP_REACH/MP_UNREACH which reset.
      if (code === AttrType.MP_REACH_NLRI || code === AttrType.MP_UNREACH_NLRI) throw malformedList(`duplicate attribute ${code}`);
      note({ code, action: 'attribute-discard', subcode: UpdateSubcode.MALFORMED_ATTRIBUTE_LIST, reason: `duplicate attribute ${code}` });
      continue;
    }
    seen.add(code);
    if (!row) {
      if (!(flags & AttrFlag.OPTIONAL)) {
        throw new BgpProtocolError(NotifyCode.UPDATE_MESSAGE_ERROR, UpdateSubcode.UNRECOGNIZED_WELL_KNOWN_ATTRIBUTE, `unrecognized well-known attribute ${code}`, Buffer.from(b.subarray(vs - hdr, ve)));
      }
      attrs.push({ kind: 'unknown', flags, code, data: Buffer.from(b.subarray(vs, ve)) });
      continue;
    }
    if (code === AttrType.MP_REACH_NLRI || code === AttrType.MP_UNREACH_NLRI) sawMp = true;
    // RFC 7606 §7.5, §7.9, §7.10: from an external peer these are not used at all, so a bad one is only discarded.
    const onError = o.ebgp && EBGP_DISCARD.has(code) ? 'attribute-discard' : row.onError;
    if ((flags & REQUIRED_FLAGS_MASK) !== row.flags) {
      // RFC 7606 §3c: conflicting Optional/Transitive bits make the attribute malformed.
      if (onError === 'session-reset')
        throw new BgpProtocolError(NotifyCode.UPDATE_MESSAGE_ERROR, UpdateSubcode.ATTRIBUTE_FLAGS_ERROR, `flags 0x${flags.toString(16)} on attribute ${code}`, Buffer.from(b.subarray(vs - hdr, ve)));
      note({ code, action: onError === 'attribute-discard' ? 'attribute-discard' : 'treat-as-withdraw', subcode: UpdateSubcode.ATTRIBUTE_FLAGS_ERROR, reason: `flags 0x${flags.toString(16)}` });
      continue;
    }
    try {
      const a = row.decode(b, vs, ve, o);
      a.flags = flags;
      if (o.ebgp && a.kind === 'as-path' && a.segments.some((sg) => sg.type === AsSegmentType.AS_CONFED_SEQUENCE || sg.type === AsSegmentType.AS_CONFED_SET)) {
        // RFC 5065 §5, RFC 7606 §7.2: confederation segments from outside any confederation of ours.
        note({ code, action: 'treat-as-withdraw', subcode: UpdateSubcode.MALFORMED_AS_PATH, reason: 'confederation segment from an external peer' });
        continue;
      }
      attrs.push(a);
    } catch (err) {
      if (err instanceof MalformedAttribute) {
        if (onError === 'session-reset') throw new BgpProtocolError(NotifyCode.UPDATE_MESSAGE_ERROR, err.subcode, err.message, Buffer.from(b.subarray(vs - hdr, ve)));
        note({ code, action: onError, subcode: err.subcode, reason: err.message });
        continue;
      }
      throw err;
    }
  }

  // RFC 7606 §3d: a missing well-known mandatory attribute means treat-as-withdraw.
  const hasMpReach = attrs.some((a) => a.kind === 'mp-reach');
  if (nlri.length > 0 || hasMpReach) {
    const need = [AttrType.ORIGIN, AttrType.AS_PATH, ...(nlri.length > 0 ? [AttrType.NEXT_HOP] : [])];
    for (const code of need) {
      if (!seen.has(code)) note({ code, action: 'treat-as-withdraw', subcode: UpdateSubcode.MISSING_WELL_KNOWN_ATTRIBUTE, reason: `missing well-known attribute ${code}` });
    }
  }
  const m: UpdateMessage = { type: 2, withdrawn, attrs, nlri };
  if (action !== 'none') {
    m.action = action;
    m.problems = problems;
  }
  return m;
}

function frame(type: number, body: Buffer): Buffer {
  if (HEADER_LEN + body.length > MAX_EXTENDED_LEN) throw new TooLong(`message of ${HEADER_LEN + body.length} octets`);
  const b = Buffer.alloc(HEADER_LEN + body.length);
  b.fill(0xff, 0, 16);
  b.writeUInt16BE(b.length, 16);
  b[18] = type;
  body.copy(b, HEADER_LEN);
  return b;
}

export function encodeUpdateBody(m: Pick<UpdateMessage, 'withdrawn' | 'attrs' | 'nlri'>, o: CodecOptions): Buffer {
  const v4AddPath = o.addPath?.has(IPV4_UNICAST) ?? false;
  const w = encodeNlri(m.withdrawn, v4AddPath);
  const a = Buffer.concat(m.attrs.map((x) => encodeAttr(x, o)));
  const n = encodeNlri(m.nlri, v4AddPath);
  const b = Buffer.alloc(4 + w.length + a.length + n.length);
  let off = b.writeUInt16BE(w.length, 0);
  off += w.copy(b, off);
  off = b.writeUInt16BE(a.length, off);
  off += a.copy(b, off);
  n.copy(b, off);
  return b;
}

export function encodeMessage(m: Message, o: CodecOptions): Buffer {
  switch (m.type) {
    case 1:
      return frame(MsgType.OPEN, encodeOpenBody(m));
    case 2:
      return frame(MsgType.UPDATE, encodeUpdateBody(m, o));
    case 3:
      return frame(MsgType.NOTIFICATION, Buffer.concat([Buffer.from([m.code, m.subcode]), m.data]));
    case 4:
      return frame(MsgType.KEEPALIVE, Buffer.alloc(0));
    case 5: {
      const body = Buffer.alloc(4);
      body.writeUInt16BE(m.afi, 0);
      body[2] = m.subtype;
      body[3] = m.safi;
      return frame(MsgType.ROUTE_REFRESH, body);
    }
  }
}

/** End-of-RIB (RFC 4724 §2): an empty UPDATE for IPv4 unicast, an empty MP_UNREACH otherwise. */
export function endOfRibFamily(m: UpdateMessage): { afi: number; safi: number } | undefined {
  if (m.withdrawn.length === 0 && m.nlri.length === 0 && m.attrs.length === 0) return { afi: Afi.IPV4, safi: 1 };
  if (m.withdrawn.length === 0 && m.nlri.length === 0 && m.attrs.length === 1) {
    const a = m.attrs[0];
    if (a.kind === 'mp-unreach' && a.withdrawn.length === 0) return { afi: a.afi, safi: a.safi };
  }
  return undefined;
}

export function endOfRib(afi: number, safi: number): UpdateMessage {
  if (afi === Afi.IPV4 && safi === 1) return { type: 2, withdrawn: [], attrs: [], nlri: [] };
  return { type: 2, withdrawn: [], nlri: [], attrs: [{ kind: 'mp-unreach', flags: AttrFlag.OPTIONAL, afi, safi, withdrawn: [] }] };
}
