import { describe, expect, it } from 'vitest';
import { hostVethName, parseEndpointAlias, planEndpoint } from './endpoint-plan';

describe('planEndpoint', () => {
  it('names the host veth tern + 11 hex chars, stable per (container, ifname)', () => {
    const a = hostVethName('abc', 'eth0');
    expect(a).toMatch(/^tern[0-9a-f]{11}$/);
    expect(a).toHaveLength(15);
    expect(hostVethName('abc', 'eth0')).toBe(a);
    expect(hostVethName('abc', 'eth1')).not.toBe(a);
    expect(hostVethName('abd', 'eth0')).not.toBe(a);
  });

  it.each([
    ['v4', [{ address: '10.0.0.5', family: 4 as const }], ['10.0.0.5/32'], ['169.254.1.1/32', '0.0.0.0/0'], ['proxy_arp', 'forwarding', 'proxy_delay', 'accept_ra']],
    ['v6', [{ address: 'fd00::5', family: 6 as const }], ['fd00::5/128'], ['::/0'], ['accept_ra', 'forwarding', 'proxy_ndp', 'accept_dad']],
    [
      'dual',
      [{ address: '10.0.0.5', family: 4 as const }, { address: 'fd00::5', family: 6 as const }],
      ['10.0.0.5/32', 'fd00::5/128'],
      ['169.254.1.1/32', '0.0.0.0/0', '::/0'],
      ['proxy_arp', 'forwarding', 'proxy_delay', 'accept_ra', 'forwarding', 'proxy_ndp', 'accept_dad'],
    ],
  ])('%s', (_n, ips, addrs, routes, sysctls) => {
    const p = planEndpoint({ network: 'net', containerId: 'c1', ifname: 'eth0', ips, mtu: 1400 });
    expect(p.containerAddrs).toEqual(addrs);
    expect(p.containerRoutes.map((r) => r.dst)).toEqual(routes);
    expect(p.hostRoutes.map((r) => r.dst)).toEqual(addrs);
    expect(p.hostRoutes.every((r) => r.scope === 'link' && r.protocol === 84)).toBe(true);
    expect(p.hostSysctls.map((s) => s.key.split('/').pop())).toEqual(sysctls);
    expect(p.hostSysctls.every((s) => s.key.includes(p.hostIfName))).toBe(true);
    expect(p.hostMac).toBe('ee:ee:ee:ee:ee:ee');
    expect(p.mtu).toBe(1400);
  });

  it('the v4 default route goes via 169.254.1.1 and the v6 one via the EUI-64 address of ee:ee:ee:ee:ee:ee', () => {
    const p = planEndpoint({ network: 'n', containerId: 'c', ifname: 'eth0', ips: [{ address: '10.0.0.1', family: 4 }, { address: 'fd00::1', family: 6 }], mtu: 1500 });
    expect(p.containerRoutes).toContainEqual(expect.objectContaining({ dst: '169.254.1.1/32', scope: 'link' }));
    expect(p.containerRoutes).toContainEqual(expect.objectContaining({ dst: '0.0.0.0/0', via: '169.254.1.1' }));
    expect(p.containerRoutes).toContainEqual(expect.objectContaining({ dst: '::/0', via: 'fe80::ecee:eeff:feee:eeee' }));
  });

  it('alias round-trips and rejects foreign aliases', () => {
    const p = planEndpoint({ network: 'tern-net', containerId: 'c9', ifname: 'net1', ips: [], mtu: 1500 });
    expect(parseEndpointAlias(p.alias)).toEqual({ network: 'tern-net', containerId: 'c9', ifname: 'net1' });
    expect(parseEndpointAlias('something else')).toBeUndefined();
    expect(parseEndpointAlias(undefined)).toBeUndefined();
  });
});
