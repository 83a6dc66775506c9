import { describe, it, expect } from 'vitest';
import fc from 'fast-check';
import {
  decodeMessage, encodeMessage, frameLength, isBgpProtocolError, interpretUpdate, buildAnnouncements, buildWithdrawals, mergeAs4Path,
  negotiate, buildOpen, endOfRib, endOfRibFamily, v4PrefixKey, v4KeyText, v4KeyLength, v4KeyOctets, parsePrefix, maskBytes, canonicalPrefix, IPV4_UNICAST, IPV6_UNICAST, AS_TRANS, type UpdateMessage, type CodecOptions, type RouteAttrs,
} from './index';

const AS2: CodecOptions = { as4: false };
const AS4: CodecOptions = { as4: true };

function msg(type: number, body: string | Buffer): Buffer {
  const b = typeof body === 'string' ? Buffer.from(body.replace(/\s+/g, ''), 'hex') : body;
  const h = Buffer.alloc(19, 0xff);
  h.writeUInt16BE(19 + b.length, 16);
  h[18] = type;
  return Buffer.concat([h, b]);
}
const hex = (s: string) => Buffer.from(s.replace(/\s+/g, ''), 'hex');
function attr(flags: number, type: number, value: string): Buffer {
  const v = hex(value);
  return Buffer.concat([Buffer.from([flags, type, v.length]), v]);
}
function update(withdrawn: string, attrs: Buffer[], nlri: string): Buffer {
  const w = hex(withdrawn);
  const a = Buffer.concat(attrs);
  const wl = Buffer.alloc(2);
  wl.writeUInt16BE(w.length);
  const al = Buffer.alloc(2);
  al.writeUInt16BE(a.length);
  return msg(2, Buffer.concat([wl, w, al, a, hex(nlri)]));
}
const ORIGIN = attr(0x40, 1, '00');
const PATH2 = attr(0x40, 2, '0201fde8'); // AS_SEQUENCE 65000
const PATH4 = attr(0x40, 2, '02010000fde8');
const NH = attr(0x40, 3, 'c6120001');
const NLRI = '18 0a0001'; // 10.0.1.0/24

