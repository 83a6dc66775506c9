/**
 * VXLAN mode end to end: three nodes in two subnets, pods on each, real
 * kernel VTEPs built by the reconciler. The router has no pod routes, so
 * every pod-to-pod packet between nodes must be encapsulated.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RTPROT_VXLAN } from '../../src/lib/constants';
import { VxlanReconciler, VTEP_NAME, VXLAN_GUARD_CHAIN, vtepMacFor, type OverlayDesired } from '../../src/overlay';
import { Sandbox } from '../sandbox';
import { buildTopology, capture, remoteOf, selfOf, startEcho, tcpEcho, type NsProcess, type Topology, type TopoNode } from './topology';

const sb = new Sandbox('ovx');
let topo: Topology;
const recs = new Map<string, VxlanReconciler>();
const servers: NsProcess[] = [];

function desired(n: TopoNode, others: TopoNode[], extra: Partial<OverlayDesired> = {}): OverlayDesired {
  return { self: selfOf(n), remotes: others.map(remoteOf), mode: 'vxlan', ...extra };
}

async function reconcileAll(extra: Partial<OverlayDesired> = {}) {
  const out = [];
  for (const n of topo.nodes) out.push(await recs.get(n.name)!.reconcile(desired(n, topo.nodes.filter((o) => o !== n), extra)));
  return out;
}

beforeAll(async () => {
  topo = buildTopology(sb);
  for (const n of topo.nodes) recs.set(n.name, new VxlanReconciler({ netnsPath: n.ns.path }));
  await reconcileAll();
  for (const n of topo.nodes) servers.push(await startEcho(n.pod, 7000));
});

/** Packet counters of the guard chain's rules: 'pod' = the -i tern+ rule, 'all' = the final DROP, '-s' = node RETURNs. */
function dropCount(n: TopoNode, which: 'pod' | 'all' | '-s'): number {
  const lines = n.ns.must('iptables', ['-w', '-L', VXLAN_GUARD_CHAIN, '-v', '-n', '-x']).split('\n').slice(2).filter(Boolean);
  const rows = lines.map((l) => l.trim().split(/\s+/));
  // columns: pkts bytes target prot opt in out source destination
  const pick = rows.filter((c) => (which === 'pod' ? c[2] === 'DROP' && c[5] === 'tern+' : which === 'all' ? c[2] === 'DROP' && c[5] === '*' : c[2] === 'RETURN'));
  return pick.reduce((s, c) => s + Number(c[0]), 0);
}

afterAll(async () => {
  for (const s of servers) await s.stop();
  for (const r of recs.values()) r.close();
  await sb.cleanup();
});

