/**
 * A pool in mode vlan, through the real `tern` binary on this host, whose
 * kernel has no 8021q: ADD fails with CNI code 105 naming the missing kernel
 * feature, and leaves nothing behind (no address held, no device). The data
 * path itself is tested in the VM (test/vlan/cni-vlan.test.ts).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as path from 'node:path';
import { DIST_BIN, Sandbox, kernelHas8021q, type Netns } from '../sandbox';
import { listAllocations, makeNode, runCni, ternConfig } from '../sandbox/cni';

const has8021q = kernelHas8021q();

describe.skipIf(has8021q)('VLAN pool on a kernel without 8021q', () => {
  const sb = new Sandbox('cvh');
  let node: Netns;
  let dir: string;

  beforeAll(() => {
    dir = sb.tmpdir();
    ({ node } = makeNode(sb, 'n1'));
  });
  afterAll(() => sb.cleanup());

  it('rejects a vlan pool without its VLAN settings, naming them', () => {
    const r = node.exec(path.join(DIST_BIN, 'ternctl'), ['--datastore', path.join(dir, 'tern.db'), 'ipam', 'pool', 'set', '10.100.0.0/24', '--mode', 'vlan']);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/mode vlan needs vlan\.id, vlan\.parent and vlan\.gateway/);
  });

  it('ADD fails with code 105 naming 8021q, and nothing is left', async () => {
    const set = node.exec(path.join(DIST_BIN, 'ternctl'), ['--datastore', path.join(dir, 'tern.db'), 'ipam', 'pool', 'set', '10.100.0.0/24', '--mode', 'vlan', '--vlan-id', '100', '--vlan-parent', 'uplink0', '--vlan-gateway', '10.100.0.1']);
    expect(set.code, set.stderr).toBe(0);
    const pod = sb.netns('pod');
    const conf = ternConfig(dir, { nodename: 'n1', ipam: { type: 'tern-ipam', pools: ['10.100.0.0/24'] } });
    const r = await runCni(node, { command: 'ADD', containerId: 'ctr-vh', netns: pod.path, ifname: 'eth0', config: conf });
    expect(r.code).not.toBe(0);
    expect(r.json).toMatchObject({ code: 105 });
    expect(r.json.msg + (r.json.details ?? '')).toMatch(/802\.1Q|8021q/);
    expect(await listAllocations(conf)).toEqual([]);
    expect(node.exec('ip', ['link', 'show', 'uplink0.100']).code).not.toBe(0);
    expect(pod.ipJson('link', 'show').map((l: any) => l.ifname)).toEqual(['lo']);
  });
});
