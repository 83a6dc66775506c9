/**
 * Inputs a fabric sends on the first day (issue 14 §1), at the codec: host
 * bits, eBGP-only attributes, confederation segments, AS paths past one
 * segment, and messages too long for the wire.
 */
import { describe, it, expect } from 'vitest';
import {
  decodeMessage, encodeMessage, interpretUpdate, buildAnnouncements, fitAttrs, isMartianNextHop, TooLong,
  IPV4_UNICAST, IPV6_UNICAST, type UpdateMessage, type CodecOptions, type RouteAttrs,
} from './index';

const hex = (s: string) => Buffer.from(s.replace(/\s+/g, ''), 'hex');
function attr(flags: number, type: number, value: string): Buffer {
  const v = hex(value);
  return Buffer.concat([Buffer.from([flags, type, v.length]), v]);
}
function update(attrs: Buffer[], nlri: string): Buffer {
  const a = Buffer.concat(attrs);
  const body = Buffer.concat([hex('0000'), Buffer.from([a.length >> 8, a.length & 0xff]), a, hex(nlri)]);
  const h = Buffer.alloc(19, 0xff);
  h.writeUInt16BE(19 + body.length, 16);
  h[18] = 2;
  return Buffer.concat([h, body]);
}
const ORIGIN = attr(0x40, 1, '00');
const PATH = attr(0x40, 2, '02010000fde8'); // AS_SEQUENCE 65000
const NH = attr(0x40, 3, 'c6120001');
const AS4: CodecOptions = { as4: true };
const EBGP: CodecOptions = { as4: true, ebgp: true };
const decodeU = (b: Buffer, o: CodecOptions) => decodeMessage(b, o) as UpdateMessage;

describe('NLRI trailing bits (RFC 4271 §4.3: irrelevant)', () => {
  const table = [
    { nlri: '17 0a4d01', want: '10.77.0.0/23' }, // 10.77.1.0/23
    { nlri: '19 0a4d01ff', want: '10.77.1.128/25' },
    { nlri: '01 ff', want: '128.0.0.0/1' },
    { nlri: '20 0a4d0101', want: '10.77.1.1/32' },
    { nlri: '00', want: '0.0.0.0/0' },
  ];
  for (const t of table) {
    it(`${t.nlri} -> ${t.want}`, () => {
      expect(decodeU(update([ORIGIN, PATH, NH], t.nlri), AS4).nlri).toEqual([{ prefix: t.want }]);
    });
  }
  it('IPv6 in MP_REACH: 2001:db8:1:ff::/63 is 2001:db8:1:fe::/63', () => {
    const mp = attr(0x80, 14, '0002 01 10 20010db8000000000000000000000001 00 3f 20010db8000100ff');
    expect(interpretUpdate(decodeU(update([mp, ORIGIN, PATH], ''), AS4), AS4).families[0].announce).toEqual([{ prefix: '2001:db8:1:fe::/63' }]);
  });
});

describe('RFC 7606 for external peers', () => {
  const badLocalPref = attr(0x40, 5, '000064'); // 3 octets
  it('a malformed LOCAL_PREF from eBGP is discarded (§7.5), the route stays', () => {
    const m = decodeU(update([ORIGIN, PATH, NH, badLocalPref], '18 0a0001'), EBGP);
    expect(m.action).toBe('attribute-discard');
    const ch = interpretUpdate(m, EBGP);
    expect(ch.families[0].announce).toEqual([{ prefix: '10.0.1.0/24' }]);
    expect(ch.families[0].attrs?.localPref).toBeUndefined();
  });
  it('the same from iBGP is treat-as-withdraw', () => {
    expect(decodeU(update([ORIGIN, PATH, NH, badLocalPref], '18 0a0001'), AS4).action).toBe('treat-as-withdraw');
  });
  it('malformed ORIGINATOR_ID and CLUSTER_LIST from eBGP are discarded (§7.9, §7.10)', () => {
    expect(decodeU(update([ORIGIN, PATH, NH, attr(0x80, 9, '0102')], '18 0a0001'), EBGP).action).toBe('attribute-discard');
    expect(decodeU(update([ORIGIN, PATH, NH, attr(0x80, 10, '010203')], '18 0a0001'), EBGP).action).toBe('attribute-discard');
    expect(decodeU(update([ORIGIN, PATH, NH, attr(0x80, 9, '0102')], '18 0a0001'), AS4).action).toBe('treat-as-withdraw');
  });
  for (const [name, seg] of [['AS_CONFED_SEQUENCE', '03'], ['AS_CONFED_SET', '04']]) {
    it(`${name} from eBGP is treat-as-withdraw (RFC 5065 §5, RFC 7606 §7.2)`, () => {
      const p = attr(0x40, 2, `${seg}010000fde9 02010000fde8`);
      const m = decodeU(update([ORIGIN, p, NH], '18 0a0001'), EBGP);
      expect(m.action).toBe('treat-as-withdraw');
      expect(interpretUpdate(m, EBGP).families[0]).toMatchObject({ announce: [], withdraw: [{ prefix: '10.0.1.0/24' }] });
      expect(decodeU(update([ORIGIN, p, NH], '18 0a0001'), AS4).action).toBeUndefined();
    });
  }
});

