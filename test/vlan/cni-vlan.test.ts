/**
 * VLAN mode through the real CNI binary, chosen by the pool (needs 8021q: runs
 * in the UML VM, skipped elsewhere). A pool in mode vlan names its VLAN ID,
 * trunk and router; `tern` ADD puts the pod on that segment with the pool's
 * subnet and the VLAN's router as its gateway; DEL takes it off, and the
 * VLAN's sub-interface and bridge go with its last pod.
 * The segment is test/vlan/topology.ts with VLAN 100.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as path from 'node:path';
import { DIST_BIN, Netns, Sandbox } from '../sandbox';
import { runCni, ternConfig } from '../sandbox/cni';
import { capture } from '../overlay/topology';
import { vlanTrunk } from './topology';
import { attachVlanPod, detachVlanPod, vlanNames } from '../../src/overlay';

const inVm = process.env.VLANVM === '1';
const sb = inVm ? new Sandbox('cvl') : undefined;

describe.skipIf(!inVm)('VLAN mode chosen by the pool, through the tern binary (in the VM)', () => {
  let n1: Netns, n2: Netns;
  let dir: string;
  const pods: Record<string, { ns: Netns; ip: string; node: Netns; conf: Record<string, unknown>; result: object }> = {};

  beforeAll(async () => {
    const s = sb!;
    ({ n1, n2 } = vlanTrunk(s, [100]));
    dir = s.tmpdir();
    const pool = n1.exec(path.join(DIST_BIN, 'ternctl'), ['--datastore', path.join(dir, 'tern.db'), 'ipam', 'pool', 'set', '10.100.0.0/24', '--mode', 'vlan', '--block-size', '28', '--vlan-id', '100', '--vlan-parent', 'trunk0', '--vlan-gateway', '10.100.0.1']);
    expect(pool.code, pool.stderr).toBe(0);
    for (const [name, node, nodename] of [['pa', n1, 'n1'], ['pb', n2, 'n2'], ['pc', n1, 'n1']] as const) {
      const ns = s.netns(name);
      const conf = ternConfig(dir, { nodename, ipam: { type: 'tern-ipam', pools: ['10.100.0.0/24'] } });
      const r = await runCni(node, { command: 'ADD', containerId: `ctr-${name}`, netns: ns.path, ifname: 'eth0', config: conf });
      expect(r.code, r.stdout + r.stderr).toBe(0);
      expect(r.json.ips[0]).toMatchObject({ gateway: '10.100.0.1' });
      expect(r.json.ips[0].address).toMatch(/^10\.100\.0\.\d+\/24$/);
      pods[name] = { ns, ip: r.json.ips[0].address.split('/')[0], node, conf, result: r.json };
    }
  }, 120_000);
  afterAll(() => sb!.cleanup());

  it('the pod sits on trunk0.100 through the VLAN bridge, default route via the VLAN router', () => {
    expect(n1.ipJson('-d', 'link', 'show', 'trunk0.100')[0].linkinfo.info_data).toMatchObject({ protocol: '802.1Q', id: 100 });
    expect(n1.ipJson('link', 'show', 'master', 'ternbr100').length).toBe(3); // trunk0.100 + two pods
    expect(pods.pa.ns.ipJson('route', 'show', 'default')[0]).toMatchObject({ gateway: '10.100.0.1', dev: 'eth0' });
    // The router's address, network and broadcast are never handed out.
    for (const p of Object.values(pods)) expect(['10.100.0.0', '10.100.0.1', '10.100.0.255']).not.toContain(p.ip);
  });

  it('pods on two nodes reach each other and the router, tagged 802.1Q on the trunk', async () => {
    let ok = false;
    const lines = await capture(n1, 'trunk0', 'vlan 100 and icmp', () => (ok = pods.pa.ns.ping(pods.pb.ip, 2, 3)));
    expect(ok).toBe(true);
    expect(lines.join('\n')).toMatch(/vlan 100/);
    expect(pods.pb.ns.ping('10.100.0.1', 2, 3)).toBe(true);
  });

  it('CHECK expects what a VLAN ADD made (the subnet, the VLAN router, a bridge port), not a /32 and host route', async () => {
    const check = () => runCni(n1, { command: 'CHECK', containerId: 'ctr-pa', netns: pods.pa.ns.path, ifname: 'eth0', config: { ...pods.pa.conf, prevResult: pods.pa.result } });
    const ok = await check();
    expect(ok.code, ok.stdout).toBe(0);
    pods.pa.ns.ip('route', 'del', 'default');
    const c1 = await check();
    expect(c1.json.code).toBe(104);
    expect(c1.json.msg).toMatch(/default route via 10\.100\.0\.1/);
    pods.pa.ns.ip('route', 'add', 'default', 'via', '10.100.0.1', 'dev', 'eth0');
    const port = vlanNames({ pool: { vlanId: 100, parent: 'trunk0', gateway: '10.100.0.1' }, containerId: 'ctr-pa', ifName: 'eth0' }).hostVeth;
    n1.ip('link', 'set', port, 'nomaster');
    const c2 = await check();
    expect(c2.json.code).toBe(104);
    expect(c2.json.msg).toMatch(new RegExp(`${port} is not a port of ternbr100`));
    n1.ip('link', 'set', port, 'master', 'ternbr100');
    expect((await check()).code).toBe(0);
  });

  it('DEL takes pods off; the VLAN devices go with the last pod of the node; DEL repeats safely', async () => {
    const del = (name: string) => runCni(pods[name].node, { command: 'DEL', containerId: `ctr-${name}`, netns: pods[name].ns.path, ifname: 'eth0', config: pods[name].conf });
    expect((await del('pa')).code).toBe(0);
    expect(n1.ipJson('link', 'show', 'trunk0.100').length).toBe(1); // pc still there
    expect((await del('pc')).code).toBe(0);
    expect(n1.exec('ip', ['link', 'show', 'trunk0.100']).code).not.toBe(0);
    expect(n1.exec('ip', ['link', 'show', 'ternbr100']).code).not.toBe(0);
    expect((await del('pc')).code).toBe(0);
    expect(pods.pb.ns.ping('10.100.0.1', 1, 2)).toBe(true); // n2 untouched
  });

  it('ADD and DEL racing on the VLAN of one node: the last port leaving never takes the new one down', async () => {
    // n1 has no VLAN pod now, so each DEL below removes the VLAN's last port, while an ADD attaches the next.
    const pool = { vlanId: 100, parent: 'trunk0', gateway: '10.100.0.1' };
    const q = (i: number) => ({ pool, containerId: `race-${i}`, podNetnsPath: sb!.netns(`q${i}`).path, nodeNetnsPath: n1.path, address: `10.100.0.${60 + i}/24` });
    const reqs = [q(0)];
    await attachVlanPod(reqs[0]);
    for (let i = 1; i <= 4; i++) {
      reqs.push(q(i));
      await Promise.all([detachVlanPod(reqs[i - 1]), attachVlanPod(reqs[i])]);
      expect(n1.ipJson('link', 'show', 'master', 'ternbr100').map((l: { ifname: string }) => l.ifname).sort(), `round ${i}`).toHaveLength(2);
      expect(new Netns(reqs[i].podNetnsPath.split('/').pop()!).ping('10.100.0.1', 1, 2), `round ${i}`).toBe(true);
    }
    await detachVlanPod(reqs[4]);
  });
});