type Expect = { notify: [number, number] } | { action: 'treat-as-withdraw' | 'attribute-discard' };
const malformed: { name: string; bytes: Buffer; opts?: CodecOptions; expect: Expect }[] = [
  { name: 'marker not all ones', bytes: Buffer.concat([Buffer.alloc(16, 0xfe), hex('001304')]), expect: { notify: [1, 1] } },
  { name: 'length below 19', bytes: Buffer.concat([Buffer.alloc(16, 0xff), hex('001204')]), expect: { notify: [1, 2] } },
  { name: 'length above 4096', bytes: (() => { const b = msg(4, ''); b.writeUInt16BE(5000, 16); return b; })(), expect: { notify: [1, 2] } },
  { name: 'KEEPALIVE with a body', bytes: msg(4, '00'), expect: { notify: [1, 2] } },
  { name: 'unknown message type', bytes: msg(9, ''), expect: { notify: [1, 3] } },
  { name: 'UPDATE too short', bytes: msg(2, '00'), expect: { notify: [1, 2] } },
  { name: 'NOTIFICATION too short', bytes: msg(3, '06'), expect: { notify: [1, 2] } },
  { name: 'OPEN version 3', bytes: msg(1, '03 fde8 00b4 c0000201 00'), expect: { notify: [2, 1] } },
  { name: 'OPEN hold time 2', bytes: msg(1, '04 fde8 0002 c0000201 00'), expect: { notify: [2, 6] } },
  { name: 'OPEN identifier zero', bytes: msg(1, '04 fde8 00b4 00000000 00'), expect: { notify: [2, 3] } },
  { name: 'OPEN unsupported optional parameter', bytes: msg(1, '04 fde8 00b4 c0000201 03 01 01 00'), expect: { notify: [2, 4] } },
  { name: 'OPEN capability overruns', bytes: msg(1, '04 fde8 00b4 c0000201 04 02 02 4104'), expect: { notify: [2, 0] } },
  { name: 'ROUTE-REFRESH bad length', bytes: msg(5, '0001000100'), expect: { notify: [7, 1] } },
  { name: 'withdrawn length overruns', bytes: msg(2, '00ff 0000'), expect: { notify: [3, 1] } },
  { name: 'attribute length overruns message', bytes: msg(2, '0000 00ff 400101'), expect: { notify: [3, 1] } },
  { name: 'NLRI prefix length 33', bytes: update('', [ORIGIN, PATH2, NH], '21 0a000100 00'), expect: { notify: [3, 10] } },
  { name: 'NLRI prefix overruns', bytes: update('', [ORIGIN, PATH2, NH], '18 0a00'), expect: { notify: [3, 10] } },
  { name: 'withdrawn prefix length 40', bytes: update('28 0a00000000', [], ''), expect: { notify: [3, 10] } },
  { name: 'unrecognized well-known attribute', bytes: update('', [ORIGIN, PATH2, NH, attr(0x40, 99, '00')], NLRI), expect: { notify: [3, 2] } },
  { name: 'duplicate MP_REACH', bytes: update('', [ORIGIN, PATH2, attr(0x80, 14, '0002 01 10 20010db8000000000000000000000001 00 20 20010db8'), attr(0x80, 14, '0002 01 10 20010db8000000000000000000000001 00 20 20010db8')], ''), expect: { notify: [3, 1] } },
  { name: 'MP_REACH bad next hop length', bytes: update('', [ORIGIN, PATH2, attr(0x80, 14, '0002 01 05 2001000000 00 20 20010db8')], ''), expect: { notify: [3, 9] } },
  { name: 'MP_REACH with bad flags', bytes: update('', [ORIGIN, PATH2, attr(0x40, 14, '0002 01 10 20010db8000000000000000000000001 00 20 20010db8')], ''), expect: { notify: [3, 4] } },
  { name: 'MP_REACH prefix length 129', bytes: update('', [ORIGIN, PATH2, attr(0x80, 14, '0002 01 10 20010db8000000000000000000000001 00 81 20010db8')], ''), expect: { notify: [3, 10] } },
  // RFC 7606 treat-as-withdraw
  { name: 'ORIGIN value 3', bytes: update('', [attr(0x40, 1, '03'), PATH2, NH], NLRI), expect: { action: 'treat-as-withdraw' } },
  { name: 'ORIGIN length 2', bytes: update('', [attr(0x40, 1, '0000'), PATH2, NH], NLRI), expect: { action: 'treat-as-withdraw' } },
  { name: 'ORIGIN flagged optional', bytes: update('', [attr(0xc0, 1, '00'), PATH2, NH], NLRI), expect: { action: 'treat-as-withdraw' } },
  { name: 'AS_PATH segment overruns', bytes: update('', [ORIGIN, attr(0x40, 2, '0205fde8'), NH], NLRI), expect: { action: 'treat-as-withdraw' } },
  { name: 'AS_PATH bad segment type', bytes: update('', [ORIGIN, attr(0x40, 2, '0701fde8'), NH], NLRI), expect: { action: 'treat-as-withdraw' } },
  { name: 'AS_PATH 2-octet on a 4-octet session', bytes: update('', [ORIGIN, attr(0x40, 2, '0201fde8'), NH], NLRI), opts: AS4, expect: { action: 'treat-as-withdraw' } },
  { name: 'NEXT_HOP length 5', bytes: update('', [ORIGIN, PATH2, attr(0x40, 3, 'c612000100')], NLRI), expect: { action: 'treat-as-withdraw' } },
  { name: 'missing NEXT_HOP', bytes: update('', [ORIGIN, PATH2], NLRI), expect: { action: 'treat-as-withdraw' } },
  { name: 'missing ORIGIN', bytes: update('', [PATH2, NH], NLRI), expect: { action: 'treat-as-withdraw' } },
  { name: 'missing AS_PATH with MP_REACH', bytes: update('', [ORIGIN, attr(0x80, 14, '0002 01 10 20010db8000000000000000000000001 00 20 20010db8')], ''), expect: { action: 'treat-as-withdraw' } },
  { name: 'MED length 3', bytes: update('', [ORIGIN, PATH2, NH, attr(0x80, 4, '000001')], NLRI), expect: { action: 'treat-as-withdraw' } },
  { name: 'LOCAL_PREF length 2', bytes: update('', [ORIGIN, PATH2, NH, attr(0x40, 5, '0064')], NLRI), expect: { action: 'treat-as-withdraw' } },
  { name: 'COMMUNITIES length 5', bytes: update('', [ORIGIN, PATH2, NH, attr(0xc0, 8, 'fde8000101')], NLRI), expect: { action: 'treat-as-withdraw' } },
  { name: 'LARGE_COMMUNITY length 8', bytes: update('', [ORIGIN, PATH2, NH, attr(0xc0, 32, '0000fde800000001')], NLRI), expect: { action: 'treat-as-withdraw' } },
  { name: 'ORIGINATOR_ID length 3', bytes: update('', [ORIGIN, PATH2, NH, attr(0x80, 9, 'c00002')], NLRI), expect: { action: 'treat-as-withdraw' } },
  { name: 'CLUSTER_LIST length 6', bytes: update('', [ORIGIN, PATH2, NH, attr(0x80, 10, 'c0000201c000')], NLRI), expect: { action: 'treat-as-withdraw' } },
  { name: 'last attribute overruns the attribute field', bytes: update('', [ORIGIN, PATH2, NH, hex('800405000000')], NLRI), expect: { action: 'treat-as-withdraw' } },
  // RFC 7606 attribute-discard
  { name: 'ATOMIC_AGGREGATE length 1', bytes: update('', [ORIGIN, PATH2, NH, attr(0x40, 6, '00')], NLRI), expect: { action: 'attribute-discard' } },
  { name: 'AGGREGATOR length 7 on a 2-octet session', bytes: update('', [ORIGIN, PATH2, NH, attr(0xc0, 7, 'fde8c000020100')], NLRI), expect: { action: 'attribute-discard' } },
  { name: 'AS4_PATH segment overruns', bytes: update('', [ORIGIN, PATH2, NH, attr(0xc0, 17, '0202000000010000')], NLRI), expect: { action: 'attribute-discard' } },
  { name: 'duplicate ORIGIN', bytes: update('', [ORIGIN, ORIGIN, PATH2, NH], NLRI), expect: { action: 'attribute-discard' } },
];

