/**
 * Anti-spoofing from the node's first pod: a pod sends forged UDP (raw socket,
 * any source address) to a pod on another node. Whatever the policies, only
 * packets carrying the pod's own address, on its own interface, leave its
 * node: another pod's address, an unallocated pool address and an address
 * outside every pool all arrive 0 times. Reverse-path filtering is off on the
 * nodes, so the check is Tern's own, not the kernel's rp_filter.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { spawn } from 'node:child_process';
import { DIST_BIN, Sandbox, waitFor, type Netns } from '../sandbox';
import { runCni } from '../sandbox/cni';
import { startCluster, type ClusterNode } from '../sandbox/cluster';

const FORGE = path.join(__dirname, 'fixtures', 'forge.py');
const COUNT = 50;

describe('anti-spoofing is in force from the first pod, policy or not', () => {
  const sb = new Sandbox('aspoof');
  let nodes: Record<string, ClusterNode>;
  let db: string;
  let dir: string;
  const pods: Record<string, { ns: Netns; ip: string }> = {};

  beforeAll(async () => {
    ({ nodes, db, dir } = await startCluster(sb, ['n1', 'n2'], { bgp: 'bgp: {mesh: true, holdTime: 9, restartTime: 0}' }));
    for (const n of Object.values(nodes)) for (const k of ['all', 'default']) n.ns.sysctl(`net.ipv4.conf.${k}.rp_filter`, '0');
    for (const [name, node] of [['p1', 'n1'], ['p2', 'n1'], ['q', 'n2']] as const) {
      const ns = sb.netns(name);
      const r = await runCni(nodes[node].ns, { command: 'ADD', containerId: `ctr-${name}`, netns: ns.path, ifname: 'eth0', args: `K8S_POD_NAMESPACE=spoof;K8S_POD_NAME=${name}`, config: nodes[node].conf });
      expect(r.code, r.stdout).toBe(0);
      pods[name] = { ns, ip: r.json.ips[0].address.split('/')[0] };
    }
    // BGP has exchanged the blocks once p1 reaches q.
    await waitFor(() => pods.p1.ns.ping(pods.q.ip, 1, 1) || undefined, { what: 'p1 -> q over BGP routes', timeoutMs: 60_000 });
  }, 180_000);
  afterAll(() => sb.cleanup());

  /** Send COUNT packets from p1 with each source; what q received, per kind of source. */
  async function forged(): Promise<Record<string, number>> {
    const sources = { own: pods.p1.ip, otherPod: pods.p2.ip, unallocatedPool: '10.244.250.7', outsidePools: '198.51.100.7' };
    const recv = spawn('nsenter', [`--net=${pods.q.ns.path}`, '--', 'python3', FORGE, 'recv', '7000'], { stdio: ['pipe', 'pipe', 'inherit'] });
    let out = '';
    recv.stdout!.on('data', (d) => (out += d));
    const done = new Promise<void>((resolve) => recv.on('exit', () => resolve()));
    await waitFor(() => out.includes('ready') || undefined, { what: 'receiver', timeoutMs: 30_000 });
    // The own address goes last: its packets arriving shows the receiver was listening throughout.
    for (const src of [sources.otherPod, sources.unallocatedPool, sources.outsidePools, sources.own]) await pods.p1.ns.execAsync('python3', [FORGE, 'send', src, pods.q.ip, '7000', String(COUNT)]);
    await new Promise((r) => setTimeout(r, 500));
    recv.stdin!.end();
    await done;
    const seen = JSON.parse(out.split('\n').filter(Boolean).pop()!) as Record<string, number>;
    return Object.fromEntries(Object.entries(sources).map(([k, ip]) => [k, seen[ip] ?? 0]));
  }

  it('with no policy stored: forged sources arrive 0 times, the own address gets through', async () => {
    const got = await forged();
    expect({ ...got, own: got.own >= COUNT - 2 }).toEqual({ own: true, otherPod: 0, unallocatedPool: 0, outsidePools: 0 });
  });

  it('with a policy stored: the same', async () => {
    const f = path.join(dir, 'allow.yaml');
    fs.writeFileSync(f, 'apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: q-any, namespace: spoof}\nspec:\n  podSelector: {}\n  ingress: [{}]\n');
    const r = nodes.n1.ns.exec(path.join(DIST_BIN, 'ternctl'), ['--datastore', db, 'policy', 'apply', '-f', f]);
    expect(r.code, r.stderr).toBe(0);
    // Both daemons have programmed the policy into their pods' ingress chains.
    for (const n of Object.values(nodes)) await waitFor(() => /-A tern-tw-\S+ .*-j ACCEPT/.test(n.ns.exec('iptables-save', ['-t', 'filter']).stdout) || undefined, { what: `policy on ${n.name}`, timeoutMs: 20_000 });
    const got = await forged();
    expect({ ...got, own: got.own >= COUNT - 2 }).toEqual({ own: true, otherPod: 0, unallocatedPool: 0, outsidePools: 0 });
  });
});
