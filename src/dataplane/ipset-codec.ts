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

