import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as path from 'node:path';
import { DIST_BIN, Sandbox, waitFor, type Netns } from '../sandbox';
import { runCni } from '../sandbox/cni';
import { startCluster, type ClusterNode } from '../sandbox/cluster';

/**
 * Route reflectors from the node registry instead of the full mesh (the
 * topology for large clusters): n1 and n2 carry `route-reflector=true` and
 * reflect, n3 and n4 peer with them only. Every block is still learned via
 * its own node (reflection keeps the next hop), and with one reflector gone
 * the clients still reach each other through the other.
 */
describe('node daemons: route reflectors chosen by node label', () => {
  const sb = new Sandbox('rrefl');
  let nodes: Record<string, ClusterNode>;
  const NAMES = ['n1', 'n2', 'n3', 'n4'];
  const pods: Record<string, { ns: Netns; ip: string }> = {};
  const learned = (n: string): string[] => nodes[n].ns.ipJson('route', 'show', 'proto', '86').filter((r: any) => r.gateway).map((r: any) => `${r.dst} via ${r.gateway}`);
  const peersOf = (n: string): string[] => JSON.parse(nodes[n].ns.exec(path.join(DIST_BIN, 'ternctl'), ['status', '-o', 'json']).stdout || '{"bgp":{"peers":[]}}').bgp.peers.map((p: any) => `${p.address} ${p.state}`);

  beforeAll(async () => {
    const rr = { 'route-reflector': 'true' };
    ({ nodes } = await startCluster(sb, NAMES, {
      bgp: 'bgp: {mesh: false, holdTime: 9, restartTime: 0, reflectors: {selector: route-reflector=true, clusterId: 10.0.0.1}}',
      labels: { n1: rr, n2: rr },
    }));
    for (const n of NAMES) {
      const ns = sb.netns(`pod-${n}`);
      const r = await runCni(nodes[n].ns, { command: 'ADD', containerId: `ctr-${n}`, netns: ns.path, ifname: 'eth0', config: nodes[n].conf });
      expect(r.code, r.stdout).toBe(0);
      pods[n] = { ns, ip: r.json.ips[0].address.split('/')[0] };
    }
  }, 120_000);
  afterAll(() => sb.cleanup());

  it('clients peer with the reflectors only; reflectors with everyone', async () => {
    await waitFor(() => NAMES.every((n) => peersOf(n).every((p) => p.endsWith('Established'))) || undefined, { what: 'sessions up', timeoutMs: 60_000 });
    expect(peersOf('n3')).toEqual(['192.0.2.11 Established', '192.0.2.12 Established']);
    expect(peersOf('n4')).toEqual(['192.0.2.11 Established', '192.0.2.12 Established']);
    expect(peersOf('n1')).toEqual(['192.0.2.12 Established', '192.0.2.13 Established', '192.0.2.14 Established']);
  });

  it('every block is learned via its own node, and every pod reaches every other', async () => {
    const meshed = () => NAMES.every((n) => NAMES.filter((o) => o !== n).every((o) => learned(n).some((r) => r.endsWith(`via ${nodes[o].ip}`))));
    await waitFor(() => meshed() || undefined, { what: 'reflected routes', timeoutMs: 30_000 }).catch((e) => {
      throw new Error(e.message + JSON.stringify(Object.fromEntries(NAMES.map((n) => [n, learned(n)]))) + nodes.n1.daemon!.output().split('\n').filter((l) => /warn|error|rib|update|filtered/i.test(l)).slice(-15).join('\n'));
    });
    for (const a of NAMES) for (const b of NAMES) if (a !== b) expect(pods[a].ns.ping(pods[b].ip, 1, 2), `${a} -> ${b}`).toBe(true);
  });

  it('with one reflector down, clients still reach each other through the other', async () => {
    await nodes.n1.daemon!.stop('SIGTERM');
    await new Promise((r) => setTimeout(r, 3000));
    expect(learned('n3').some((r) => r.endsWith(`via ${nodes.n4.ip}`))).toBe(true);
    expect(pods.n3.ns.ping(pods.n4.ip, 2, 2)).toBe(true);
    expect(pods.n4.ns.ping(pods.n2.ip, 2, 2)).toBe(true);
  });
});
