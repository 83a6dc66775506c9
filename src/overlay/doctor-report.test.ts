import { describe, expect, it } from 'vitest';
import { evaluateDoctor, renderDoctor } from './doctor-report';
import type { KernelFacts } from './kernel-features';

const healthy: KernelFacts = {
  kernelRelease: '6.1.0',
  vxlan: 'yes',
  vlan8021q: 'yes',
  bridge: 'yes',
  veth: 'yes',
  ipset: 'yes',
  iptablesBackend: 'nf_tables',
  iptablesUsable: 'yes',
  iptablesLegacyUsable: 'yes',
  ipForward: 1,
  ip6Forward: 1,
  rpFilterAll: 0,
  rpFilterDefault: 0,
  errors: [],
};
const avail = (f: KernelFacts) => Object.fromEntries(evaluateDoctor(f).modes.map((m) => [m.mode, m.available]));
const sev = (f: KernelFacts, name: string) => evaluateDoctor(f).checks.find((c) => c.name === name)?.severity;

describe('evaluateDoctor', () => {
  it('a healthy node runs every mode and has no problems', () => {
    const r = evaluateDoctor(healthy);
    expect(avail(healthy)).toEqual({ routed: true, vxlan: true, 'vxlan-crosssubnet': true, vlan: true });
    expect(r.problems).toEqual([]);
    expect(renderDoctor(r)).toMatch(/no problems found/);
  });

  it.each([
    ['no 8021q', { vlan8021q: 'no' }, { routed: true, vxlan: true, 'vxlan-crosssubnet': true, vlan: false }],
    ['no vxlan', { vxlan: 'no' }, { routed: true, vxlan: false, 'vxlan-crosssubnet': false, vlan: true }],
    ['no bridge', { bridge: 'no' }, { routed: true, vxlan: true, 'vxlan-crosssubnet': true, vlan: false }],
    ['forwarding off', { ipForward: 0 }, { routed: false, vxlan: false, 'vxlan-crosssubnet': false, vlan: true }],
    ['no veth', { veth: 'no' }, { routed: false, vxlan: false, 'vxlan-crosssubnet': false, vlan: false }],
    ['probe impossible', { vxlan: 'unknown' }, { routed: true, vxlan: false, 'vxlan-crosssubnet': false, vlan: true }],
  ] as const)('%s', (_n, over, want) => expect(avail({ ...healthy, ...over })).toEqual(want));

  it('names the missing kernel feature for vlan mode', () => {
    const vlan = evaluateDoctor({ ...healthy, vlan8021q: 'no' }).modes.find((m) => m.mode === 'vlan')!;
    expect(vlan.reasons.join()).toMatch(/CONFIG_VLAN_8021Q.*8021q/);
  });

  it.each([
    [{ ipForward: 0 }, 'forwarding', 'error'],
    [{ ipForward: undefined }, 'forwarding', 'warning'],
    [{ rpFilterAll: 1 }, 'rp_filter', 'warning'],
    [{ rpFilterDefault: 1 }, 'rp_filter', 'warning'],
    [{ rpFilterAll: 2 }, 'rp_filter', 'ok'],
    [{ iptablesUsable: 'no' }, 'iptables', 'warning'],
    [{ iptablesUsable: 'no', iptablesLegacyUsable: 'no' }, 'iptables', 'error'],
    [{ iptablesBackend: undefined }, 'iptables', 'error'],
    [{ veth: 'no' }, 'veth', 'error'],
    [{ vlan8021q: 'no' }, '8021q', 'info'],
    [{ kernelRelease: '5.4.0' }, 'vxlan-csum', 'info'],
  ] as const)('%j -> %s is %s', (over, name, want) => expect(sev({ ...healthy, ...over } as KernelFacts, name)).toBe(want));

  it('problems are exactly the warnings and errors', () => {
    const r = evaluateDoctor({ ...healthy, ipForward: 0, rpFilterAll: 1, vlan8021q: 'no' });
    expect(r.problems.map((p) => p.name).sort()).toEqual(['forwarding', 'rp_filter']);
    expect(renderDoctor(r)).toMatch(/2 problem\(s\): forwarding, rp_filter/);
  });
});
