/** OPEN message and capabilities (RFC 4271 §4.2, RFC 5492). */
import { CapCode, NotifyCode, OpenSubcode, HeaderSubcode } from './constants';
import { BgpProtocolError } from './errors';
import { v4ToString, addrToBytes } from './ip';

export interface AfiSafi {
  afi: number;
  safi: number;
}
export type Capability =
  | { kind: 'multiprotocol'; afi: number; reserved: number; safi: number }
  | { kind: 'route-refresh' }
  | { kind: 'enhanced-route-refresh' }
  | { kind: 'extended-message' }
  | { kind: 'four-octet-as'; asn: number }
  | { kind: 'graceful-restart'; restartFlags: number; restartTime: number; families: (AfiSafi & { flags: number })[] }
  | { kind: 'add-path'; families: (AfiSafi & { mode: number })[] }
  | { kind: 'unknown'; code: number; data: Buffer };

/** ADD-PATH Send/Receive field (RFC 7911 §4). */
export const AddPathMode = { RECEIVE: 1, SEND: 2, BOTH: 3 } as const;
/** Graceful restart flag bits (RFC 4724 §3). */
export const GR_RESTART_STATE = 0x8;
export const GR_FORWARDING_PRESERVED = 0x80;

/** An optional parameter: type 2 carries capabilities; others are kept raw. */
export type OptionalParam = { type: 2; capabilities: Capability[] } | { type: number; data: Buffer };

export interface OpenMessage {
  type: 1;
  version: number;
  /** The 2-octet "My Autonomous System" field (AS_TRANS when the real AS needs 4 octets). */
  myAs: number;
  holdTime: number;
  routerId: string;
  params: OptionalParam[];
}

interface CapRow {
  code: number;
  kind: Capability['kind'];
  /** Returns undefined when the value has an unexpected length: then it is kept as unknown. */
  decode(b: Buffer, s: number, e: number): Capability | undefined;
  encode(c: Capability): Buffer;
}

const fixed = (kind: 'route-refresh' | 'enhanced-route-refresh' | 'extended-message', code: number): CapRow => ({
  code,
  kind,
  decode: (_b, s, e) => (e === s ? { kind } : undefined),
  encode: () => Buffer.alloc(0),
});

const CAP_ROWS: CapRow[] = [
  {
    code: CapCode.MULTIPROTOCOL,
    kind: 'multiprotocol',
    decode: (b, s, e) => (e - s === 4 ? { kind: 'multiprotocol', afi: b.readUInt16BE(s), reserved: b[s + 2], safi: b[s + 3] } : undefined),
    encode(c) {
      const x = c as Extract<Capability, { kind: 'multiprotocol' }>;
      const b = Buffer.alloc(4);
      b.writeUInt16BE(x.afi, 0);
      b[2] = x.reserved;
      b[3] = x.safi;
      return b;
    },
  },
  fixed('route-refresh', CapCode.ROUTE_REFRESH),
  fixed('enhanced-route-refresh', CapCode.ENHANCED_ROUTE_REFRESH),
  fixed('extended-message', CapCode.EXTENDED_MESSAGE),
  {
    code: CapCode.FOUR_OCTET_AS,
    kind: 'four-octet-as',
    decode: (b, s, e) => (e - s === 4 ? { kind: 'four-octet-as', asn: b.readUInt32BE(s) } : undefined),
    encode(c) {
      const b = Buffer.alloc(4);
      b.writeUInt32BE((c as { asn: number }).asn >>> 0, 0);
      return b;
    },
  },
  {
    code: CapCode.GRACEFUL_RESTART,
    kind: 'graceful-restart',
    decode(b, s, e) {
      if (e - s < 2 || (e - s - 2) % 4 !== 0) return undefined;
      const w = b.readUInt16BE(s);
      const families: (AfiSafi & { flags: number })[] = [];
      for (let off = s + 2; off < e; off += 4) families.push({ afi: b.readUInt16BE(off), safi: b[off + 2], flags: b[off + 3] });
      return { kind: 'graceful-restart', restartFlags: w >> 12, restartTime: w & 0xfff, families };
    },
    encode(c) {
      const x = c as Extract<Capability, { kind: 'graceful-restart' }>;
      const b = Buffer.alloc(2 + 4 * x.families.length);
      b.writeUInt16BE(((x.restartFlags & 0xf) << 12) | (x.restartTime & 0xfff), 0);
      x.families.forEach((f, i) => {
        b.writeUInt16BE(f.afi, 2 + 4 * i);
        b[4 + 4 * i] = f.safi;
        b[5 + 4 * i] = f.flags;
      });
      return b;
    },
  },
  {
    code: CapCode.ADD_PATH,
    kind: 'add-path',
    decode(b, s, e) {
      if (e - s === 0 || (e - s) % 4 !== 0) return undefined;
      const families: (AfiSafi & { mode: number })[] = [];
      for (let off = s; off < e; off += 4) families.push({ afi: b.readUInt16BE(off), safi: b[off + 2], mode: b[off + 3] });
      return { kind: 'add-path', families };
    },
    encode(c) {
      const x = c as Extract<Capability, { kind: 'add-path' }>;
      const b = Buffer.alloc(4 * x.families.length);
      x.families.forEach((f, i) => {
        b.writeUInt16BE(f.afi, 4 * i);
        b[4 * i + 2] = f.safi;
        b[4 * i + 3] = f.mode;
      });
      return b;
    },
  },
];
const CAP_BY_CODE = new Map(CAP_ROWS.map((r) => [r.code, r]));
const CAP_BY_KIND = new Map(CAP_ROWS.map((r) => [r.kind, r]));