describe('AS paths longer than one segment', () => {
  it('a 256-AS sequence goes out as 255 + 1 and reads back the same', () => {
    const asns = Array.from({ length: 256 }, (_, i) => 64512 + i);
    const attrs: RouteAttrs = { origin: 0, asPath: [{ type: 2, asns }], nextHop: '198.18.0.1' };
    const [b] = buildAnnouncements(IPV4_UNICAST, attrs, [{ prefix: '10.0.0.0/24' }], AS4);
    const m = decodeU(b, AS4);
    const segs = (m.attrs.find((a) => a.kind === 'as-path') as { segments: { type: number; asns: number[] }[] }).segments;
    expect(segs.map((s) => s.asns.length)).toEqual([255, 1]);
    expect(segs.flatMap((s) => s.asns)).toEqual(asns);
  });
});

describe('messages too long for the peer (RFC 8654)', () => {
  const big = (n: number): RouteAttrs => ({ origin: 0, asPath: [{ type: 2, asns: [65000] }], nextHop: '198.18.0.1', largeCommunities: Array.from({ length: n }, (_, i) => [65000, i, 1] as [number, number, number]) });
  it('attributes that fit 4096 octets are kept', () => {
    const a = big(300); // 3600 octets
    expect(fitAttrs(IPV4_UNICAST, a, AS4)).toBe(a);
  });
  it('attributes over 4096 octets fit only an Extended Message peer', () => {
    const a = big(1000); // 12000 octets
    expect(fitAttrs(IPV4_UNICAST, a, AS4)).toBeUndefined();
    expect(fitAttrs(IPV4_UNICAST, a, { ...AS4, extendedMessage: true })).toBe(a);
    expect(() => buildAnnouncements(IPV4_UNICAST, a, [{ prefix: '10.0.0.0/24' }], AS4)).toThrow(TooLong);
  });
  it('attributes over 65535 octets fit nobody, and nothing throws a RangeError', () => {
    const a = big(5500); // 66000 octets: more than one attribute can hold
    expect(fitAttrs(IPV4_UNICAST, a, { ...AS4, extendedMessage: true })).toBeUndefined();
    expect(fitAttrs(IPV6_UNICAST, a, { ...AS4, extendedMessage: true })).toBeUndefined();
    expect(() => encodeMessage({ type: 2, withdrawn: [], nlri: [], attrs: [{ kind: 'unknown', flags: 0xc0, code: 99, data: Buffer.alloc(65530) }] }, AS4)).toThrow(TooLong);
  });
  it('dropping AGGREGATOR and ATOMIC_AGGREGATE is tried first (attribute discard)', () => {
    // 4096 - 19 - 4 - ORIGIN 4 - AS_PATH 9 - NEXT_HOP 7 - NLRI 5 = 4048; LARGE_COMMUNITY 4 + 12n; AGGREGATOR 11.
    const a: RouteAttrs = { ...big(336), aggregator: { asn: 65000, address: '198.18.0.1' }, atomicAggregate: true };
    const fit = fitAttrs(IPV4_UNICAST, a, AS4)!;
    expect(fit.aggregator).toBeUndefined();
    expect(fit.largeCommunities).toHaveLength(336);
    expect(buildAnnouncements(IPV4_UNICAST, fit, [{ prefix: '10.0.0.0/24' }], AS4)[0].length).toBeLessThanOrEqual(4096);
  });
  it('many routes with small attributes are split into messages of at most 4096 octets', () => {
    const nlri = Array.from({ length: 2000 }, (_, i) => ({ prefix: `10.${i >> 8}.${i & 255}.0/24` }));
    const bufs = buildAnnouncements(IPV4_UNICAST, big(200), nlri, AS4);
    expect(bufs.length).toBeGreaterThan(1);
    for (const b of bufs) expect(b.length).toBeLessThanOrEqual(4096);
    expect(bufs.flatMap((b) => decodeU(b, AS4).nlri)).toEqual(nlri);
  });
});

describe('martian next hops (RFC 4271 §6.3)', () => {
  const table: [string, boolean][] = [
    ['0.0.0.0', true], ['127.0.0.1', true], ['224.0.0.5', true], ['255.255.255.255', true], ['garbage', true],
    ['198.18.0.2', false], ['10.0.0.1', false],
    ['::', true], ['::1', true], ['ff02::1', true], ['2001:db8::1', false], ['fe80::1', false],
  ];
  for (const [a, want] of table) it(`${a}: ${want}`, () => expect(isMartianNextHop(a)).toBe(want));
});
