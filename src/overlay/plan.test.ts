import { describe, expect, it } from 'vitest';
import { checksumOffloadBroken, planOverlay, vxlanOverhead } from './plan';
import { selectPath } from './select';
import type { OverlayDesired, RemoteNode } from './types';
import { vtepMacFor } from './vtep-mac';
import { guardRestoreText, splitSpec } from './vxlan-guard';

const uplink = { ifindex: 7, mtu: 1500, subnet: '10.0.1.0/24' };
const remote = (name: string, underlayIp: string, subnet: string, blocks: string[], tunnelIp: string): RemoteNode => ({
  name,
  underlayIp,
  subnet,
  blocks,
  tunnelIp,
  vtepMac: vtepMacFor(name),
});
const r2 = remote('n2', '10.0.1.3', '10.0.1.0/24', ['10.244.2.0/26'], '10.244.2.1');
const r3 = remote('n3', '10.0.2.2', '10.0.2.0/24', ['10.244.3.0/26', '10.244.3.64/26'], '10.244.3.1');
const base: OverlayDesired = { self: { name: 'n1', underlayIp: '10.0.1.2', tunnelIp: '10.244.1.1' }, remotes: [r3, r2], mode: 'vxlan' };

describe('vtepMacFor', () => {
  it.each(['n1', 'node-a.example', ''])('is stable, unicast and locally administered for %j', (name) => {
    const mac = vtepMacFor(name);
    expect(mac).toBe(vtepMacFor(name));
    expect(mac).toMatch(/^([0-9a-f]{2}:){5}[0-9a-f]{2}$/);
    const first = parseInt(mac.slice(0, 2), 16);
    expect(first & 1).toBe(0);
    expect(first & 2).toBe(2);
  });
  it('differs between nodes', () => expect(vtepMacFor('n1')).not.toBe(vtepMacFor('n2')));
});

describe('selectPath', () => {
  it.each([
    ['vxlan', '10.0.1.0/24', '10.0.1.9', 'vxlan'],
    ['vxlan', '10.0.1.0/24', '10.0.2.9', 'vxlan'],
    ['vxlan-crosssubnet', '10.0.1.0/24', '10.0.1.9', 'direct'],
    ['vxlan-crosssubnet', '10.0.1.0/24', '10.0.2.9', 'vxlan'],
    ['vxlan-crosssubnet', 'fd00::/64', 'fd00::9', 'direct'],
    ['vxlan-crosssubnet', 'fd00::/64', 'fd01::9', 'vxlan'],
    ['routed', '10.0.1.0/24', '10.0.2.9', 'none'],
    ['vlan', '10.0.1.0/24', '10.0.2.9', 'none'],
  ] as const)('%s from %s to %s -> %s', (mode, subnet, ip, want) => expect(selectPath(mode, subnet, ip)).toBe(want));
});