describe('malformed corpus', () => {
  for (const c of malformed) {
    it(c.name, () => {
      const o = c.opts ?? AS2;
      if ('notify' in c.expect) {
        let err: unknown;
        try {
          decodeMessage(c.bytes, o);
        } catch (e) {
          err = e;
        }
        expect(isBgpProtocolError(err), String(err)).toBe(true);
        const e = err as { notifyCode: number; notifySubcode: number };
        expect([e.notifyCode, e.notifySubcode]).toEqual(c.expect.notify);
      } else {
        const m = decodeMessage(c.bytes, o) as UpdateMessage;
        expect(m.type).toBe(2);
        expect(m.action).toBe(c.expect.action);
        const ch = interpretUpdate(m, o);
        const announced = ch.families.flatMap((f) => f.announce);
        if (c.expect.action === 'treat-as-withdraw') {
          expect(announced).toEqual([]);
          expect(ch.families.flatMap((f) => f.withdraw).length).toBeGreaterThan(0);
        } else expect(announced.length).toBeGreaterThan(0);
      }
    });
  }
});

describe('UPDATE building and reading', () => {
  const attrs: RouteAttrs = {
    origin: 0,
    asPath: [{ type: 2, asns: [4200000001, 65001] }],
    nextHop: '198.18.0.1',
    med: 10,
    localPref: 200,
    communities: [0xfde80001],
    largeCommunities: [[4200000001, 1, 2]],
    originatorId: '192.0.2.9',
    clusterList: ['192.0.2.1'],
    unknown: [{ flags: 0xc0, code: 99, data: Buffer.from('abcd', 'hex') }, { flags: 0x80, code: 98, data: Buffer.from('01', 'hex') }],
  };
  const prefixes = Array.from({ length: 3000 }, (_, i) => ({ prefix: `10.${(i >> 8) & 255}.${i & 255}.0/24` }));

  const cases: { name: string; family: number; opts: CodecOptions; nh: string; list: { prefix: string; pathId?: number }[] }[] = [
    { name: 'IPv4, 4-octet session', family: IPV4_UNICAST, opts: AS4, nh: '198.18.0.1', list: prefixes },
    { name: 'IPv4, 2-octet session (AS4_PATH)', family: IPV4_UNICAST, opts: AS2, nh: '198.18.0.1', list: prefixes },
    { name: 'IPv6 with ADD-PATH', family: IPV6_UNICAST, opts: { as4: true, addPath: new Set([IPV6_UNICAST]) }, nh: '2001:db8::1', list: Array.from({ length: 900 }, (_, i) => ({ prefix: `2001:db8:${(i + 1).toString(16)}::/48`, pathId: i + 1 })) },
    { name: 'IPv4, extended messages', family: IPV4_UNICAST, opts: { as4: true, extendedMessage: true }, nh: '198.18.0.1', list: prefixes },
  ];
  for (const c of cases) {
    it(c.name, () => {
      const bufs = buildAnnouncements(c.family, { ...attrs, nextHop: c.nh }, c.list, c.opts);
      const max = c.opts.extendedMessage ? 65535 : 4096;
      expect(bufs.length).toBeGreaterThan(c.opts.extendedMessage ? 0 : 1);
      const got: string[] = [];
      for (const b of bufs) {
        expect(b.length).toBeLessThanOrEqual(max);
        const m = decodeMessage(b, c.opts) as UpdateMessage;
        expect(encodeMessage(m, c.opts).equals(b)).toBe(true);
        const ch = interpretUpdate(m, c.opts);
        const f = ch.families[0];
        expect(f.family).toBe(c.family);
        expect(f.attrs!.asPath).toEqual(attrs.asPath); // real 4-octet path either way
        expect(f.attrs!.nextHop).toBe(c.nh);
        expect(f.attrs!.largeCommunities).toEqual(attrs.largeCommunities);
        // Unknown optional transitive passes with Partial set; non-transitive is dropped.
        expect(f.attrs!.unknown).toEqual([{ flags: 0xe0, code: 99, data: Buffer.from('abcd', 'hex') }]);
        got.push(...f.announce.map((n) => `${n.prefix}#${n.pathId ?? ''}`));
      }
      expect(got).toEqual(c.list.map((n) => `${n.prefix}#${n.pathId ?? ''}`));
      const w = buildWithdrawals(c.family, c.list, c.opts).flatMap((b) => interpretUpdate(decodeMessage(b, c.opts) as UpdateMessage, c.opts).families.flatMap((f) => f.withdraw));
      expect(w.map((n) => n.prefix)).toEqual(c.list.map((n) => n.prefix));
    });
  }

  it('2-octet session carries AS_TRANS in AS_PATH', () => {
    const [b] = buildAnnouncements(IPV4_UNICAST, attrs, prefixes.slice(0, 1), AS2);
    const m = decodeMessage(b, AS2) as UpdateMessage;
    const p = m.attrs.find((a) => a.kind === 'as-path') as { segments: { asns: number[] }[] };
    expect(p.segments[0].asns).toEqual([AS_TRANS, 65001]);
    expect(m.attrs.some((a) => a.kind === 'as4-path')).toBe(true);
  });

  it('End-of-RIB markers for both families', () => {
    for (const [afi, fam] of [[1, IPV4_UNICAST], [2, IPV6_UNICAST]]) {
      const b = encodeMessage(endOfRib(afi, 1), AS4);
      const m = decodeMessage(b, AS4) as UpdateMessage;
      expect(endOfRibFamily(m)).toEqual({ afi, safi: 1 });
      expect(interpretUpdate(m, AS4).endOfRib).toBe(fam);
    }
  });
});

