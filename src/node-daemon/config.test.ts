import { describe, expect, it } from 'vitest';
import { parseDaemonConfig } from './config';

describe('daemon config: bad fields are named', () => {
  const table: [string, object, RegExp][] = [
    ['vxlan with bgp', { vxlan: {}, bgp: { mesh: true } }, /field "vxlan": turn "bgp" off/],
    ['vxlan VNI out of range', { vxlan: { vni: 0 } }, /field "vxlan.vni"/],
    ['reflector selector not key=value', { bgp: { reflectors: { selector: 'rr' } } }, /field "bgp.reflectors.selector"/],
    ['reclaim interval negative', { ipam: { reclaimInterval: -1 } }, /field "ipam.reclaimInterval"/],
    ['policyDir not a string', { policyDir: 3 }, /field "policyDir"/],
  ];
  for (const [name, raw, want] of table) it(name, () => expect(() => parseDaemonConfig(raw, 'node.yaml')).toThrow(want));
  it('defaults', () => {
    expect(parseDaemonConfig({}, 'node.yaml')).toMatchObject({ policyDir: '/etc/tern/policies.d', ipam: { reclaimInterval: 300, emptyBlockGrace: 900 }, vxlan: undefined, bgp: undefined });
    expect(parseDaemonConfig({ vxlan: true }, 'node.yaml').vxlan).toEqual({ vni: undefined, port: undefined });
  });
});
