/**
 * `ternctl status` and `ternctl bgp` text: the node's readiness is the one
 * rule /readyz answers with, Established sessions show no stale error, and
 * graceful-restart (stale) routes are marked.
 */
import { describe, expect, it } from 'vitest';
import { formatRoutes, peerInfo } from '../../src/cli/bgp';
import { formatStatus } from '../../src/cli/node';
import { notReady, type DaemonStatus } from '../../src/node-daemon/health';

const peer = (state: string, lastError?: string) => ({ address: '192.0.2.2', asn: 64512, state, since: '2026-12-04T10:00:00.000Z', uptimeSeconds: 5, routerId: '192.0.2.2', received: 1, accepted: 1, filtered: 0, sent: 1, lastError });

describe('bgp peers INFO', () => {
  it('an Established session shows its router id, not the error from before it came up', () => expect(peerInfo(peer('Established', 'connect ECONNREFUSED'))).toBe('router id 192.0.2.2'));
  it('a session that is down shows why', () => expect(peerInfo(peer('Active', 'connect ECONNREFUSED'))).toBe('connect ECONNREFUSED'));
});

describe('bgp routes marks stale paths', () => {
  const path = (peerId: string, stale?: boolean) => ({ peer: peerId, nextHop: peerId, asPath: '65002', stale });
  it('a stale best path, and stale paths behind the best', () => {
    const out = formatRoutes([
      { prefix: '10.1.0.0/24', best: { ...path('192.0.2.2', true), origin: 0 }, reason: 'only-path', paths: [path('192.0.2.2', true)], multipath: ['192.0.2.2'] },
      { prefix: '10.2.0.0/24', best: { ...path('192.0.2.3'), origin: 0 }, reason: 'not-stale', paths: [path('192.0.2.3'), path('192.0.2.2', true)], multipath: ['192.0.2.3'] },
      { prefix: '10.3.0.0/24', best: { ...path('192.0.2.3'), origin: 0 }, reason: 'only-path', paths: [path('192.0.2.3')], multipath: ['192.0.2.3'] },
    ]).split('\n');
    expect(out[1]).toMatch(/^10\.1\.0\.0\/24 .* only-path \(STALE: graceful restart\)$/);
    expect(out[2]).toMatch(/^10\.2\.0\.0\/24 .* not-stale \(\+1 stale\)$/);
    expect(out[3]).toMatch(/only-path$/);
  });
});

describe('ternctl status says what /readyz says', () => {
  const base: DaemonStatus = { node: 'n1', ready: true, datastore: { type: 'sqlite', where: '/x', reachable: true }, blocks: ['10.244.0.0/26'], sockets: { cni: '/run/tern/cni.sock', control: '/run/tern/bgp.sock' } };
  const cases: [string, DaemonStatus][] = [
    ['ready', base],
    ['a BGP peer in Active', { ...base, bgp: { asn: 64512, routerId: '192.0.2.1', peers: [peer('Active', 'connect ECONNREFUSED')] } }],
    ['a rejected policy directory', { ...base, acl: { active: true, syncs: 1, endpoints: 0, policies: 0, policyDir: { path: '/etc/tern/policies.d', present: true, resources: 0, lastError: 'a.yaml:1: kind: unknown' } } }],
  ];
  for (const [name, st] of cases) {
    it(name, () => {
      const why = notReady(st);
      const first = formatStatus({ ...st, notReady: why }).split('\n')[0];
      expect(first).toBe(why.length ? `Tern node n1: NOT READY: ${why.join('; ')}` : 'Tern node n1: ready');
    });
  }
  it('shows the sockets', () => expect(formatStatus(base)).toContain('Sockets: CNI /run/tern/cni.sock, BGP control /run/tern/bgp.sock'));
});