function openError(subcode: number, msg: string, data?: Buffer): BgpProtocolError {
  return new BgpProtocolError(NotifyCode.OPEN_MESSAGE_ERROR, subcode, msg, data);
}

function decodeCapabilities(b: Buffer, s: number, e: number): Capability[] {
  const caps: Capability[] = [];
  let off = s;
  while (off < e) {
    if (off + 2 > e) throw openError(OpenSubcode.UNSPECIFIC, 'capability header overruns its parameter');
    const code = b[off];
    const len = b[off + 1];
    const vs = off + 2;
    const ve = vs + len;
    if (ve > e) throw openError(OpenSubcode.UNSPECIFIC, `capability ${code} overruns its parameter`);
    // Unknown capabilities (and known ones with an unexpected length) are kept but ignored (RFC 5492 §3).
    const known = CAP_BY_CODE.get(code)?.decode(b, vs, ve);
    caps.push(known ?? { kind: 'unknown', code, data: Buffer.from(b.subarray(vs, ve)) });
    off = ve;
  }
  return caps;
}

/** Decode the body of an OPEN (after the 19-octet header). */
export function decodeOpen(b: Buffer, s: number, e: number): OpenMessage {
  if (e - s < 10) throw new BgpProtocolError(NotifyCode.MESSAGE_HEADER_ERROR, HeaderSubcode.BAD_MESSAGE_LENGTH, 'OPEN too short', u16(e - s + 19));
  const version = b[s];
  if (version !== 4) throw openError(OpenSubcode.UNSUPPORTED_VERSION_NUMBER, `BGP version ${version}`, u16(4));
  const myAs = b.readUInt16BE(s + 1);
  const holdTime = b.readUInt16BE(s + 3);
  // §6.2: a Hold Time of one or two seconds is unacceptable; zero means no keepalives.
  if (holdTime === 1 || holdTime === 2) throw openError(OpenSubcode.UNACCEPTABLE_HOLD_TIME, `hold time ${holdTime}`);
  const routerId = v4ToString(b, s + 5);
  if (b.readUInt32BE(s + 5) === 0) throw openError(OpenSubcode.BAD_BGP_IDENTIFIER, 'BGP identifier 0.0.0.0'); // RFC 6286 §2.2
  const optLen = b[s + 9];
  if (s + 10 + optLen !== e) throw openError(OpenSubcode.UNSPECIFIC, `optional parameters length ${optLen} does not match the message`);
  const params: OptionalParam[] = [];
  let off = s + 10;
  while (off < e) {
    if (off + 2 > e) throw openError(OpenSubcode.UNSPECIFIC, 'optional parameter header overruns');
    const type = b[off];
    const len = b[off + 1];
    if (off + 2 + len > e) throw openError(OpenSubcode.UNSPECIFIC, 'optional parameter overruns');
    if (type === 2) params.push({ type: 2, capabilities: decodeCapabilities(b, off + 2, off + 2 + len) });
    else throw openError(OpenSubcode.UNSUPPORTED_OPTIONAL_PARAMETER, `optional parameter type ${type}`);
    off += 2 + len;
  }
  return { type: 1, version, myAs, holdTime, routerId, params };
}

function u16(v: number): Buffer {
  const b = Buffer.alloc(2);
  b.writeUInt16BE(v & 0xffff, 0);
  return b;
}

export function encodeCapability(c: Capability): Buffer {
  const code = c.kind === 'unknown' ? c.code : CAP_BY_KIND.get(c.kind)!.code;
  const value = c.kind === 'unknown' ? c.data : CAP_BY_KIND.get(c.kind)!.encode(c);
  return Buffer.concat([Buffer.from([code, value.length]), value]);
}

export function encodeOpenBody(m: OpenMessage): Buffer {
  const params = Buffer.concat(
    m.params.map((p) => {
      const v = 'capabilities' in p ? Buffer.concat(p.capabilities.map(encodeCapability)) : p.data;
      return Buffer.concat([Buffer.from([p.type, v.length]), v]);
    }),
  );
  const head = Buffer.alloc(10);
  head[0] = m.version;
  head.writeUInt16BE(m.myAs & 0xffff, 1);
  head.writeUInt16BE(m.holdTime, 3);
  addrToBytes(m.routerId).copy(head, 5);
  head[9] = params.length;
  return Buffer.concat([head, params]);
}

/** All capabilities of an OPEN, whichever parameters carry them. */
export function capabilitiesOf(m: OpenMessage): Capability[] {
  return m.params.flatMap((p) => ('capabilities' in p ? p.capabilities : []));
}
