import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as path from 'node:path';
import { DIST_BIN, Sandbox, waitFor, type Netns } from '../sandbox';
import { runCni } from '../sandbox/cni';
import { makeLan, startCluster, type ClusterNode } from '../sandbox/cluster';
import { VTEP_NAME, vtepMacFor } from '../../src/overlay';

/**
 * VXLAN driven by the node daemons: the pool is in vxlan mode, the daemons
 * run without BGP, and the segment's router knows no pod route, so pods on
 * different nodes can only talk through the overlay. Each daemon takes a
 * tunnel address from the pool, publishes its VTEP in the registry and keeps
 * FDB, neighbor and route entries toward every other node; a node removed
 * from the registry has its entries removed everywhere.
 */
describe('node daemons: VXLAN overlay from the registry', () => {
  const sb = new Sandbox('dvx');
  let nodes: Record<string, ClusterNode>;
  let sw: Netns;
  let db: string;
  const NAMES = ['n1', 'n2', 'n3'];
  const pods: Record<string, { ns: Netns; ip: string }> = {};
  const ctl = (n: string, ...args: string[]) => nodes[n].ns.exec(path.join(DIST_BIN, 'ternctl'), args);
  const fdbMacs = (n: string): string[] => JSON.parse(nodes[n].ns.must('bridge', ['-j', 'fdb', 'show', 'dev', VTEP_NAME]) || '[]').filter((e: any) => e.state === 'permanent').map((e: any) => e.mac).sort();

  beforeAll(async () => {
    const lan = makeLan(sb);
    sw = lan.sw;
    ({ nodes, db } = await startCluster(sb, NAMES, {
      lan,
      bgp: 'vxlan: {vni: 4096}',
      // The pool must be in vxlan mode before the first pod: set it through the first node's datastore below.
    }));
    const pool = ctl('n1', '--datastore', db, 'ipam', 'pool', 'set', '10.244.0.0/16', '--mode', 'vxlan');
    expect(pool.code, pool.stderr).toBe(0);
    for (const n of NAMES) {
      const ns = sb.netns(`pod-${n}`);
      const r = await runCni(nodes[n].ns, { command: 'ADD', containerId: `ctr-${n}`, netns: ns.path, ifname: 'eth0', config: nodes[n].conf });
      expect(r.code, r.stdout + nodes[n].daemon!.output().slice(-2000)).toBe(0);
      pods[n] = { ns, ip: r.json.ips[0].address.split('/')[0] };
    }
  }, 120_000);
  afterAll(() => sb.cleanup());

  it('each node publishes its VTEP with a tunnel address from the pool', async () => {
    const list = await waitFor(() => {
      const l = JSON.parse(ctl('n1', '--datastore', db, '-o', 'json', 'node', 'list').stdout || '[]');
      return l.length === 3 && l.every((n: any) => n.vtep) ? l : undefined;
    }, { what: 'VTEPs published', timeoutMs: 30_000 });
    for (const n of list) {
      expect(n.vtep).toMatchObject({ mac: vtepMacFor(n.name), underlayIp: nodes[n.name].ip, subnet: '192.0.2.0/24' });
      expect(n.vtep.tunnelIp).toMatch(/^10\.244\./);
      const [addr] = nodes[n.name].ns.ipJson('addr', 'show', 'dev', VTEP_NAME);
      expect(addr.addr_info.map((a: any) => a.local)).toContain(n.vtep.tunnelIp);
    }
    const st = JSON.parse(ctl('n1', 'status', '-o', 'json').stdout);
    expect(st.overlay).toMatchObject({ mode: 'vxlan', remotes: 2 });
  });

  it('every pod reaches every other, encapsulated (UDP 4789 on the segment), with no pod route on the router', async () => {
    await waitFor(() => NAMES.every((n) => fdbMacs(n).length === 2) || undefined, { what: 'FDB entries', timeoutMs: 30_000 });
    expect(sw.ipJson('route', 'show').some((r: any) => r.dst?.startsWith('10.244.'))).toBe(false);
    const cap = sw.execAsync('timeout', ['5', 'tcpdump', '-i', 'br0', '-c', '2', '-nn', 'udp port 4789']);
    await new Promise((r) => setTimeout(r, 500));
    for (const a of NAMES) for (const b of NAMES) if (a !== b) expect(pods[a].ns.ping(pods[b].ip, 1, 2), `${a} -> ${b}`).toBe(true);
    expect((await cap).stdout).toMatch(/VXLAN, flags \[I\] \(0x08\), vni 4096/);
  });

  it('a node removed from the registry has its FDB, neighbor and route entries removed on the others', async () => {
    const r = ctl('n1', '--datastore', db, 'node', 'remove', 'n3');
    expect(r.code, r.stderr).toBe(0);
    await waitFor(() => ['n1', 'n2'].every((n) => !fdbMacs(n).includes(vtepMacFor('n3'))) || undefined, { what: 'n3 FDB entry gone', timeoutMs: 30_000 });
    for (const n of ['n1', 'n2']) {
      expect(nodes[n].ns.ipJson('route', 'show', 'dev', VTEP_NAME).length).toBe(1); // the other remaining node's block only
      expect(pods[n].ns.ping(pods.n3.ip, 1, 0.5)).toBe(false);
    }
    expect(pods.n1.ns.ping(pods.n2.ip, 1, 2)).toBe(true);
  });
});
