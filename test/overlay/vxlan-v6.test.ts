/**
 * VXLAN over an IPv6 underlay: two nodes on one fd00::/64 segment, IPv4
 * pods. Checks the IPv6 paths of the reconciler: IFLA_VXLAN_LOCAL6, FDB
 * entries with IPv6 destinations, the 70-byte overhead, and the guard in
 * ip6tables.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { VxlanReconciler, VTEP_NAME, VXLAN_GUARD_CHAIN, vtepMacFor, type OverlayDesired } from '../../src/overlay';
import { Netns, Sandbox } from '../sandbox';
import { addRoutedPod, hostVethName } from './topology';

const sb = new Sandbox('ovx6');
const nodes = [
  { name: 'a', underlayIp: 'fd00:10::2', tunnelIp: '10.245.1.1', block: '10.245.1.0/26', podIp: '10.245.1.2' },
  { name: 'b', underlayIp: 'fd00:10::3', tunnelIp: '10.245.2.1', block: '10.245.2.0/26', podIp: '10.245.2.2' },
];
const ns: Record<string, Netns> = {};
const pods: Record<string, Netns> = {};
const recs: VxlanReconciler[] = [];

function desired(i: number): OverlayDesired {
  const self = nodes[i];
  const other = nodes[1 - i];
  return {
    self: { name: self.name, underlayIp: self.underlayIp, tunnelIp: self.tunnelIp },
    remotes: [{ name: other.name, underlayIp: other.underlayIp, vtepMac: vtepMacFor(other.name), tunnelIp: other.tunnelIp, blocks: [other.block], subnet: 'fd00:10::/64' }],
    mode: 'vxlan',
  };
}

beforeAll(async () => {
  for (const n of nodes) {
    ns[n.name] = sb.netns(n.name);
    ns[n.name].sysctl('net.ipv4.ip_forward', '1');
  }
  sb.link(ns.a, 'eth0', ns.b, 'eth0', { aAddr: 'fd00:10::2/64', bAddr: 'fd00:10::3/64' });
  for (const [i, n] of nodes.entries()) {
    // nodad: the underlay address must be usable at once, not after duplicate detection.
    ns[n.name].ip('addr', 'change', `${n.underlayIp}/64`, 'dev', 'eth0', 'nodad');
    ns[n.name].ip('route', 'add', 'default', 'dev', 'eth0'); // lets proxy ARP answer for 169.254.1.1
    pods[n.name] = addRoutedPod(sb, ns[n.name], `p${n.name}`, n.podIp, hostVethName(60 + i));
  }
  for (const [i, n] of nodes.entries()) {
    const r = new VxlanReconciler({ netnsPath: ns[n.name].path });
    recs.push(r);
    await r.reconcile(desired(i));
  }
});

afterAll(async () => {
  for (const r of recs) r.close();
  await sb.cleanup();
});

describe('vxlan over an IPv6 underlay', () => {
  it('binds the VTEP to the IPv6 uplink address and takes 70 bytes off the MTU', () => {
    const [l] = ns.a.ipJson('-d', 'link', 'show', VTEP_NAME);
    expect(l.linkinfo.info_data.local6 ?? l.linkinfo.info_data.local).toBe('fd00:10::2');
    expect(l.linkinfo.info_data.link).toBe('eth0');
    expect(l.mtu).toBe(1430);
    const fdb = JSON.parse(ns.a.must('bridge', ['-j', 'fdb', 'show', 'dev', VTEP_NAME]));
    expect(fdb.find((e: { mac: string }) => e.mac === vtepMacFor('b'))?.dst).toBe('fd00:10::3');
  });

  it('pods reach each other; DF packets up to the VTEP MTU pass, bigger ones get frag-needed 1430', () => {
    expect(pods.a.ping(nodes[1].podIp, 2, 3)).toBe(true);
    expect(pods.b.ping(nodes[0].podIp, 2, 3)).toBe(true);
    const ok = pods.a.exec('ping', ['-n', '-c', '2', '-i', '0.2', '-W', '3', '-M', 'do', '-s', '1400', nodes[1].podIp]);
    expect(ok.code, ok.stdout).toBe(0);
    const big = pods.a.exec('ping', ['-n', '-c', '1', '-W', '3', '-M', 'do', '-s', '1410', nodes[1].podIp]);
    expect(big.stdout + big.stderr).toMatch(/Frag needed and DF set \(mtu = 1430\)/);
  });

  it('guards in ip6tables, not iptables; a second reconcile changes nothing', async () => {
    expect(ns.a.must('ip6tables', ['-w', '-S', VXLAN_GUARD_CHAIN])).toContain('-s fd00:10::3/128 -j RETURN');
    expect(ns.a.exec('iptables', ['-w', '-S', VXLAN_GUARD_CHAIN]).code).not.toBe(0);
    expect((await recs[0].reconcile(desired(0))).ops).toEqual([]);
  });
});
