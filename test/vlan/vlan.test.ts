/**
 * VLAN mode data path. Needs a kernel with 8021q: runs inside the UML VM
 * (scripts/vlan-vm.sh sets VLANVM=1) and is skipped elsewhere.
 *
 *   n1 --trunk0--+            +--trunk0-- n2
 *                +- sw (br0) -+
 *                      |
 *                    trunk0 -- gw: trunk0.100 10.100.0.1/24, trunk0.200 10.200.0.1/24, no forwarding
 *
 * pa (n1) and pb (n2) on VLAN 100; pc (n2) on VLAN 200; pd (n1) on VLAN 200
 * but addressed inside VLAN 100's subnet, to show isolation is L2, not L3.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { attachVlanPod, detachVlanPod, type AttachVlanPodRequest } from '../../src/overlay';
import { Netns, Sandbox } from '../sandbox';
import { capture } from '../overlay/topology';
import { vlanTrunk } from './topology';

const inVm = process.env.VLANVM === '1';
const sb = inVm ? new Sandbox('ovl') : undefined;
let n1: Netns, n2: Netns;
const pods: Record<string, Netns> = {};
const reqs: Record<string, AttachVlanPodRequest> = {};

const v100 = { vlanId: 100, parent: 'trunk0', gateway: '10.100.0.1' };
const v200 = { vlanId: 200, parent: 'trunk0', gateway: '10.200.0.1' };
const v200in100 = { vlanId: 200, parent: 'trunk0', gateway: '10.100.0.1' };

describe.skipIf(!inVm)('VLAN mode (802.1Q, in the VM)', () => {
  beforeAll(async () => {
    const s = sb!;
    ({ n1, n2 } = vlanTrunk(s, [100, 200]));
    const add = async (name: string, node: Netns, pool: typeof v100, address: string) => {
      pods[name] = s.netns(name);
      reqs[name] = { pool, containerId: `ctr-${name}`, podNetnsPath: pods[name].path, nodeNetnsPath: node.path, address };
      return attachVlanPod(reqs[name]);
    };
    await add('pa', n1, v100, '10.100.0.11/24');
    await add('pb', n2, v100, '10.100.0.12/24');
    await add('pc', n2, v200, '10.200.0.21/24');
    await add('pd', n1, v200in100, '10.100.0.99/24');
  });
  afterAll(() => sb!.cleanup());

  it('creates <parent>.<vid> as an 802.1Q sub-interface, bridged with the pod ports', () => {
    const [sub] = n1.ipJson('-d', 'link', 'show', 'trunk0.100');
    expect(sub.linkinfo.info_kind).toBe('vlan');
    expect(sub.linkinfo.info_data).toMatchObject({ protocol: '802.1Q', id: 100 });
    expect(sub.master).toBe('ternbr100');
    const ports = n1.ipJson('link', 'show', 'master', 'ternbr100').map((l: { ifname: string }) => l.ifname);
    expect(ports).toHaveLength(2);
    expect(ports).toContain('trunk0.100');
    expect(pods.pa.ipJson('route', 'show', 'default')[0]).toMatchObject({ gateway: '10.100.0.1', dev: 'eth0' });
  });

  it('VLAN 100 pods on two nodes reach each other and the VLAN gateway', () => {
    expect(pods.pa.ping('10.100.0.12', 2, 3)).toBe(true);
    expect(pods.pb.ping('10.100.0.11', 2, 3)).toBe(true);
    expect(pods.pa.ping('10.100.0.1', 2, 3)).toBe(true);
    expect(pods.pb.ping('10.100.0.1', 2, 3)).toBe(true);
  });

  it('the trunk carries the frames tagged 802.1Q with VLAN 100', async () => {
    const lines = await capture(n1, 'trunk0', 'vlan 100 and icmp', () => pods.pa.ping('10.100.0.12', 2, 3));
    expect(lines.length).toBeGreaterThanOrEqual(4);
    for (const l of lines) expect(l).toMatch(/ethertype 802\.1Q \(0x8100\).*vlan 100/);
    const untagged = await capture(n1, 'trunk0', 'not vlan and icmp', () => pods.pa.ping('10.100.0.12', 2, 3));
    expect(untagged).toEqual([]);
  });

  it('VLAN 200 works on its own but cannot reach VLAN 100 pods', () => {
    expect(pods.pc.ping('10.200.0.1', 2, 3)).toBe(true);
    expect(pods.pc.ping('10.100.0.11', 1, 2)).toBe(false);
    expect(pods.pc.ping('10.100.0.12', 1, 2)).toBe(false);
  });

  it('isolation is at layer 2: a VLAN 200 pod inside VLAN 100 subnet still reaches nobody there', () => {
    expect(pods.pd.ping('10.100.0.11', 1, 2)).toBe(false); // same node, same subnet, other VID
    expect(pods.pd.ping('10.100.0.12', 1, 2)).toBe(false);
    expect(pods.pd.ping('10.100.0.1', 1, 2)).toBe(false);
    expect(pods.pd.exec('ip', ['neigh', 'show', '10.100.0.11']).stdout).not.toMatch(/lladdr/);
  });

  it('the sub-interface and bridge go with the last pod of the VLAN; DEL repeats safely', async () => {
    expect(await detachVlanPod(reqs.pa)).toEqual({ removedVlan: true });
    expect(n1.exec('ip', ['link', 'show', 'trunk0.100']).code).not.toBe(0);
    expect(n1.exec('ip', ['link', 'show', 'ternbr100']).code).not.toBe(0);
    expect(n1.exec('ip', ['link', 'show', 'trunk0.200']).code).toBe(0); // pd still uses VLAN 200
    expect(pods.pa.ipJson('link', 'show').map((l: { ifname: string }) => l.ifname)).toEqual(['lo']);
    expect(await detachVlanPod(reqs.pa)).toEqual({ removedVlan: true });
    expect(pods.pb.ping('10.100.0.1', 1, 3)).toBe(true);
  });

  it('an operator-made sub-interface is used but never deleted', async () => {
    n2.ip('link', 'add', 'link', 'trunk0', 'name', 'trunk0.300', 'type', 'vlan', 'id', '300');
    const pe = sb!.netns('pe');
    const req = { pool: { vlanId: 300, parent: 'trunk0', gateway: '10.30.0.1' }, containerId: 'ctr-pe', podNetnsPath: pe.path, nodeNetnsPath: n2.path, address: '10.30.0.5/24' };
    await attachVlanPod(req);
    expect(n2.ipJson('link', 'show', 'trunk0.300')[0].master).toBe('ternbr300');
    expect(await detachVlanPod(req)).toEqual({ removedVlan: true });
    expect(n2.exec('ip', ['link', 'show', 'ternbr300']).code).not.toBe(0);
    expect(n2.exec('ip', ['link', 'show', 'trunk0.300']).code).toBe(0);
  });
});
