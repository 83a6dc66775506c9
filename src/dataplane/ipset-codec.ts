/**
 * The ipset netlink encoding (pure) of one member added to or deleted from a
 * hash:ip, hash:net, hash:ip,port or hash:net,iface set, with `-exist`
 * semantics: the request carries no NLM_F_EXCL, so adding a present member or
 * deleting an absent one is not an error. ipset-nl.ts sends it.
 *
 * The bytes are the ones `ipset` 7 sends (recorded with strace in
 * ipset-codec.test.ts): nfgenmsg, PROTOCOL 7, SETNAME, then a nested DATA
 * holding the member's attributes and LINENO 0.
 */
import { TernError } from '../lib/errors';
import { addrToBytes, familyOf } from '../lib/cidr';
import { v4ToString, v6ToString } from '../bgp-speaker/codec/ip';

const NFNL_SUBSYS_IPSET = 6;
const AF_INET = 2;
const IPSET_PROTOCOL = 7;
const CMD = { add: 9, del: 10 } as const;
const NLA_F_NESTED = 0x8000;
const NLA_F_NET_BYTEORDER = 0x4000;
// Command-level attributes.
const ATTR_PROTOCOL = 1;
const ATTR_SETNAME = 2;
const ATTR_DATA = 7;
// Attributes inside DATA.
const ATTR_IP = 1;
const ATTR_CIDR = 3;
const ATTR_PORT = 4;
const ATTR_PROTO = 7;
const ATTR_LINENO = 9;
const ATTR_IFACE = 23;
const ATTR_IPADDR_IPV4 = 1;
const ATTR_IPADDR_IPV6 = 2;
const MAXNAMELEN = 32;
const IFNAMSIZ = 16;

export type MemberSetType = 'hash:ip' | 'hash:net' | 'hash:ip,port' | 'hash:net,iface';
export interface MemberOp {
  op: 'add' | 'del';
  set: string;
  type: MemberSetType;
  /** As `ipset restore` takes it: "10.0.0.1", "10.0.0.0/24", "10.0.0.1,tcp:80", "10.0.0.1/32,veth0". */
  member: string;
}

const PROTO_NUM: Record<string, number> = { tcp: 6, udp: 17, sctp: 132 };

function attr(type: number, value: Buffer): Buffer {
  const len = 4 + value.length;
  const b = Buffer.alloc((len + 3) & ~3);
  b.writeUInt16LE(len, 0);
  b.writeUInt16LE(type, 2);
  value.copy(b, 4);
  return b;
}
const u8 = (n: number) => Buffer.from([n]);
const be16 = (n: number) => Buffer.from([n >> 8, n & 0xff]);
const cstr = (s: string) => Buffer.concat([Buffer.from(s, 'utf8'), Buffer.alloc(1)]);

function bad(m: MemberOp, why: string): TernError {
  return new TernError('INTERNAL', `ipset ${m.op} ${m.set} ${m.member}: ${why}`);
}

function ipAttrs(m: MemberOp, text: string, withCidr: boolean): Buffer[] {
  const [addr, len, extra] = text.split('/');
  if (extra !== undefined || (len !== undefined && !withCidr)) throw bad(m, `"${text}" is not an address${withCidr ? ' or prefix' : ''}`);
  let fam: 4 | 6;
  let bytes: Buffer;
  try {
    fam = familyOf(addr);
    bytes = addrToBytes(addr);
  } catch {
    throw bad(m, `"${addr}" is not an IP address`);
  }
  const out = [attr(ATTR_IP | NLA_F_NESTED, attr((fam === 4 ? ATTR_IPADDR_IPV4 : ATTR_IPADDR_IPV6) | NLA_F_NET_BYTEORDER, bytes))];
  if (len !== undefined) {
    const n = Number(len);
    if (!/^\d+$/.test(len) || n > (fam === 4 ? 32 : 128)) throw bad(m, `prefix length "${len}"`);
    out.push(attr(ATTR_CIDR, u8(n)));
  }
  return out;
}

