import { describe, expect, it } from 'vitest';
import { ttlFor } from './speaker';
import { validateConfig } from './config';

describe('ttlFor: the TTL sent and the lowest accepted, per peer', () => {
  const table: [string, Parameters<typeof ttlFor>[0], ReturnType<typeof ttlFor>][] = [
    ['eBGP is single-hop by default', { asn: 65002 }, { ttl: 1, minTtl: 0 }],
    ['eBGP multihop', { asn: 65002, multihop: 3 }, { ttl: 3, minTtl: 0 }],
    ['iBGP keeps the kernel default', { asn: 65001 }, undefined],
    ['iBGP with an explicit TTL', { asn: 65001, multihop: 10 }, { ttl: 10, minTtl: 0 }],
    ['GTSM, directly connected', { asn: 65002, ttlSecurity: true }, { ttl: 255, minTtl: 255 }],
    ['GTSM, two hops away', { asn: 65002, ttlSecurity: 2 }, { ttl: 255, minTtl: 254 }],
  ];
  for (const [name, peer, want] of table) it(name, () => expect(ttlFor(peer, 65001)).toEqual(want));
});

describe('peer TTL settings are validated with the field named', () => {
  const cfg = (peer: object) => () => validateConfig({ asn: 65001, routerId: '192.0.2.1', peers: [{ address: '192.0.2.2', asn: 65002, ...peer }] });
  it('multihop must be a TTL', () => expect(cfg({ multihop: 0 })).toThrow(/peers\[0\]\.multihop/));
  it('ttlSecurity must be true or a hop count', () => expect(cfg({ ttlSecurity: 255 })).toThrow(/peers\[0\]\.ttlSecurity/));
  it('GTSM and multihop exclude each other', () => expect(cfg({ ttlSecurity: true, multihop: 2 })).toThrow(/cannot be combined/));
  it('a password longer than 80 bytes is refused', () => expect(cfg({ password: 'x'.repeat(81) })).toThrow(/peers\[0\]\.password/));
});
