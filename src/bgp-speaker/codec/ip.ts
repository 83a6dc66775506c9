/**
 * Addresses and NLRI prefixes as text ("10.0.0.0/24", "2001:db8::/32"), the
 * form the RIB keys on. Hand-rolled because the hot path decodes 100k of them.
 */
import { BgpProtocolError } from './errors';
import { NotifyCode, UpdateSubcode } from './constants';

export function v4ToString(b: Uint8Array, off: number): string {
  return `${b[off]}.${b[off + 1]}.${b[off + 2]}.${b[off + 3]}`;
}

export function v6ToString(b: Uint8Array, off: number): string {
  const g: number[] = [];
  for (let i = 0; i < 8; i++) g.push((b[off + 2 * i] << 8) | b[off + 2 * i + 1]);
  // RFC 5952: compress the longest run (>= 2) of zero groups, the first one on ties.
  let bestStart = -1;
  let bestLen = 0;
  for (let i = 0; i < 8; ) {
    if (g[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && g[j] === 0) j++;
    if (j - i > bestLen && j - i >= 2) {
      bestStart = i;
      bestLen = j - i;
    }
    i = j;
  }
  if (bestStart < 0) return g.map((x) => x.toString(16)).join(':');
  const head = g.slice(0, bestStart).map((x) => x.toString(16)).join(':');
  const tail = g.slice(bestStart + bestLen).map((x) => x.toString(16)).join(':');
  return `${head}::${tail}`;
}

export function isV6(addr: string): boolean {
  return addr.includes(':');
}

/**
 * A next hop nobody can forward to (RFC 4271 §6.3 "semantically incorrect"):
 * unspecified, loopback, multicast or broadcast; unparsable text counts too.
 */
export function isMartianNextHop(addr: string): boolean {
  let b: Buffer;
  try {
    b = addrToBytes(addr);
  } catch {
    return true;
  }
  if (b.length === 4) return b[0] === 0 || b[0] === 127 || b[0] >= 224;
  if (b[0] === 0xff) return true; // multicast
  if (b.subarray(0, 10).every((x) => x === 0) && (b[10] | b[11]) === 0) return b.subarray(12, 15).every((x) => x === 0) && b[15] <= 1; // :: and ::1
  return false;
}

/** Parse a v4 or v6 address into 4 or 16 bytes; throws TypeError on bad text (config input). */
export function addrToBytes(addr: string): Buffer {
  if (!isV6(addr)) {
    const parts = addr.split('.');
    if (parts.length !== 4) throw new TypeError(`bad IPv4 address: ${addr}`);
    const out = Buffer.alloc(4);
    for (let i = 0; i < 4; i++) {
      const n = Number(parts[i]);
      if (!/^\d{1,3}$/.test(parts[i]) || n > 255) throw new TypeError(`bad IPv4 address: ${addr}`);
      out[i] = n;
    }
    return out;
  }
  let text = addr;
  const tailV4: number[] = [];
  const lastColon = text.lastIndexOf(':');
  if (text.slice(lastColon + 1).includes('.')) {
    const v4 = addrToBytes(text.slice(lastColon + 1));
    text = `${text.slice(0, lastColon + 1)}${((v4[0] << 8) | v4[1]).toString(16)}:${((v4[2] << 8) | v4[3]).toString(16)}`;
    tailV4.push(...v4);
  }
  const halves = text.split('::');
  if (halves.length > 2) throw new TypeError(`bad IPv6 address: ${addr}`);
  const parse = (s: string): number[] =>
    s === ''
      ? []
      : s.split(':').map((h) => {
          if (!/^[0-9a-fA-F]{1,4}$/.test(h)) throw new TypeError(`bad IPv6 address: ${addr}`);
          return parseInt(h, 16);
        });
  const head = parse(halves[0]);
  const tail = halves.length === 2 ? parse(halves[1]) : [];
  const fill = 8 - head.length - tail.length;
  if ((halves.length === 1 && fill !== 0) || (halves.length === 2 && fill < 1)) throw new TypeError(`bad IPv6 address: ${addr}`);
  const groups = [...head, ...new Array<number>(halves.length === 2 ? fill : 0).fill(0), ...tail];
  const out = Buffer.alloc(16);
  groups.forEach((x, i) => out.writeUInt16BE(x, 2 * i));
  return out;
}

export interface ParsedPrefix {
  v6: boolean;
  len: number;
  bytes: Buffer; // full 4 or 16 bytes
}

/**
 * "a.b.c.d/len" scanned without allocating: address * 64 + length (host bits
 * kept), or -1 when the text is not that shape. The RIB's hot path.
 */
function scanV4Prefix(p: string): number {
  let addr = 0;
  let octet = 0;
  let digits = 0;
  let dots = 0;
  let i = 0;
  for (; i < p.length; i++) {
    const ch = p.charCodeAt(i);
    if (ch >= 48 && ch <= 57) {
      octet = octet * 10 + (ch - 48);
      if (++digits > 3 || octet > 255) return -1;
    } else if ((ch === 46 && dots < 3) || (ch === 47 && dots === 3)) {
      if (digits === 0) return -1;
      addr = addr * 256 + octet;
      octet = 0;
      digits = 0;
      if (ch === 47) break;
      dots++;
    } else return -1;
  }
  if (dots !== 3 || i === p.length) return -1;
  let len = 0;
  let ld = 0;
  for (i++; i < p.length; i++) {
    const ch = p.charCodeAt(i);
    if (ch < 48 || ch > 57 || ++ld > 2) return -1;
    len = len * 10 + (ch - 48);
  }
  if (ld === 0 || len > 32) return -1;
  return addr * 64 + len;
}

function parseV4PrefixFast(p: string): ParsedPrefix | undefined {
  const r = scanV4Prefix(p);
  if (r < 0) return undefined;
  const bytes = Buffer.allocUnsafe(4);
  bytes.writeUInt32BE(Math.floor(r / 64));
  return { v6: false, len: r % 64, bytes };
}

export function parsePrefix(p: string): ParsedPrefix {
  const fast = parseV4PrefixFast(p);
  if (fast) return fast;
  const slash = p.indexOf('/');
  if (slash < 0) throw new TypeError(`bad prefix: ${p}`);
  const bytes = addrToBytes(p.slice(0, slash));
  const len = Number(p.slice(slash + 1));
  const max = bytes.length * 8;
  if (!/^\d{1,3}$/.test(p.slice(slash + 1)) || len > max) throw new TypeError(`bad prefix: ${p}`);
  return { v6: bytes.length === 16, len, bytes };
}

/** Zero the host bits and format canonically. */
export function canonicalPrefix(p: string): string {
  const { v6, len, bytes } = parsePrefix(p);
  maskBytes(bytes, len);
  const text = v6 ? `${v6ToString(bytes, 0)}/${len}` : v4PrefixText(bytes, 0, 4, len);
  return text === p ? p : text; // the caller's string when it was canonical: one copy of each prefix is kept
}

export function maskBytes(bytes: Buffer, len: number): void {
  for (let i = 0; i < bytes.length; i++) {
    const bits = Math.max(0, Math.min(8, len - i * 8));
    bytes[i] &= bits === 0 ? 0 : (0xff << (8 - bits)) & 0xff;
  }
}

/** Whether `inner` lies inside `outer` (both canonical or not; host bits ignored). */
export function prefixContains(outer: string, inner: string): boolean {
  const o = parsePrefix(outer);
  const i = parsePrefix(inner);
  if (o.v6 !== i.v6 || i.len < o.len) return false;
  const ob = Buffer.from(o.bytes);
  const ib = Buffer.from(i.bytes);
  maskBytes(ob, o.len);
  maskBytes(ib, o.len);
  return ob.equals(ib);
}

export interface Nlri {
  prefix: string;
  /** ADD-PATH path identifier (RFC 7911), present only when negotiated for the family. */
  pathId?: number;
}

const scratch = Buffer.alloc(20);
const keyOctets = Buffer.alloc(4);

function putDecimal(b: Buffer, o: number, x: number): number {
  if (x >= 100) b[o++] = 48 + ((x / 100) | 0);
  if (x >= 10) b[o++] = 48 + (((x / 10) | 0) % 10);
  b[o++] = 48 + (x % 10);
  return o;
}

/**
 * "a.b.c.d/len" from the `n` prefix octets at `off`, written as ASCII and read
 * back as one string: building it by concatenation makes about ten
 * intermediate strings per route, which is most of a 100k-route table's garbage.
 */
function v4PrefixText(b: Buffer, off: number, n: number, len: number): string {
  let o = 0;
  for (let i = 0; i < 4; i++) {
    o = putDecimal(scratch, o, i < n - 1 ? b[off + i] : i === n - 1 ? b[off + i] & lastOctetMask(len) : 0);
    scratch[o++] = i < 3 ? 46 : 47; // '.' or '/'
  }
  o = putDecimal(scratch, o, len);
  return scratch.toString('latin1', 0, o);
}

/**
 * An IPv4 prefix as one number: 2^len plus the prefix's network bits, which is
 * one key per (network, length) and below 2^31 up to /30, so a Map holds it
 * without allocating (a prefix string is 32 octets). Host bits are ignored.
 * Undefined when the text is not "a.b.c.d/len".
 */
export function v4PrefixKey(p: string): number | undefined {
  const r = scanV4Prefix(p);
  if (r < 0) return undefined;
  const len = r % 64;
  const addr = (r - len) / 64;
  // Up to /30 in integer operations: the key is then a small integer (a Smi) in every V8 tier.
  // In floating point the interpreter boxes it and optimised code does not, and the mix of the
  // two deoptimises the RIB's compiled code in the middle of a burst (BENCHMARKS.md).
  if (len <= 30) return len === 0 ? 1 : (1 << len) + (addr >>> (32 - len));
  return 2 ** len + Math.floor(addr / 2 ** (32 - len));
}

/** The length and network address (as an unsigned 32-bit number) of a v4PrefixKey. */
export function v4KeyLength(key: number): number {
  return key >= 2 ** 32 ? 32 : 31 - Math.clz32(key);
}

export function v4KeyAddress(key: number): number {
  const len = v4KeyLength(key);
  return (key - 2 ** len) * 2 ** (32 - len);
}

/**
 * A v4PrefixKey's network address written as 4 octets at `out[0]` (host bits
 * zero); returns the prefix length. The kernel's RTA_DST straight from the key.
 */
export function v4KeyOctets(key: number, out: Uint8Array): number {
  const len = v4KeyLength(key);
  const a = v4KeyAddress(key);
  out[0] = a >>> 24;
  out[1] = (a >>> 16) & 255;
  out[2] = (a >>> 8) & 255;
  out[3] = a & 255;
  return len;
}

/** "a.b.c.d/len" of a v4PrefixKey. */
export function v4KeyText(key: number): string {
  const len = v4KeyOctets(key, keyOctets);
  return v4PrefixText(keyOctets, 0, 4, len);
}

/** The bits of a prefix's last octet that belong to the prefix. */
const lastOctetMask = (len: number): number => (0xff00 >> (((len - 1) & 7) + 1)) & 0xff;

/**
 * Decode an NLRI field. Bits past the prefix length are cleared: RFC 4271
 * §4.3 calls the trailing bits irrelevant, so 10.77.1.0/23 is 10.77.0.0/23
 * (one prefix in the RIB, a route the kernel accepts, and what goes on).
 */
export function decodeNlri(b: Buffer, start: number, end: number, v6: boolean, addPath: boolean): Nlri[] {
  const out: Nlri[] = [];
  const max = v6 ? 128 : 32;
  let off = start;
  while (off < end) {
    let pathId: number | undefined;
    if (addPath) {
      if (off + 4 > end) throw invalidNetwork('path identifier overruns the NLRI field');
      pathId = b.readUInt32BE(off);
      off += 4;
    }
    if (off >= end) throw invalidNetwork('missing prefix length');
    const len = b[off++];
    if (len > max) throw invalidNetwork(`prefix length ${len} > ${max}`);
    const n = (len + 7) >> 3;
    if (off + n > end) throw invalidNetwork('prefix overruns the NLRI field');
    let prefix: string;
    if (v6) {
      scratch.fill(0, 0, 16);
      for (let i = 0; i < n; i++) scratch[i] = b[off + i];
      if (n) scratch[n - 1] &= lastOctetMask(len);
      prefix = `${v6ToString(scratch, 0)}/${len}`;
    } else prefix = v4PrefixText(b, off, n, len);
    off += n;
    out.push(pathId === undefined ? { prefix } : { prefix, pathId });
  }
  return out;
}

function invalidNetwork(msg: string): BgpProtocolError {
  return new BgpProtocolError(NotifyCode.UPDATE_MESSAGE_ERROR, UpdateSubcode.INVALID_NETWORK_FIELD, msg);
}

export function nlriLength(n: Nlri, addPath: boolean): number {
  const slash = n.prefix.indexOf('/');
  return (addPath ? 4 : 0) + 1 + ((Number(n.prefix.slice(slash + 1)) + 7) >> 3);
}

export function encodeNlri(list: readonly Nlri[], addPath: boolean): Buffer {
  const parsed = list.map((n) => parsePrefix(n.prefix));
  let total = 0;
  for (const p of parsed) total += (addPath ? 4 : 0) + 1 + ((p.len + 7) >> 3);
  const b = Buffer.alloc(total);
  let off = 0;
  for (let i = 0; i < list.length; i++) {
    const { len, bytes } = parsed[i];
    if (addPath) off = b.writeUInt32BE(list[i].pathId ?? 0, off);
    b[off++] = len;
    const size = (len + 7) >> 3;
    bytes.copy(b, off, 0, size);
    off += size;
  }
  return b;
}