/** The payload of one ADD or DEL request (nfgenmsg and attributes; the netlink header is the socket's). Pure. */
export function encodeMemberOp(m: MemberOp): Buffer {
  if (!m.set || Buffer.byteLength(m.set) >= MAXNAMELEN) throw bad(m, `set name must be 1-${MAXNAMELEN - 1} bytes`);
  const parts = m.member.split(',');
  let data: Buffer[];
  switch (m.type) {
    case 'hash:ip':
    case 'hash:net':
      if (parts.length !== 1) throw bad(m, `a ${m.type} member has one part`);
      data = ipAttrs(m, parts[0], m.type === 'hash:net');
      break;
    case 'hash:ip,port': {
      const pp = /^(tcp|udp|sctp):(\d+)$/.exec(parts[1] ?? '');
      if (parts.length !== 2 || !pp || Number(pp[2]) > 65535) throw bad(m, 'expected ADDRESS,PROTO:PORT with PROTO tcp, udp or sctp');
      data = [...ipAttrs(m, parts[0], false), attr(ATTR_PORT | NLA_F_NET_BYTEORDER, be16(Number(pp[2]))), attr(ATTR_PROTO, u8(PROTO_NUM[pp[1]]))];
      break;
    }
    case 'hash:net,iface':
      if (parts.length !== 2 || !parts[1] || Buffer.byteLength(parts[1]) >= IFNAMSIZ || /[\s/:]/.test(parts[1])) throw bad(m, 'expected ADDRESS[/LEN],IFACE');
      data = [...ipAttrs(m, parts[0], true), attr(ATTR_IFACE, cstr(parts[1]))];
      break;
    default:
      throw bad(m, `set type ${String(m.type)} is not written over netlink`);
  }
  data.push(attr(ATTR_LINENO | NLA_F_NET_BYTEORDER, Buffer.alloc(4)));
  // nfgenmsg: family AF_INET whatever the set's family (as ipset sends it), NFNETLINK_V0, res_id 0.
  const nfgen = Buffer.from([AF_INET, 0, 0, 0]);
  return Buffer.concat([nfgen, attr(ATTR_PROTOCOL, u8(IPSET_PROTOCOL)), attr(ATTR_SETNAME, cstr(m.set)), attr(ATTR_DATA | NLA_F_NESTED, Buffer.concat(data))]);
}

export function messageType(op: MemberOp['op']): number {
  return (NFNL_SUBSYS_IPSET << 8) | CMD[op];
}

/** What the kernel's errno means for an ipset request (ipset's own codes start at 4096, ip_set.h and ip_set_hash.h). */
export function explainIpsetErrno(errno: string): string {
  const known: Record<string, string> = {
    ENOENT: 'no such set',
    '4097': 'protocol error: an attribute the set type needs is missing or malformed',
    '4102': 'set type mismatch',
    '4104': 'invalid CIDR',
    '4106': 'address family does not match the set',
    '4109': 'an IPv4 address was expected',
    '4110': 'an IPv6 address was expected',
    '4352': 'set is full',
    '4354': 'invalid protocol',
    '4355': 'protocol missing',
  };
  return known[errno] ? `${errno} (${known[errno]})` : errno;
}


// Listing (IPSET_CMD_LIST, a dump): the sets as `ipset save` prints them.
const CMD_LIST = 7;
const ATTR_TYPENAME = 3;
const ATTR_FAMILY = 5;
const ATTR_ADT = 8;
const ATTR_CADT_FLAGS = 8;
const ATTR_INITVAL = 17;
const AF_INET6 = 10;
const PROTO_NAME: Record<number, string> = { 6: 'tcp', 17: 'udp', 132: 'sctp' };

/** One set of a listing: members in `ipset save`'s form ("10.0.0.1,veth0", "fd00::1,tcp:80", host prefixes without /32). */
export interface ListedSet {
  type: string;
  family: 4 | 6;
  /** The set's hash seed, chosen at random when the set is created: tells a re-created set from the one seen before. */
  initval?: number;
  members: Set<string>;
}

/** The request for a dump of every set with its members (nfgenmsg and PROTOCOL). */
export function encodeListRequest(): Buffer {
  return Buffer.concat([Buffer.from([AF_INET, 0, 0, 0]), attr(ATTR_PROTOCOL, u8(IPSET_PROTOCOL))]);
}

export function listMessageType(): number {
  return (NFNL_SUBSYS_IPSET << 8) | CMD_LIST;
}

/** Calls `fn` with each attribute's type (flags masked) and the offsets of its value in `b` (a callback, not an iterator: a listing has thousands). */
function eachAttr(b: Buffer, from: number, to: number, fn: (type: number, start: number, end: number) => void): void {
  for (let off = from; off + 4 <= to; ) {
    const len = b.readUInt16LE(off);
    if (len < 4 || off + len > to) throw new TernError('IO_FAILURE', 'ipset list: truncated attribute');
    fn(b.readUInt16LE(off + 2) & 0x3fff, off + 4, off + len);
    off += (len + 3) & ~3;
  }
}

