import { describe, expect, it } from 'vitest';
import { remotesOf, vxlanModeOf } from './vxlan';
import { normalisePool } from '../ipam/model';
import type { NodeRecord } from './registry';

describe('vxlanModeOf: the overlay the pools ask for', () => {
  const p = (cidr: string, mode: 'routed' | 'vxlan' | 'vxlan-crosssubnet' | 'vlan', disabled = false) =>
    normalisePool({ cidr, mode, disabled, ...(mode === 'vlan' ? { vlan: { id: 100, parent: 'eth1', gateway: cidr.replace(/0\/\d+$/, '1') } } : {}) });
  const table: [string, ReturnType<typeof normalisePool>[], string | undefined][] = [
    ['routed pools only: none', [p('10.1.0.0/16', 'routed')], undefined],
    ['a vxlan pool', [p('10.1.0.0/16', 'routed'), p('10.2.0.0/16', 'vxlan')], 'vxlan'],
    ['crosssubnet wins over plain vxlan', [p('10.2.0.0/16', 'vxlan'), p('10.3.0.0/16', 'vxlan-crosssubnet')], 'vxlan-crosssubnet'],
    ['a disabled vxlan pool asks for nothing', [p('10.2.0.0/16', 'vxlan', true)], undefined],
    ['vlan is per pod, not an overlay', [p('10.4.0.0/16', 'vlan')], undefined],
  ];
  for (const [name, pools, want] of table) it(name, () => expect(vxlanModeOf(pools)).toBe(want));
});

describe('remotesOf: every other node that published a VTEP, with its blocks', () => {
  const vtep = (ip: string, t: string) => ({ mac: '02:00:00:00:00:01', underlayIp: ip, tunnelIp: t, subnet: '192.0.2.0/24' });
  const nodes: NodeRecord[] = [
    { name: 'n1', addresses: ['192.0.2.11/24'], labels: {}, updated: '', vtep: vtep('192.0.2.11', '10.244.0.0') },
    { name: 'n2', addresses: ['192.0.2.12/24'], labels: {}, updated: '', vtep: vtep('192.0.2.12', '10.244.0.64') },
    { name: 'n3', addresses: ['192.0.2.13/24'], labels: {}, updated: '' }, // no VTEP (yet): skipped
  ];
  const aff = [
    { key: '/tern/ipam/v1/affinity/10.244.0.0-16/10.244.0.0-26', value: 'n1' },
    { key: '/tern/ipam/v1/affinity/10.244.0.0-16/10.244.0.64-26', value: 'n2' },
    { key: '/tern/ipam/v1/affinity/10.244.0.0-16/10.244.1.0-26', value: 'n2' },
  ];
  it('skips itself and nodes without a VTEP', () => {
    const r = remotesOf('n1', nodes, aff);
    expect(r.map((x) => x.name)).toEqual(['n2']);
    expect(r[0]).toMatchObject({ underlayIp: '192.0.2.12', tunnelIp: '10.244.0.64', blocks: ['10.244.0.64/26', '10.244.1.0/26'], subnet: '192.0.2.0/24' });
  });
});
