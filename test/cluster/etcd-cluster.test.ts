import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as path from 'node:path';
import { DIST_BIN, REPO, Sandbox, waitFor, type Netns } from '../sandbox';
import { runCni } from '../sandbox/cni';
import { makeLan, startCluster, type ClusterNode } from '../sandbox/cluster';
import { startEtcd, type EtcdCluster } from '../sandbox/etcd';
import { startBird, type BirdNode } from '../bgp/harness';

/**
 * The cluster end to end, in namespaces: a 3-member etcd, 4 nodes each
 * running the daemon, pods of two tenants on every node attached through the
 * real `tern` binary.
 *   1. Full-mesh BGP from the registry: all pairs of pods reach each other.
 *   2. Tenant isolation across nodes, from one policy file in etcd.
 *   3. A node removed from the registry: its routes are withdrawn everywhere.
 *   4. A BIRD route reflector stands in for the data-center fabric, the nodes
 *      its clients (daemons restarted with the new peering), and the pool's
 *      BGP community reaches it.
 */
describe('cluster: 4 node daemons on a 3-member etcd', () => {
  const sb = new Sandbox('clus');
  let etcd: EtcdCluster;
  let bird: BirdNode;
  let nodes: Record<string, ClusterNode>;
  let endpoints: string;
  const NAMES = ['n1', 'n2', 'n3', 'n4'];
  const TENANT: Record<string, string> = { n1: 'alpha', n2: 'beta', n3: 'alpha', n4: 'beta' };
  const pods: Record<string, { ns: Netns; ip: string; tenant: string }> = {};
  const ternctl = (n: string, ...args: string[]) => nodes[n].ns.exec(path.join(DIST_BIN, 'ternctl'), ['--datastore', endpoints, ...args]);
  const learned = (n: string) => nodes[n].ns.ipJson('route', 'show', 'proto', '86').filter((r: any) => r.gateway).map((r: any) => `${r.dst} via ${r.gateway}`).sort();
  /** Every other live node's block, via that node. */
  const meshed = (live: string[]) => live.every((n) => live.filter((o) => o !== n).every((o) => learned(n).some((r: string) => r.endsWith(`via ${nodes[o].ip}`))));
  const reach = (a: string, b: string, timeoutS = 1) => pods[a].ns.ping(pods[b].ip, 1, timeoutS);
  /** Flows that disagree with `want(a, b)`, each tried until it agrees (denials need a short timeout only). */
  const matrix = (live: string[], want: (a: string, b: string) => boolean) => {
    const bad: string[] = [];
    for (const a of live) for (const b of live) if (a !== b) {
      const w = want(a, b);
      let got = reach(a, b, w ? 2 : 0.5);
      if (w && !got) got = reach(a, b, 2);
      if (got !== w) bad.push(`${a}->${b} ${got ? 'allowed' : 'denied'}`);
    }
    return bad;
  };

  beforeAll(async () => {
    const lan = makeLan(sb);
    const etcdNs = sb.netns('etcd');
    lan.attach(etcdNs, '192.0.2.2');
    etcdNs.ip('addr', 'add', '192.0.2.3/24', 'dev', 'uplink0');
    etcdNs.ip('addr', 'add', '192.0.2.4/24', 'dev', 'uplink0');
    etcd = await startEtcd(sb, { members: 3, netns: etcdNs, hosts: ['192.0.2.2', '192.0.2.3', '192.0.2.4'] });
    endpoints = etcd.endpoints.join(',');
    const rr = sb.netns('rr');
    lan.attach(rr, '192.0.2.5');
    const clients = NAMES.map((n, i) => `protocol bgp ${n} from node { neighbor 192.0.2.${11 + i} as 64512; }`).join('\n');
    bird = startBird(sb, rr, sb.tmpdir(), 'rr', `
router id 192.0.2.5;
protocol device {}
template bgp node {
  local 192.0.2.5 as 64512; direct; rr client; rr cluster id 192.0.2.5;
  hold time 9; connect retry time 2; error wait time 1, 5;
  ipv4 { import all; export all; };
}
${clients}
`);
    ({ nodes } = await startCluster(sb, NAMES, {
      lan,
      bgp: 'bgp: {mesh: true, holdTime: 9, restartTime: 60}',
      datastore: { yaml: `{type: etcd, endpoints: [${etcd.endpoints.join(', ')}]}`, cni: { type: 'etcd', endpoints: etcd.endpoints } },
    }));
    for (const n of NAMES) {
      const ns = sb.netns(`pod-${n}`);
      const r = await runCni(nodes[n].ns, { command: 'ADD', containerId: `ctr-${n}`, netns: ns.path, ifname: 'eth0', args: `K8S_POD_NAMESPACE=${TENANT[n]};K8S_POD_NAME=p-${n}`, config: nodes[n].conf });
      expect(r.code, r.stdout + nodes[n].daemon!.output().slice(-2000)).toBe(0);
      pods[n] = { ns, ip: r.json.ips[0].address.split('/')[0], tenant: TENANT[n] };
    }
  }, 180_000);
  afterAll(() => sb.cleanup());

  it('full mesh from the registry: every block learned via its own node, all 12 pod pairs reach', async () => {
    expect(JSON.parse(ternctl('n1', '-o', 'json', 'node', 'list').stdout).map((n: any) => n.name)).toEqual(NAMES);
    await waitFor(() => meshed(NAMES) || undefined, { what: 'full mesh converged', timeoutMs: 90_000 });
    for (const n of NAMES) expect(learned(n).length).toBe(3);
    expect(matrix(NAMES, () => true)).toEqual([]);
  }, 120_000);

  it('tenant isolation across nodes: one policy file in etcd, every daemon programs its node', async () => {
    const r = ternctl('n1', 'policy', 'apply', '-f', path.join(REPO, 'docs', 'examples', 'tenant-isolation.yaml'));
    expect(r.code, r.stderr).toBe(0);
    await waitFor(() => (!reach('n1', 'n2', 0.5) && !reach('n4', 'n3', 0.5)) || undefined, { what: 'isolation programmed', timeoutMs: 30_000 });
    expect(matrix(NAMES, (a, b) => TENANT[a] === TENANT[b])).toEqual([]);
  }, 120_000);

  it('a node removed from the registry: its routes are withdrawn on every other node', async () => {
    const block = learned('n1').find((r: string) => r.endsWith(`via ${nodes.n4.ip}`));
    expect(block).toBeDefined();
    const r = ternctl('n1', 'node', 'remove', 'n4');
    expect(r.code, r.stderr).toBe(0);
    await waitFor(() => ['n1', 'n2', 'n3'].every((n) => !learned(n).some((x: string) => x.endsWith(`via ${nodes.n4.ip}`))) || undefined, { what: 'n4 withdrawn everywhere', timeoutMs: 60_000 });
    expect(reach('n2', 'n4', 0.5)).toBe(false);
    await nodes.n4.daemon!.stop('SIGTERM');
  }, 90_000);

  it('a BIRD route reflector as the fabric: the nodes become its clients, and the pool community reaches it', async () => {
    const c = ternctl('n1', 'ipam', 'pool', 'set', '10.244.0.0/16', '--community', '64512:100');
    expect(c.code, c.stderr).toBe(0);
    for (const n of NAMES) {
      const node = nodes[n];
      node.bgp = 'bgp: {mesh: false, holdTime: 9, restartTime: 60, peers: [{address: 192.0.2.5, asn: 64512}]}';
      await node.daemon?.stop('SIGTERM');
      await node.start(); // n4 registers again
    }
    await waitFor(() => NAMES.every((n) => new RegExp(`${n}\\s+BGP\\s+\\S+\\s+up`).test(bird.birdc('show', 'protocols'))) || undefined, { what: `BIRD sees 4 clients: ${bird.birdc('show', 'protocols')}`, timeoutMs: 60_000 });
    // Only the reflector session remains on each node; routes come reflected, next hop unchanged.
    for (const n of NAMES) {
      const st = JSON.parse(nodes[n].ns.exec(path.join(DIST_BIN, 'ternctl'), ['status', '-o', 'json']).stdout || '{}');
      expect(st.bgp.peers.map((p: any) => p.address)).toEqual(['192.0.2.5']);
    }
    await waitFor(() => meshed(NAMES) || undefined, { what: 'all blocks via the reflector', timeoutMs: 90_000 });
    const table = bird.birdc('show', 'route', 'all');
    for (const n of NAMES) expect(table).toContain(`BGP.next_hop: ${nodes[n].ip}`);
    expect(table).toMatch(/BGP\.community: \(64512,100\)/);
    expect(matrix(NAMES, (a, b) => TENANT[a] === TENANT[b])).toEqual([]);
  }, 240_000);
});