describe('vxlan mode', () => {
  it('creates the VTEP as specified: VNI, port, no learning, bound to the uplink, MTU minus 50, derived MAC', () => {
    for (const n of topo.nodes) {
      const [l] = n.ns.ipJson('-d', 'link', 'show', VTEP_NAME);
      expect(l.linkinfo.info_kind).toBe('vxlan');
      const d = l.linkinfo.info_data;
      expect(d.id).toBe(4096);
      expect(d.port).toBe(4789);
      expect(d.learning).toBe(false);
      expect(d.local).toBe(n.underlayIp);
      expect(d.link).toBe('eth0');
      expect(l.mtu).toBe(1450);
      expect(l.address).toBe(vtepMacFor(n.name));
      expect(l.operstate === 'UNKNOWN' || l.operstate === 'UP').toBe(true);
    }
  });

  it('installs permanent FDB and neighbor entries and onlink RTPROT_VXLAN routes for each remote', () => {
    const [n1, n2, n3] = topo.nodes;
    for (const r of [n2, n3]) {
      const fdb = JSON.parse(n1.ns.must('bridge', ['-j', 'fdb', 'show', 'dev', VTEP_NAME]));
      const f = fdb.find((e: { mac: string }) => e.mac === vtepMacFor(r.name));
      expect(f?.dst).toBe(r.underlayIp);
      expect(f?.state).toBe('permanent');
      const neigh = n1.ns.ipJson('neigh', 'show', 'dev', VTEP_NAME);
      const nb = neigh.find((e: { dst: string }) => e.dst === r.tunnelIp);
      expect(nb?.lladdr).toBe(vtepMacFor(r.name));
      expect(nb?.state).toContain('PERMANENT');
      const [route] = n1.ns.ipJson('route', 'show', r.block);
      expect(route.dev).toBe(VTEP_NAME);
      expect(route.gateway).toBe(r.tunnelIp);
      expect(route.flags).toContain('onlink');
      expect(String(route.protocol)).toBe(String(RTPROT_VXLAN));
    }
  });

  it('turns tx checksum offload off on the VTEP when asked', async () => {
    const n1 = topo.nodes[0];
    const others = topo.nodes.slice(1);
    await recs.get('n1')!.reconcile(desired(n1, others, { txChecksumOffloadOff: true }));
    expect(n1.ns.must('ethtool', ['-k', VTEP_NAME])).toMatch(/^tx-checksumming: off/m);
  });

  it('a second reconcile with the same desired state changes nothing', async () => {
    const results = await reconcileAll({ txChecksumOffloadOff: true });
    for (const r of results) expect(r.ops).toEqual([]);
  });

  it('all pod pairs reach each other by ping and TCP', async () => {
    for (const a of topo.nodes) {
      for (const b of topo.nodes) {
        if (a === b) continue;
        expect(a.pod.ping(b.podIp, 2, 3), `${a.name} pod -> ${b.name} pod ping`).toBe(true);
        expect(await tcpEcho(a.pod, b.podIp, 7000), `${a.name} pod -> ${b.name} pod tcp`).toBe(true);
      }
    }
  });

  it('pod traffic between nodes crosses the underlay encapsulated, never bare', async () => {
    const [n1, , n3] = topo.nodes;
    const vx = await capture(n1.ns, 'eth0', 'udp port 4789', () => n1.pod.ping(n3.podIp, 2, 3));
    expect(vx.length).toBeGreaterThanOrEqual(4);
    const bare = await capture(n1.ns, 'eth0', `icmp and host ${n3.podIp}`, () => n1.pod.ping(n3.podIp, 2, 3));
    expect(bare).toEqual([]);
  });

  it('1400-byte DF pings pass; oversize ones get ICMP fragmentation needed with the VTEP MTU', () => {
    const [n1, n2, n3] = topo.nodes;
    for (const b of [n2, n3]) {
      const ok = n1.pod.exec('ping', ['-n', '-c', '2', '-i', '0.2', '-W', '3', '-M', 'do', '-s', '1400', b.podIp]);
      expect(ok.code, ok.stdout + ok.stderr).toBe(0);
    }
    // 1450 bytes of payload + 28 of headers exceeds the 1450-byte VTEP MTU. The pod's own
    // link is 1500, so the too-big error can only come from the node as ICMP (type 3, code 4).
    const big = n1.pod.exec('ping', ['-n', '-c', '1', '-W', '3', '-M', 'do', '-s', '1450', n3.podIp]);
    expect(big.code).not.toBe(0);
    expect(big.stdout + big.stderr).toMatch(/Frag needed and DF set \(mtu = 1450\)/);
  });

  it('drops VXLAN from hosts that are not nodes (router injecting into the overlay)', async () => {
    const [, , n3] = topo.nodes;
    const r = topo.router;
    // The router forges a VTEP of its own and tries to reach n3's pod through n3's VTEP.
    r.ip('link', 'add', 'evil', 'type', 'vxlan', 'id', '4096', 'local', '10.10.2.1', 'dstport', '4789', 'nolearning');
    r.ip('addr', 'add', '10.244.9.9/32', 'dev', 'evil');
    r.ip('link', 'set', 'evil', 'up');
    r.must('bridge', ['fdb', 'append', vtepMacFor('n3'), 'dev', 'evil', 'dst', n3.underlayIp, 'self', 'permanent']);
    r.ip('neigh', 'add', n3.tunnelIp, 'lladdr', vtepMacFor('n3'), 'dev', 'evil', 'nud', 'permanent');
    r.ip('route', 'add', `${n3.podIp}/32`, 'via', n3.tunnelIp, 'dev', 'evil', 'onlink');
    // Control: with the guard's jump removed the injection works, so the setup really injects.
    const rules = n3.ns.must('iptables', ['-w', '-S', 'INPUT']).split('\n');
    expect(rules[1]).toContain(`-j ${VXLAN_GUARD_CHAIN}`);
    n3.ns.must('iptables', ['-w', '-D', 'INPUT', '1']);
    expect(r.ping(n3.podIp, 2, 3)).toBe(true);
    // The reconciler restores the jump; now the forged VXLAN is dropped.
    const res = await recs.get('n3')!.reconcile(desired(n3, topo.nodes.slice(0, 2)));
    expect(res.ops).toEqual([]);
    expect(n3.ns.must('iptables', ['-w', '-S', 'INPUT'])).toContain(`-j ${VXLAN_GUARD_CHAIN}`);
    expect(r.ping(n3.podIp, 2, 2)).toBe(false);
    expect(dropCount(n3, 'all')).toBeGreaterThan(0);
    // Legitimate nodes still get through.
    expect(topo.nodes[0].pod.ping(n3.podIp, 2, 3)).toBe(true);
    r.ip('link', 'del', 'evil');
  });

  it('drops VXLAN sent by pods, to their own node and through it', async () => {
    const [n1, , n3] = topo.nodes;
    const before = dropCount(n1, 'pod');
    const send = `const s = require('dgram').createSocket('udp4'); let n = 0;
      const go = () => s.send(Buffer.alloc(50), 4789, process.argv[n % 2 + 1], () => (++n < 6 ? go() : s.close())); go();`;
    n1.pod.must(process.execPath, ['-e', send, n1.underlayIp, n3.underlayIp]);
    expect(dropCount(n1, 'pod') - before).toBe(6);
  });

  it('a node leaving has its FDB, neighbor and route entries removed', async () => {
    const [n1, n2, n3] = topo.nodes;
    const res = await recs.get('n1')!.reconcile(desired(n1, [n2], { txChecksumOffloadOff: true }));
    expect(res.ops.map((o) => o.kind).sort()).toEqual(['delFdb', 'delNeighbor', 'delRoute']);
    const fdb = JSON.parse(n1.ns.must('bridge', ['-j', 'fdb', 'show', 'dev', VTEP_NAME]));
    expect(fdb.some((e: { mac: string }) => e.mac === vtepMacFor('n3'))).toBe(false);
    expect(n1.ns.ipJson('neigh', 'show', 'dev', VTEP_NAME).some((e: { dst: string }) => e.dst === n3.tunnelIp)).toBe(false);
    expect(n1.ns.ipJson('route', 'show', n3.block)).toEqual([]);
    expect(n1.pod.ping(n3.podIp, 1, 1)).toBe(false);
    // n2 is untouched and still reachable.
    expect(n1.pod.ping(n2.podIp, 2, 3)).toBe(true);
  });
});
