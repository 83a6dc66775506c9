/** Address and prefix helpers on top of ip-address: parse once, then work with bigints. */
import type * as IpAddress from 'ip-address';
import { TernError } from './errors';

/**
 * Plain dotted-quad IPv4 is parsed here; ip-address is loaded for anything
 * else (IPv6, and text this does not take, so errors stay its own). A CNI
 * process on an IPv4 network then never loads it.
 */
const V4 = /^(?:(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)\.){3}(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)$/;
let ipAddress: typeof IpAddress | undefined;
function lib(): typeof IpAddress {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  return (ipAddress ??= require('ip-address') as typeof IpAddress);
}

function v4ToNumber(addr: string): number {
  let n = 0;
  for (const o of addr.split('.')) n = n * 256 + Number(o);
  return n;
}

export type Family = 4 | 6;

export interface Prefix {
  family: Family;
  /** Network address as an integer. */
  base: bigint;
  length: number;
}

export function familyOf(addr: string): Family {
  return addr.includes(':') ? 6 : 4;
}

export function isAddress(s: string): boolean {
  if (s.includes('/')) return false;
  if (V4.test(s)) return true;
  return s.includes(':') ? lib().Address6.isValid(s) : lib().Address4.isValid(s);
}

export function addrToBigInt(addr: string): bigint {
  if (V4.test(addr)) return BigInt(v4ToNumber(addr));
  try {
    return addr.includes(':') ? new (lib().Address6)(addr).bigInt() : new (lib().Address4)(addr).bigInt();
  } catch (e) {
    throw new TernError('INVALID_CONFIG', `invalid IP address "${addr}"`, { cause: e });
  }
}

export function bigIntToAddr(n: bigint, family: Family): string {
  if (family === 4 && n >= 0n && n <= 0xffffffffn) {
    const x = Number(n);
    return `${x >>> 24}.${(x >>> 16) & 255}.${(x >>> 8) & 255}.${x & 255}`;
  }
  return family === 4 ? lib().Address4.fromBigInt(n).address : lib().Address6.fromBigInt(n).correctForm();
}

export function addrToBytes(addr: string): Buffer {
  if (V4.test(addr)) return Buffer.from(addr.split('.').map(Number));
  try {
    return Buffer.from(addr.includes(':') ? new (lib().Address6)(addr).toByteArray() : new (lib().Address4)(addr).toArray());
  } catch (e) {
    throw new TernError('INVALID_CONFIG', `invalid IP address "${addr}"`, { cause: e });
  }
}

export function bytesToAddr(b: Buffer | Uint8Array): string {
  if (b.length === 4) return Array.from(b).join('.');
  let n = 0n;
  for (const x of b) n = (n << 8n) | BigInt(x);
  return lib().Address6.fromBigInt(n).correctForm();
}

const bits = (f: Family): number => (f === 4 ? 32 : 128);

/** Parse "a.b.c.d/len" (host bits must be zero unless `loose`). */
export function parsePrefix(cidr: string, opts: { loose?: boolean } = {}): Prefix {
  const m = /^([^/]+)\/(\d{1,3})$/.exec(cidr.trim());
  if (!m) throw new TernError('INVALID_CONFIG', `invalid CIDR "${cidr}"`);
  const family = familyOf(m[1]);
  const length = Number(m[2]);
  if (length > bits(family)) throw new TernError('INVALID_CONFIG', `invalid prefix length in "${cidr}"`);
  const addr = addrToBigInt(m[1]);
  const host = (1n << BigInt(bits(family) - length)) - 1n;
  if (!opts.loose && (addr & host) !== 0n) throw new TernError('INVALID_CONFIG', `CIDR "${cidr}" has host bits set`);
  return { family, base: addr & ~host, length };
}

export function prefixSize(p: Prefix): bigint {
  return 1n << BigInt(bits(p.family) - p.length);
}

export function prefixContains(p: Prefix, addr: bigint): boolean {
  return addr >= p.base && addr < p.base + prefixSize(p);
}

export function prefixContainsPrefix(outer: Prefix, inner: Prefix): boolean {
  return outer.family === inner.family && inner.length >= outer.length && prefixContains(outer, inner.base);
}

export function formatPrefix(p: Prefix): string {
  return `${bigIntToAddr(p.base, p.family)}/${p.length}`;
}

/** Canonical text of an address (e.g. "fd00:0::1" -> "fd00::1"). */
export function canonicalAddr(addr: string): string {
  return bigIntToAddr(addrToBigInt(addr), familyOf(addr));
}

export function hostPrefixLen(f: Family): number {
  return bits(f);
}
