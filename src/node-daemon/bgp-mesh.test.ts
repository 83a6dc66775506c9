import { describe, expect, it } from 'vitest';
import { blockAttrs, desiredPeers, type BgpSettings } from './bgp-mesh';
import type { NodeRecord } from './registry';
import { normalisePool } from '../ipam/model';

const node = (name: string, addresses: string[], asn?: number): NodeRecord => ({ name, addresses, asn, labels: {}, updated: '' });
const base: BgpSettings = { asn: 64512, mesh: true, peers: [], port: 179, restartTime: 120, importPools: [] };

describe('desiredPeers', () => {
  it('peers with every other node on its first IPv4 address, with its ASN or ours', () => {
    const nodes = [node('n1', ['192.0.2.11/24']), node('n2', ['2001:db8::12/64', '192.0.2.12/24'], 64513), node('n3', ['2001:db8::13/64'])];
    expect(desiredPeers('n1', nodes, base).map((p) => [p.address, p.asn])).toEqual([
      ['192.0.2.12', 64513],
      ['2001:db8::13', 64512],
    ]);
  });

  it('skips nodes without addresses; mesh off keeps only explicit peers', () => {
    const nodes = [node('n1', []), node('n2', [])];
    expect(desiredPeers('n1', nodes, base)).toEqual([]);
    const explicit = { ...base, mesh: false, peers: [{ address: '198.51.100.1', asn: 65000 }] };
    expect(desiredPeers('n1', [node('n2', ['192.0.2.12/24'])], explicit)).toEqual([{ address: '198.51.100.1', asn: 65000, port: 179 }]);
  });

  it('import filters come from the configured pools', () => {
    const s = { ...base, importPools: ['10.244.0.0/16', 'fd00:10:244::/48'] };
    expect(desiredPeers('n1', [node('n2', ['192.0.2.12/24'])], s)[0].importPrefixes).toEqual(['10.244.0.0/16 le 32', 'fd00:10:244::/48 le 128']);
  });
});

describe('blockAttrs: a block is advertised with its pool\'s communities', () => {
  const pools = [
    normalisePool({ cidr: '10.244.0.0/16', communities: ['64512:100', '64512:1:2'] }),
    normalisePool({ cidr: '10.245.0.0/16' }),
    normalisePool({ cidr: 'fd00:10::/48', communities: ['65535:65535'] }),
  ];
  const table: [string, ReturnType<typeof blockAttrs>][] = [
    ['10.244.3.0/26', { communities: [64512 * 65536 + 100], largeCommunities: [[64512, 1, 2]] }],
    ['10.245.0.64/26', {}],
    ['10.9.0.0/26', {}], // in no pool
    ['fd00:10::/122', { communities: [0xffffffff] }],
  ];
  for (const [block, want] of table) it(block, () => expect(blockAttrs(block, pools)).toEqual(want));
  it('rejects malformed communities with the pool named', () => {
    expect(() => normalisePool({ cidr: '10.1.0.0/16', communities: ['65536:1'] })).toThrow(/pool 10.1.0.0\/16: community "65536:1"/);
    expect(() => normalisePool({ cidr: '10.1.0.0/16', communities: ['1:2:3:4'] })).toThrow(/community/);
    expect(normalisePool({ cidr: '10.1.0.0/16', communities: ['0065000:007'] }).communities).toEqual(['65000:7']);
  });
});

describe('desiredPeers with route reflectors instead of the mesh', () => {
  const rr = (name: string, ip: string): NodeRecord => ({ name, addresses: [ip], labels: { 'route-reflector': 'true' }, updated: '' });
  const nodes = [rr('r1', '192.0.2.1/24'), rr('r2', '192.0.2.2/24'), node('n1', ['192.0.2.11/24']), node('n2', ['192.0.2.12/24'])];
  const s: BgpSettings = { ...base, mesh: false, reflectors: { selector: 'route-reflector=true' } };
  const view = (self: string) => desiredPeers(self, nodes, s).map((p) => `${p.address}${p.routeReflectorClient ? ' client' : ''}`);
  it('a client peers with the reflectors only', () => expect(view('n1')).toEqual(['192.0.2.1', '192.0.2.2']));
  it('a reflector peers with every node: clients marked, other reflectors plain iBGP', () => expect(view('r1')).toEqual(['192.0.2.11 client', '192.0.2.12 client', '192.0.2.2']));
  it('without reflectors and without the mesh, only explicit peers', () => expect(desiredPeers('n1', nodes, { ...base, mesh: false })).toEqual([]));
});
