import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { Address4 } from 'ip-address';
import { addrToBigInt, addrToBytes, bigIntToAddr, bytesToAddr, canonicalAddr, formatPrefix, isAddress, parsePrefix, prefixContains, prefixContainsPrefix, prefixSize } from './cidr';

describe('cidr', () => {
  it.each([
    ['10.244.0.0/16', 4, 16, 65536n],
    ['fd00:10:244::/48', 6, 48, 1n << 80n],
    ['192.0.2.64/26', 4, 26, 64n],
  ])('parses %s', (cidr, family, length, size) => {
    const p = parsePrefix(cidr);
    expect(p.family).toBe(family);
    expect(p.length).toBe(length);
    expect(prefixSize(p)).toBe(size);
    expect(formatPrefix(p)).toBe(cidr);
  });

  it.each(['10.0.0.1/24', '10.0.0.0/33', 'nonsense', '10.0.0.0', 'fd00::1/64'])('rejects %s', (cidr) => {
    expect(() => parsePrefix(cidr)).toThrow();
  });

  it('loose parsing masks host bits', () => {
    expect(formatPrefix(parsePrefix('10.0.0.9/24', { loose: true }))).toBe('10.0.0.0/24');
  });

  it('containment', () => {
    const p = parsePrefix('10.244.0.0/16');
    expect(prefixContains(p, parsePrefix('10.244.255.255/32').base)).toBe(true);
    expect(prefixContains(p, parsePrefix('10.245.0.0/32').base)).toBe(false);
    expect(prefixContainsPrefix(p, parsePrefix('10.244.3.0/26'))).toBe(true);
    expect(prefixContainsPrefix(p, parsePrefix('10.0.0.0/8'))).toBe(false);
  });

  it('bytes round-trip', () => {
    expect(bytesToAddr(addrToBytes('10.1.2.3'))).toBe('10.1.2.3');
    expect(bytesToAddr(addrToBytes('fd00::1'))).toBe('fd00::1');
    expect(canonicalAddr('fd00:0:0::0001')).toBe('fd00::1');
  });

  it('its own IPv4 parsing agrees with ip-address on dotted quads, odd ones included', () => {
    const octet = fc.oneof(fc.integer({ min: 0, max: 300 }).map(String), fc.integer({ min: 0, max: 99 }).map((n) => `0${n}`), fc.constantFrom('', 'x', '+1', ' 1'));
    // IPv6 text (with a colon) goes to ip-address as before.
    const text = fc.oneof(fc.array(octet, { minLength: 3, maxLength: 5 }).map((o) => o.join('.')), fc.string()).filter((s) => !s.includes(':') && !s.includes('/'));
    fc.assert(
      fc.property(text, (s) => {
        const valid = Address4.isValid(s);
        expect(isAddress(s)).toBe(valid);
        if (valid) {
          expect(addrToBigInt(s)).toBe(new Address4(s).bigInt());
          expect([...addrToBytes(s)]).toEqual(new Address4(s).toArray());
        } else {
          expect(() => addrToBigInt(s)).toThrow(/invalid IP address/);
        }
      }),
      { numRuns: 2000 },
    );
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 0xffffffff }), (n) => {
        expect(bigIntToAddr(BigInt(n), 4)).toBe(Address4.fromBigInt(BigInt(n)).address);
      }),
    );
  });
});
