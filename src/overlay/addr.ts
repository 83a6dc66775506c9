/** Address helpers for the overlay (bytes for netlink, CIDR containment). */
import { isIP } from 'node:net';
import { Address4, Address6 } from 'ip-address';
import { TernError } from '../lib/errors';

export function familyOf(ip: string): 4 | 6 {
  const f = isIP(ip);
  if (f === 0) throw new TernError('INVALID_CONFIG', `invalid IP address ${ip}`);
  return f as 4 | 6;
}

export function ipBytes(ip: string): Buffer {
  return familyOf(ip) === 4 ? Buffer.from(ip.split('.').map(Number)) : Buffer.from(new Address6(ip).toByteArray());
}

export function ipFromBytes(b: Uint8Array): string {
  if (b.length === 4) return Array.from(b).join('.');
  return Address6.fromByteArray(Array.from(b)).correctForm();
}

/** Canonical text of an address, so string comparison works (v6 compressed form). */
export function canonicalIp(ip: string): string {
  return familyOf(ip) === 4 ? ip : new Address6(ip).correctForm();
}

export interface Cidr {
  ip: string;
  len: number;
  family: 4 | 6;
}

export function parseCidr(cidr: string): Cidr {
  const [ip, lenS] = cidr.split('/');
  const family = familyOf(ip);
  const len = lenS === undefined ? (family === 4 ? 32 : 128) : Number(lenS);
  if (!Number.isInteger(len) || len < 0 || len > (family === 4 ? 32 : 128)) throw new TernError('INVALID_CONFIG', `invalid CIDR ${cidr}`);
  return { ip: canonicalIp(ip), len, family };
}

/** Network form of a CIDR (host bits cleared), e.g. 10.0.1.7/24 -> 10.0.1.0/24. */
export function networkOf(cidr: string): string {
  const c = parseCidr(cidr);
  const a = c.family === 4 ? new Address4(`${c.ip}/${c.len}`) : new Address6(`${c.ip}/${c.len}`);
  return `${a.startAddress().correctForm()}/${c.len}`;
}

export function inSubnet(ip: string, cidr: string): boolean {
  const c = parseCidr(cidr);
  if (familyOf(ip) !== c.family) return false;
  if (c.family === 4) return new Address4(ip).isInSubnet(new Address4(`${c.ip}/${c.len}`));
  return new Address6(ip).isInSubnet(new Address6(`${c.ip}/${c.len}`));
}
