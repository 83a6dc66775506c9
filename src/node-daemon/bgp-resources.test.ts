import { describe, it, expect } from 'vitest';
import { parseBgpResources, nodeAs, type BgpPeerResource, type BgpConfigResource } from './bgp-resources';
import { desiredPeers, asOf, blockAttrs, type BgpSettings } from './bgp-mesh';
import { PolicyFileError } from '../acl/errors';
import type { NodeRecord } from './registry';

const FABRIC = `
kind: BGPConfiguration
metadata: {name: default}
spec:
  nodeToNodeMesh: false
  asNumber: 64512
  nodeASLabel: rack-asn
  prefixAdvertisements: [{cidr: 10.244.0.0/17, communities: ["65000:100", "65000:1:2"]}]
---
kind: BGPPeer
metadata: {name: r1-tor}
spec:
  peerIP: 192.0.2.101
  nodeSelector: rack == "r1"
  bfd: {minRx: 300, minTx: 300, multiplier: 3}
---
kind: BGPPeer
metadata: {name: r2-tor}
spec: {peerIP: 192.0.2.102, nodeSelector: rack == "r2", exportPrefixes: ["10.244.0.0/16 le 26"]}
---
kind: BGPPeer
metadata: {name: gateways}
spec: {peerSelector: role == "gw", nodeSelector: rack == "r1", asNumber: 65500, passive: true, passwordFile: /etc/tern/gw.key}
`;

const node = (name: string, ip: string, labels: Record<string, string>): NodeRecord => ({ name, addresses: [`${ip}/24`], labels, updated: '' });
const nodes = [
  node('n1', '192.0.2.11', { rack: 'r1', 'rack-asn': '65101' }),
  node('n2', '192.0.2.12', { rack: 'r1', 'rack-asn': '65101' }),
  node('n3', '192.0.2.13', { rack: 'r2', 'rack-asn': '65102' }),
  node('gw', '192.0.2.50', { role: 'gw' }),
];
const s: BgpSettings = { asn: 64512, mesh: true, peers: [], port: 179, restartTime: 0, importPools: ['10.244.0.0/16'] };