describe('planOverlay', () => {
  it('vxlan: VTEP spec, one neighbor + FDB per remote, an onlink route per block', () => {
    const p = planOverlay(base, uplink);
    expect(p.vtep).toEqual({
      name: 'tern.vxlan',
      vni: 4096,
      port: 4789,
      local: '10.0.1.2',
      family: 4,
      linkIndex: 7,
      mac: vtepMacFor('n1'),
      mtu: 1450,
      address: '10.244.1.1/32',
    });
    expect(p.neighbors).toEqual([
      { ip: '10.244.2.1', mac: vtepMacFor('n2') },
      { ip: '10.244.3.1', mac: vtepMacFor('n3') },
    ]);
    expect(p.fdb).toEqual([
      { mac: vtepMacFor('n2'), dst: '10.0.1.3' },
      { mac: vtepMacFor('n3'), dst: '10.0.2.2' },
    ]);
    expect(p.routes).toEqual([
      { dst: '10.244.2.0/26', gateway: '10.244.2.1', dev: 'vtep' },
      { dst: '10.244.3.0/26', gateway: '10.244.3.1', dev: 'vtep' },
      { dst: '10.244.3.64/26', gateway: '10.244.3.1', dev: 'vtep' },
    ]);
    expect(p.vxlanPeers).toEqual(['10.0.1.3', '10.0.2.2']);
  });

  it('crosssubnet: direct route via the node for the same subnet, no FDB/neighbor for it', () => {
    const p = planOverlay({ ...base, mode: 'vxlan-crosssubnet' }, uplink);
    expect(p.routes).toContainEqual({ dst: '10.244.2.0/26', gateway: '10.0.1.3', dev: 'uplink' });
    expect(p.routes).toContainEqual({ dst: '10.244.3.0/26', gateway: '10.244.3.1', dev: 'vtep' });
    expect(p.fdb.map((f) => f.dst)).toEqual(['10.0.2.2']);
    expect(p.neighbors.map((n) => n.ip)).toEqual(['10.244.3.1']);
  });

  it.each([
    [{ vni: 42, port: 8472 }, { vni: 42, port: 8472 }],
    [{ self: { ...base.self, vtepMac: 'AA:BB:CC:00:11:22' } }, { mac: 'aa:bb:cc:00:11:22' }],
    [{ self: { ...base.self, underlayIp: 'fd00::2', tunnelIp: '10.244.1.1' }, remotes: [] }, { family: 6, mtu: 1430, local: 'fd00::2' }],
  ] as const)('honours overrides %#', (over, want) => {
    const up6 = { ...uplink, subnet: 'fd00::/64' };
    const d = { ...base, ...over } as OverlayDesired;
    expect(planOverlay(d, d.self.underlayIp.includes(':') ? up6 : uplink).vtep).toMatchObject(want);
  });

  it('MTU overhead is 50 bytes over IPv4 and 70 over IPv6', () => {
    expect(vxlanOverhead(4)).toBe(50);
    expect(vxlanOverhead(6)).toBe(70);
  });

  it.each(['routed', 'vlan'] as const)('%s mode wants no overlay objects', (mode) => {
    expect(planOverlay({ ...base, mode }, null)).toMatchObject({ vtep: null, routes: [], fdb: [], neighbors: [] });
  });

  it('skips what it cannot route and says why; ignores itself among the remotes', () => {
    const bad = remote('n4', 'fd00::4', 'fd00::/64', ['10.244.4.0/26'], '10.244.4.1');
    const v6block = remote('n5', '10.0.5.5', '10.0.5.0/24', ['fd10::/122'], '10.244.5.1');
    const self = remote('n1', '10.0.1.2', '10.0.1.0/24', ['10.244.1.0/26'], '10.244.1.1');
    const p = planOverlay({ ...base, remotes: [bad, v6block, self] }, uplink);
    expect(p.routes).toEqual([]);
    expect(p.skipped.map((s) => s.node)).toEqual(['n4', 'n5']);
    expect(p.vxlanPeers).toEqual(['10.0.5.5']);
  });

  it('normalises blocks to their network and is independent of remote order', () => {
    const messy = remote('n3', '10.0.2.2', '10.0.2.0/24', ['10.244.3.7/26'], '10.244.3.1');
    const a = planOverlay({ ...base, remotes: [messy, r2] }, uplink);
    const b = planOverlay({ ...base, remotes: [r2, messy] }, uplink);
    expect(a).toEqual(b);
    expect(a.routes.map((r) => r.dst)).toContain('10.244.3.0/26');
  });

  it.each([{ vni: 0 }, { vni: 1 << 24 }, { port: 0 }, { port: 70000 }])('rejects %j', (over) => {
    expect(() => planOverlay({ ...base, ...over }, uplink)).toThrow(/out of range/);
  });
});

describe('checksumOffloadBroken', () => {
  it.each([
    ['4.19.0-25-amd64', true],
    ['5.4.0', true],
    ['5.6.19', true],
    ['5.7.0', false],
    ['6.1.0-18-amd64', false],
    ['garbage', true],
  ] as const)('%s -> %s', (rel, want) => expect(checksumOffloadBroken(rel)).toBe(want));
});

describe('guard chain', () => {
  it('drops pod VXLAN first, returns for each node, drops the rest', () => {
    const text = guardRestoreText(planOverlay(base, uplink));
    expect(text.split('\n')).toEqual([
      '*filter',
      ':tern-vxlan-guard - [0:0]',
      '-A tern-vxlan-guard -i tern+ -j DROP',
      '-A tern-vxlan-guard -s 10.0.1.3/32 -j RETURN',
      '-A tern-vxlan-guard -s 10.0.2.2/32 -j RETURN',
      '-A tern-vxlan-guard -j DROP',
      'COMMIT',
      '',
    ]);
  });
  it('splits iptables -S specs with quoted comments', () => {
    expect(splitSpec('-p udp -m comment --comment "tern vxlan guard" -j X')).toEqual(['-p', 'udp', '-m', 'comment', '--comment', 'tern vxlan guard', '-j', 'X']);
  });
});