describe('RFC 6793 AS path reconstruction', () => {
  const seq = (...asns: number[]) => ({ type: 2, asns });
  const table = [
    { name: 'all 4-octet in AS4_PATH', asPath: [seq(AS_TRANS, AS_TRANS)], as4: [seq(4200000001, 4200000002)], want: [seq(4200000001, 4200000002)] },
    { name: 'old speaker prepended', asPath: [seq(65001, AS_TRANS)], as4: [seq(4200000002)], want: [seq(65001), seq(4200000002)] },
    { name: 'AS4_PATH longer is ignored', asPath: [seq(65001)], as4: [seq(1, 2)], want: [seq(65001)] },
    { name: 'set counts as one', asPath: [seq(65001), { type: 1, asns: [1, 2, 3] }], as4: [{ type: 1, asns: [1, 2, 3] }], want: [seq(65001), { type: 1, asns: [1, 2, 3] }] },
  ];
  for (const t of table) it(t.name, () => expect(mergeAs4Path(t.asPath, t.as4)).toEqual(t.want));
});

describe('capability negotiation', () => {
  const base = { asn: 65001, routerId: '192.0.2.1', holdTime: 90, families: [IPV4_UNICAST, IPV6_UNICAST] };
  it('takes the smaller hold time, common families, 4-octet AS', () => {
    const a = buildOpen(base);
    const b = buildOpen({ ...base, asn: 4200000001, routerId: '192.0.2.2', holdTime: 30, families: [IPV4_UNICAST] });
    expect(b.myAs).toBe(AS_TRANS);
    const n = negotiate(a, decodeMessage(encodeMessage(b, AS2), AS2) as never);
    expect(n).toMatchObject({ peerAs: 4200000001, holdTime: 30, as4: true, extendedMessage: true });
    expect([...n.families]).toEqual([IPV4_UNICAST]);
  });
  it('ADD-PATH receive only when the peer sends', () => {
    const a = buildOpen({ ...base, addPathReceive: true });
    const b = decodeMessage(hexOpenWithAddPathSend(), AS2) as never;
    const n = negotiate(a, b);
    expect([...n.addPathReceive]).toEqual([IPV4_UNICAST]);
    expect(n.addPathSend.size).toBe(0);
  });
  it('ignores unknown capabilities and reads graceful restart', () => {
    const o = decodeMessage(msg(1, '04 fde9 00b4 c0000202 10 02 0e 4902 0000 4006 8078 00010180 0200'), AS2) as never;
    const n = negotiate(buildOpen(base), o);
    expect(n.peerGracefulRestart).toEqual({ restartTime: 120, restarting: true, families: new Map([[IPV4_UNICAST, true]]) });
  });
});