describe('BGP resources', () => {
  const rs = parseBgpResources(FABRIC, 'fabric.yaml');
  const res = { peers: rs.filter((r): r is BgpPeerResource => r.kind === 'BGPPeer'), config: rs.find((r): r is BgpConfigResource => r.kind === 'BGPConfiguration'), secret: () => 'k3y' };

  it('parse into peers and the configuration', () => {
    expect(rs.map((r) => `${r.kind}/${r.name}`)).toEqual(['BGPConfiguration/default', 'BGPPeer/r1-tor', 'BGPPeer/r2-tor', 'BGPPeer/gateways']);
  });

  it('each node peers with its own rack\'s ToR, in its rack\'s AS, without the mesh', () => {
    const view = (self: string) => desiredPeers(self, nodes, s, res).map((p) => `${p.address} ${p.asn}${p.bfd ? ' bfd' : ''}${p.passive ? ' passive' : ''}${p.password ? ' md5' : ''}`);
    expect(view('n1')).toEqual(['192.0.2.101 65101 bfd', '192.0.2.50 65500 passive md5']);
    expect(view('n3')).toEqual(['192.0.2.102 65102']);
    expect(asOf(nodes[0], s, res)).toBe(65101);
    expect(asOf(nodes[3], s, res)).toBe(64512); // no label: the configured default
    expect(desiredPeers('n3', nodes, s, res)[0].exportPrefixes).toEqual(['10.244.0.0/16 le 26']);
    expect(desiredPeers('n1', nodes, s, res)[0].exportPrefixes).toEqual(['10.244.0.0/16 le 32']); // default: the pools
  });

  it('relabelled into the other rack, a node peers with that rack\'s ToR in that AS', () => {
    const moved = nodes.map((n) => (n.name === 'n2' ? { ...n, labels: { rack: 'r2', 'rack-asn': '65102' } } : n));
    expect(desiredPeers('n2', moved, s, res).map((p) => `${p.address} ${p.asn}`)).toEqual(['192.0.2.102 65102']);
    expect(asOf(moved[1], s, res)).toBe(65102);
  });

  it('the mesh comes back when the configuration turns it on; without resources the node settings rule', () => {
    const on = { ...res, config: { ...res.config!, nodeToNodeMesh: true } };
    expect(desiredPeers('n3', nodes, s, on).map((p) => p.address)).toEqual(['192.0.2.102', '192.0.2.11', '192.0.2.12', '192.0.2.50']);
    expect(desiredPeers('n3', nodes, s).map((p) => p.address)).toEqual(['192.0.2.11', '192.0.2.12', '192.0.2.50']);
  });

  it('a password file that cannot be read on this node leaves that peer out', () => {
    expect(desiredPeers('n1', nodes, s, { ...res, secret: undefined }).map((p) => p.address)).toEqual(['192.0.2.101']);
  });

  it('prefixAdvertisements add communities to the blocks they hold, on top of the pool\'s', () => {
    const pools = [{ cidr: '10.244.0.0/16', communities: ['65000:7'] }] as never;
    const ads = res.config!.prefixAdvertisements;
    expect(blockAttrs('10.244.1.0/26', pools, ads)).toEqual({ communities: [65000 * 65536 + 7, 65000 * 65536 + 100], largeCommunities: [[65000, 1, 2]] });
    expect(blockAttrs('10.244.200.0/26', pools, ads)).toEqual({ communities: [65000 * 65536 + 7] }); // outside the /17
    expect(blockAttrs('10.99.0.0/26', pools, ads)).toEqual({});
  });

  it('a bad AS label falls back to the default', () => {
    expect(nodeAs({ 'rack-asn': 'x' }, res.config, 1)).toBe(64512);
    expect(nodeAs({}, undefined, 7)).toBe(7);
  });

  const bad: [string, string, number, string][] = [
    ['kind: BGPPeer\nmetadata: {name: a}\nspec: {peerIP: 192.0.2.1, peerSelector: all()}', 'spec', 3, 'exactly one of peerIP and peerSelector'],
    ['kind: BGPPeer\nmetadata: {name: a}\nspec:\n  peerIP: 192.0.2.300', 'spec.peerIP', 4, 'IP address'],
    ['kind: BGPPeer\nmetadata: {name: a}\nspec:\n  peerIP: 192.0.2.1\n  asNumber: 0', 'spec.asNumber', 5, 'AS number'],
    ['kind: BGPPeer\nmetadata: {name: a}\nspec:\n  peerIP: 192.0.2.1\n  nodeSelector: rack ==', 'spec.nodeSelector', 5, ''],
    ['kind: BGPPeer\nmetadata: {name: a}\nspec:\n  peerIP: 192.0.2.1\n  bfd: {minRx: 1, minTx: 300, multiplier: 3}', 'spec.bfd.minRx', 5, 'milliseconds'],
    ['kind: BGPPeer\nmetadata: {name: a}\nspec:\n  peerIP: 192.0.2.1\n  exportPrefixes: [10.0.0.0/8, nope]', 'spec.exportPrefixes.1', 5, 'bad prefix rule'],
    ['kind: BGPPeer\nmetadata: {name: a}\nspec:\n  peerIP: 192.0.2.1\n  colour: red', 'spec.colour', 5, 'unknown field'],
    ['kind: BGPConfiguration\nmetadata: {name: default}\nspec:\n  listenPort: 70000', 'spec.listenPort', 4, 'port'],
    ['kind: BGPThing\nmetadata: {name: a}', 'kind', 1, 'BGPPeer or BGPConfiguration'],
    ['kind: BGPConfiguration\nmetadata: {name: x}\nspec:\n  prefixAdvertisements:\n  - cidr: 10.0.0.0/8\n    communities: ["65000:70000"]', 'spec.prefixAdvertisements.0.communities.0', 6, '16-bit'],
    ['kind: BGPConfiguration\nmetadata: {name: x}\nspec:\n  prefixAdvertisements:\n  - cidr: nope\n    communities: []', 'spec.prefixAdvertisements.0.cidr', 5, 'prefix'],
    ['kind: BGPPeer\nmetadata: {name: A_B}\nspec: {peerIP: 192.0.2.1}', 'metadata.name', 2, 'DNS name'],
  ];
  for (const [text, field, line, msg] of bad) {
    it(`rejects ${field} at line ${line}`, () => {
      try {
        parseBgpResources(`${FABRIC}---\n${text}\n`, 'f.yaml');
        expect.unreachable();
      } catch (e) {
        expect(e).toBeInstanceOf(PolicyFileError);
        const p = (e as PolicyFileError).problems[0];
        expect(p).toMatchObject({ file: 'f.yaml', field });
        expect(p.line).toBe(FABRIC.split('\n').length + line);
        expect(p.message).toContain(msg);
      }
    });
  }
});
