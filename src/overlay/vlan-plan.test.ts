import { describe, expect, it } from 'vitest';
import { checkVlanAddressing, vlanNames } from './vlan-plan';

const pool = { vlanId: 100, parent: 'eth1', gateway: '10.100.0.1' };

describe('vlanNames', () => {
  it('derives stable names within IFNAMSIZ', () => {
    const a = vlanNames({ pool, containerId: 'abc' });
    expect(a).toMatchObject({ subInterface: 'eth1.100', bridge: 'ternbr100', ifName: 'eth0', alias: 'tern-vlan:abc:eth0' });
    expect(a.hostVeth).toMatch(/^ternv[0-9a-f]{10}$/);
    expect(vlanNames({ pool, containerId: 'abc' })).toEqual(a);
    expect(vlanNames({ pool, containerId: 'abd' }).hostVeth).not.toBe(a.hostVeth);
    expect(vlanNames({ pool, containerId: 'abc', ifName: 'net1' }).hostVeth).not.toBe(a.hostVeth);
  });
  it.each([
    [{ ...pool, vlanId: 0 }, /out of range/],
    [{ ...pool, vlanId: 4095 }, /out of range/],
    [{ ...pool, vlanId: 1.5 }, /out of range/],
    [{ ...pool, parent: 'enp0s31f6ab', vlanId: 4000 }, /longer than 15/],
    [{ ...pool, parent: 'eth0; rm' }, /invalid parent/],
  ])('rejects %j', (p, re) => expect(() => vlanNames({ pool: p, containerId: 'x' })).toThrow(re));
});

describe('checkVlanAddressing', () => {
  it.each([
    ['10.100.0.11/24', '10.100.0.1', { address: '10.100.0.11/24', gateway: '10.100.0.1', subnet: '10.100.0.0/24' }],
    ['fd00:100::11/64', 'fd00:100::1', { address: 'fd00:100::11/64', gateway: 'fd00:100::1', subnet: 'fd00:100::/64' }],
  ])('%s via %s', (address, gateway, want) => {
    expect(checkVlanAddressing({ pool: { ...pool, gateway }, containerId: 'x', address })).toEqual(want);
  });
  it.each([
    ['10.100.0.11/24', '10.200.0.1', /not inside/],
    ['10.100.0.11/24', 'fd00::1', /different families/],
    ['10.100.0.1/24', '10.100.0.1', /is the gateway/],
  ])('rejects %s via %s', (address, gateway, re) => {
    expect(() => checkVlanAddressing({ pool: { ...pool, gateway }, containerId: 'x', address })).toThrow(re);
  });
});
