/**
 * VLAN mode on the host kernel. Where 8021q is missing (this CI's kernel),
 * attaching must fail with UNSUPPORTED_KERNEL naming 8021q and leave nothing
 * behind; where it exists, the attachment must work. The real VLAN data path
 * is tested inside a VM (test/vlan, scripts/vlan-vm.sh).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { attachVlanPod, detachVlanPod } from '../../src/overlay';
import { isTernError } from '../../src/lib/errors';
import { Netns, Sandbox, kernelHas8021q } from '../sandbox';

const sb = new Sandbox('ovh');
let node: Netns;
let pod: Netns;
const has8021q = kernelHas8021q();

beforeAll(() => {
  node = sb.netns('node');
  pod = sb.netns('pod');
  const peer = sb.netns('peer');
  sb.link(node, 'trunk0', peer, 'trunk1');
});
afterAll(() => sb.cleanup());

const req = () => ({
  pool: { vlanId: 100, parent: 'trunk0', gateway: '10.100.0.1' },
  containerId: 'ctr-vlan-host',
  podNetnsPath: pod.path,
  nodeNetnsPath: node.path,
  address: '10.100.0.11/24',
});

describe.skipIf(has8021q)('VLAN mode without 8021q', () => {
  it('fails with UNSUPPORTED_KERNEL naming 8021q, leaving no bridge, veth or sub-interface', async () => {
    const err = await attachVlanPod(req()).catch((e) => e);
    expect(isTernError(err, 'UNSUPPORTED_KERNEL'), String(err?.message) + ' ' + String(err?.cause?.message)).toBe(true);
    expect(err.message).toMatch(/8021q/);
    expect(err.message).toMatch(/CONFIG_VLAN_8021Q/);
    const names = node.ipJson('link', 'show').map((l: { ifname: string }) => l.ifname);
    expect(names.sort()).toEqual(['lo', 'trunk0']);
    expect(pod.ipJson('link', 'show').map((l: { ifname: string }) => l.ifname)).toEqual(['lo']);
  });
  it('detach of a never-attached pod is a no-op success', async () => {
    await expect(detachVlanPod(req())).resolves.toEqual({ removedVlan: true });
  });
});

describe.skipIf(!has8021q)('VLAN mode with 8021q on the host kernel', () => {
  it('attaches and detaches', async () => {
    const r = await attachVlanPod(req());
    expect(r.subInterface).toBe('trunk0.100');
    expect(pod.ipJson('route', 'show', 'default')[0].gateway).toBe('10.100.0.1');
    await expect(detachVlanPod(req())).resolves.toEqual({ removedVlan: true });
  });
});
