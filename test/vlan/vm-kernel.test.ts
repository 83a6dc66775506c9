/**
 * Inside the VLAN VM (VLANVM=1, UML or QEMU): doctor on a kernel that has 8021q, and the
 * VXLAN guard through iptables-legacy (UML has no nf_tables ip families).
 */
import { afterAll, describe, expect, it } from 'vitest';
import { runDoctor } from '../../src/cli/doctor';
import { VxlanReconciler, VXLAN_GUARD_CHAIN, vtepMacFor } from '../../src/overlay';
import { Sandbox, kernelHas8021q } from '../sandbox';

const inVm = process.env.VLANVM === '1';
const sb = inVm ? new Sandbox('ovm') : undefined;

describe.skipIf(!inVm)('kernel features in the VM', () => {
  afterAll(() => sb!.cleanup());

  it('the VM kernel has 8021q (the VLAN tests here never pass by skipping)', () => {
    expect(kernelHas8021q()).toBe(true);
  });

  it('doctor reports vlan mode available and points at iptables-legacy', () => {
    const node = sb!.netns('doc');
    node.sysctl('net.ipv4.ip_forward', '1');
    const r = runDoctor({ netnsPath: node.path });
    expect(r.checks.find((c) => c.name === '8021q')!.severity).toBe('ok');
    expect(r.modes.find((m) => m.mode === 'vlan')!.available).toBe(true);
    const ipt = r.checks.find((c) => c.name === 'iptables')!;
    if (ipt.severity !== 'ok') expect(ipt.detail).toMatch(/iptables-legacy/);
  });

  it('the VXLAN reconciler installs its guard with iptables-legacy', async () => {
    const a = sb!.netns('a');
    const b = sb!.netns('b');
    sb!.link(a, 'eth0', b, 'eth0', { aAddr: '10.20.0.1/24', bAddr: '10.20.0.2/24' });
    const rec = new VxlanReconciler({ netnsPath: a.path, iptables: 'iptables-legacy' });
    try {
      const res = await rec.reconcile({
        self: { name: 'a', underlayIp: '10.20.0.1', tunnelIp: '10.246.1.1' },
        remotes: [{ name: 'b', underlayIp: '10.20.0.2', vtepMac: vtepMacFor('b'), tunnelIp: '10.246.2.1', blocks: ['10.246.2.0/26'], subnet: '10.20.0.0/24' }],
        mode: 'vxlan',
      });
      expect(res.ops.map((o) => o.kind)).toContain('createVtep');
      expect(a.must('iptables-legacy', ['-w', '-S', VXLAN_GUARD_CHAIN])).toContain('-s 10.20.0.2/32 -j RETURN');
      expect(a.must('iptables-legacy', ['-w', '-S', 'INPUT'])).toContain(`-j ${VXLAN_GUARD_CHAIN}`);
      expect(a.ipJson('route', 'show', '10.246.2.0/26')[0]).toMatchObject({ dev: 'tern.vxlan', gateway: '10.246.2.1' });
    } finally {
      rec.close();
    }
  });
});