function hexOpenWithAddPathSend(): Buffer {
  // MP IPv4 unicast + ADD-PATH IPv4 unicast send
  return msg(1, '04 fde9 00b4 c0000202 0e 02 0c 0104 00010001 4504 00010102');
}

describe('decoder fuzzing', () => {
  const opts = fc.record({ as4: fc.boolean(), extendedMessage: fc.boolean(), addPath: fc.boolean() }).map((o) => ({ as4: o.as4, extendedMessage: o.extendedMessage, addPath: o.addPath ? new Set([IPV4_UNICAST, IPV6_UNICAST]) : undefined }));
  it('random bodies after a valid header: only typed errors', () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 6 }), fc.uint8Array({ maxLength: 300 }), opts, (type, body, o) => {
        const b = msg(type, Buffer.from(body));
        try {
          const m = decodeMessage(b, o);
          if (m.type === 2) interpretUpdate(m, o);
        } catch (e) {
          if (!isBgpProtocolError(e)) throw e;
        }
      }),
      { numRuns: 3000 },
    );
  });
  it('mutations of a valid UPDATE: only typed errors, re-encode never throws', () => {
    const seed = update('18 0a0002', [ORIGIN, PATH4, NH, attr(0xc0, 8, 'fde80001'), attr(0x80, 14, '0002 01 10 20010db8000000000000000000000001 00 20 20010db8')], NLRI);
    fc.assert(
      fc.property(fc.array(fc.tuple(fc.nat(seed.length - 20), fc.integer({ min: 0, max: 255 })), { maxLength: 6 }), fc.nat(seed.length - 19), opts, (muts, cut, o) => {
        const b = Buffer.from(seed.subarray(0, 19 + cut));
        b.writeUInt16BE(b.length, 16);
        for (const [i, v] of muts) if (19 + i < b.length) b[19 + i] = v;
        try {
          const m = decodeMessage(b, o);
          encodeMessage(m, o);
          if (m.type === 2) interpretUpdate(m, o);
        } catch (e) {
          if (!isBgpProtocolError(e)) throw e;
        }
      }),
      { numRuns: 5000 },
    );
  });
  it('stream framing of random bytes: only typed errors', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 100 }), (bytes) => {
        try {
          frameLength(Buffer.concat([Buffer.alloc(16, 0xff), Buffer.from(bytes)]), 0);
        } catch (e) {
          if (!isBgpProtocolError(e)) throw e;
        }
      }),
    );
  });
});

