/**
 * vxlan-crosssubnet: n1 and n2 share an underlay subnet, n3 sits behind the
 * router. Same-subnet pod traffic must go bare over the L2 segment; traffic
 * to or from the other subnet must be VXLAN. Checked with tcpdump on the
 * nodes' uplinks.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RTPROT_VXLAN } from '../../src/lib/constants';
import { VxlanReconciler, VTEP_NAME } from '../../src/overlay';
import { Sandbox } from '../sandbox';
import { buildTopology, capture, remoteOf, selfOf, startEcho, tcpEcho, type NsProcess, type Topology } from './topology';

const sb = new Sandbox('ocs');
let topo: Topology;
const recs: VxlanReconciler[] = [];
const servers: NsProcess[] = [];

beforeAll(async () => {
  topo = buildTopology(sb);
  for (const n of topo.nodes) {
    const r = new VxlanReconciler({ netnsPath: n.ns.path });
    recs.push(r);
    await r.reconcile({ self: selfOf(n), remotes: topo.nodes.filter((o) => o !== n).map(remoteOf), mode: 'vxlan-crosssubnet' });
  }
  for (const n of topo.nodes) servers.push(await startEcho(n.pod, 7000));
});

afterAll(async () => {
  for (const s of servers) await s.stop();
  for (const r of recs) r.close();
  await sb.cleanup();
});

describe('vxlan-crosssubnet mode', () => {
  it('routes same-subnet blocks directly via the node and other-subnet blocks through the VTEP', () => {
    const [n1, n2, n3] = topo.nodes;
    const [direct] = n1.ns.ipJson('route', 'show', n2.block);
    expect(direct).toMatchObject({ gateway: n2.underlayIp, dev: 'eth0' });
    expect(String(direct.protocol)).toBe(String(RTPROT_VXLAN));
    const [enc] = n1.ns.ipJson('route', 'show', n3.block);
    expect(enc).toMatchObject({ gateway: n3.tunnelIp, dev: VTEP_NAME });
    expect(enc.flags).toContain('onlink');
    // n2 needs no FDB/neighbor entry on n1's VTEP; n3 does.
    const fdb = JSON.parse(n1.ns.must('bridge', ['-j', 'fdb', 'show', 'dev', VTEP_NAME])).map((e: { dst?: string }) => e.dst);
    expect(fdb).toEqual([n3.underlayIp]);
  });

  it('all pod pairs reach each other by ping and TCP', async () => {
    for (const a of topo.nodes) {
      for (const b of topo.nodes) {
        if (a === b) continue;
        expect(a.pod.ping(b.podIp, 2, 3), `${a.name} -> ${b.name} ping`).toBe(true);
        expect(await tcpEcho(a.pod, b.podIp, 7000), `${a.name} -> ${b.name} tcp`).toBe(true);
      }
    }
  });

  it('same-subnet pod traffic is not encapsulated', async () => {
    const [n1, n2] = topo.nodes;
    const vx = await capture(n1.ns, 'eth0', 'udp port 4789', () => n1.pod.ping(n2.podIp, 3, 3));
    expect(vx).toEqual([]);
    const bare = await capture(n1.ns, 'eth0', `icmp and host ${n2.podIp}`, () => n1.pod.ping(n2.podIp, 3, 3));
    expect(bare.length).toBeGreaterThanOrEqual(6); // 3 requests + 3 replies, pod addresses on the wire
  });

  it('cross-subnet pod traffic is encapsulated in both directions', async () => {
    const [n1, , n3] = topo.nodes;
    const bare = await capture(n1.ns, 'eth0', `icmp and host ${n3.podIp}`, () => n1.pod.ping(n3.podIp, 3, 3));
    expect(bare).toEqual([]);
    const vx = await capture(n3.ns, 'eth0', 'udp port 4789', () => n1.pod.ping(n3.podIp, 3, 3));
    const toN3 = vx.filter((l) => l.includes(`> ${n3.underlayIp}.4789`));
    const fromN3 = vx.filter((l) => l.includes(`${n3.underlayIp}.`) && l.includes(`> ${n1.underlayIp}.4789`));
    expect(toN3.length).toBeGreaterThanOrEqual(3);
    expect(fromN3.length).toBeGreaterThanOrEqual(3);
  });

  it('a node moving to the other subnet switches its path from direct to VXLAN', async () => {
    const [n1, n2] = topo.nodes;
    // Pretend n2's underlay changed subnet: same address, but n1 now sees it as remote.
    const moved = { ...remoteOf(n2), subnet: '10.10.9.0/24' };
    const res = await recs[0].reconcile({ self: { ...selfOf(n1), subnet: '10.10.1.0/25' }, remotes: [moved, remoteOf(topo.nodes[2])], mode: 'vxlan-crosssubnet' });
    // 10.10.1.3 is still inside 10.10.1.0/25, so nothing changes: the decision uses our subnet.
    expect(res.ops).toEqual([]);
    const res2 = await recs[0].reconcile({ self: { ...selfOf(n1), subnet: '10.10.1.2/32' }, remotes: [moved, remoteOf(topo.nodes[2])], mode: 'vxlan-crosssubnet' });
    expect(res2.ops.map((o) => o.kind).sort()).toEqual(['setFdb', 'setNeighbor', 'setRoute']);
    const [r] = n1.ns.ipJson('route', 'show', n2.block);
    expect(r).toMatchObject({ gateway: n2.tunnelIp, dev: VTEP_NAME });
    expect(n1.pod.ping(n2.podIp, 2, 3)).toBe(true);
  });
});