const cstrAt = (b: Buffer, start: number, end: number) => {
  const nul = b.indexOf(0, start);
  return b.toString('utf8', start, nul >= start && nul < end ? nul : end);
};

/**
 * An address as inet_ntop prints it (what `ipset save` shows): IPv6 as RFC
 * 5952 text, except the IPv4-mapped and -compatible forms, which it dots.
 * A listing holds thousands of addresses, so not through a general library.
 */
export function ntop(b: Buffer): string {
  if (b.length === 4) return v4ToString(b, 0);
  const zeros = (from: number, to: number) => b.subarray(from, to).every((x) => x === 0);
  if (zeros(0, 10) && ((b[10] === 0xff && b[11] === 0xff) || (zeros(10, 12) && (b[12] | b[13]) !== 0))) return `::${b[10] ? 'ffff:' : ''}${v4ToString(b, 12)}`;
  return v6ToString(b, 0);
}

/** One member's DATA attribute, printed as `ipset save` does; throws on what Tern never writes (flags, extensions, other protocols). */
function memberText(type: string, b: Buffer, from: number, to: number): string {
  let ip: string | undefined;
  let cidr: number | undefined;
  let port: number | undefined;
  let proto: number | undefined;
  let iface: string | undefined;
  eachAttr(b, from, to, (t, start, end) => {
    if (t === ATTR_IP) eachAttr(b, start, end, (_, s, e) => (ip = ntop(b.subarray(s, e))));
    else if (t === ATTR_CIDR) cidr = b[start];
    else if (t === ATTR_PORT) port = b.readUInt16BE(start);
    else if (t === ATTR_PROTO) proto = b[start];
    else if (t === ATTR_IFACE) iface = cstrAt(b, start, end);
    else if (t === ATTR_CADT_FLAGS) {
      if (b.readUInt32BE(start) !== 0) throw new TernError('IO_FAILURE', `ipset list: ${type} member with flags`);
    } else throw new TernError('IO_FAILURE', `ipset list: ${type} member attribute ${t}`);
  });
  if (ip === undefined) throw new TernError('IO_FAILURE', `ipset list: ${type} member without an address`);
  const host = cidr === undefined || cidr === (ip.includes(':') ? 128 : 32);
  const addr = host ? ip : `${ip}/${cidr}`;
  switch (type) {
    case 'hash:ip':
    case 'hash:net':
      return addr;
    case 'hash:ip,port':
      if (port === undefined || proto === undefined || !PROTO_NAME[proto]) throw new TernError('IO_FAILURE', `ipset list: ${type} member protocol ${proto}`);
      return `${addr},${PROTO_NAME[proto]}:${port}`;
    case 'hash:net,iface':
      if (iface === undefined) throw new TernError('IO_FAILURE', `ipset list: ${type} member without an interface`);
      return `${addr},${iface}`;
    default:
      throw new TernError('IO_FAILURE', `ipset list: set type ${type}`);
  }
}

/**
 * Add one message of a listing (pure) to `into`. A set whose members do not
 * fit one message continues in the next ones under the same name. Sets whose
 * name does not match `want` are skipped whole (their members are never
 * decoded); a member Tern could not have written throws, and the caller reads
 * `ipset save` instead.
 */
export function decodeListMessage(data: Buffer, into: Map<string, ListedSet>, want: (name: string) => boolean): void {
  let name: string | undefined;
  let type: string | undefined;
  let family: 4 | 6 = 4;
  let initval: number | undefined;
  let adt: [number, number] | undefined;
  eachAttr(data, 4, data.length, (t, start, end) => {
    if (t === ATTR_SETNAME) name = cstrAt(data, start, end);
    else if (t === ATTR_TYPENAME) type = cstrAt(data, start, end);
    else if (t === ATTR_FAMILY) family = data[start] === AF_INET6 ? 6 : 4;
    else if (t === ATTR_DATA) eachAttr(data, start, end, (h, s) => h === ATTR_INITVAL && (initval = data.readUInt32BE(s)));
    else if (t === ATTR_ADT) adt = [start, end];
  });
  if (name === undefined || !want(name)) return;
  let set = into.get(name);
  if (!set) {
    if (type === undefined) throw new TernError('IO_FAILURE', `ipset list: ${name} continues a set not seen`);
    into.set(name, (set = { type, family, initval, members: new Set() }));
  }
  const members = set.members;
  const setType = set.type;
  if (adt) eachAttr(data, adt[0], adt[1], (t, start, end) => t === ATTR_DATA && members.add(memberText(setType, data, start, end)));
}