describe('IPv4 prefix keys', () => {
  const table: [string, number | undefined, string?][] = [
    ['0.0.0.0/0', 1],
    ['10.0.0.0/8', 2 ** 8 + 10],
    ['10.1.2.64/26', 2 ** 26 + ((10 << 18) | (1 << 10) | (2 << 2) | 1)],
    ['10.1.2.3/24', 2 ** 24 + ((10 << 16) | (1 << 8) | 2), '10.1.2.0/24'], // host bits ignored
    ['255.255.255.254/31', 2 ** 31 + 2 ** 31 - 1],
    ['255.255.255.255/32', 2 ** 33 - 1],
    ['10.0.0.0/33', undefined],
    ['10.0.0/8', undefined],
    ['10.0.0.256/8', undefined],
    ['2001:db8::/32', undefined],
    ['10.0.0.0', undefined],
  ];
  for (const [text, key, back] of table) {
    it(`${text} -> ${key}`, () => {
      expect(v4PrefixKey(text)).toBe(key);
      if (key !== undefined) expect(v4KeyText(key)).toBe(back ?? text);
    });
  }
  it('round-trips any prefix through its key, canonically, and keeps the length', () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 2 ** 32 - 1 }), fc.integer({ min: 0, max: 32 }), (a, len) => {
        const text = `${a >>> 24}.${(a >>> 16) & 255}.${(a >>> 8) & 255}.${a & 255}/${len}`;
        const key = v4PrefixKey(text)!;
        expect(v4KeyLength(key)).toBe(len);
        expect(v4KeyText(key)).toBe(canonicalPrefix(text));
      }),
    );
  });
  // The kernel's RTA_DST from a key: the network octets (host bits zero, RFC 4271 §4.3) and the length.
  const octets: [string, number[], number][] = [
    ['0.0.0.0/0', [0, 0, 0, 0], 0],
    ['255.255.255.255/0', [0, 0, 0, 0], 0],
    ['128.0.0.0/1', [128, 0, 0, 0], 1],
    ['200.1.2.3/1', [128, 0, 0, 0], 1],
    ['127.255.255.255/1', [0, 0, 0, 0], 1],
    ['10.1.2.3/24', [10, 1, 2, 0], 24],
    ['10.1.2.77/26', [10, 1, 2, 64], 26],
    ['10.70.4.5/31', [10, 70, 4, 4], 31],
    ['255.255.255.255/31', [255, 255, 255, 254], 31],
    ['10.70.5.7/32', [10, 70, 5, 7], 32],
    ['255.255.255.255/32', [255, 255, 255, 255], 32],
  ];
  for (const [text, bytes, len] of octets) {
    it(`${text}: RTA_DST ${bytes.join('.')}, length ${len}`, () => {
      const out = new Uint8Array(4).fill(0xaa);
      expect(v4KeyOctets(v4PrefixKey(text)!, out)).toBe(len);
      expect([...out]).toEqual(bytes);
    });
  }
  it('writes the same octets as parsing and masking the text', () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 2 ** 32 - 1 }), fc.integer({ min: 0, max: 32 }), (a, len) => {
        const text = `${a >>> 24}.${(a >>> 16) & 255}.${(a >>> 8) & 255}.${a & 255}/${len}`;
        const p = parsePrefix(text);
        maskBytes(p.bytes, p.len);
        const out = new Uint8Array(4);
        expect(v4KeyOctets(v4PrefixKey(text)!, out)).toBe(p.len);
        expect(Buffer.from(out)).toEqual(p.bytes);
      }),
    );
  });
});
