import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as path from 'node:path';
import { DIST_BIN, Sandbox, waitFor, type Netns } from '../sandbox';
import { runCni } from '../sandbox/cni';
import { startCluster, type ClusterNode } from '../sandbox/cluster';
import { SqliteStore } from '../../src/datastore';
import { removeNode } from '../../src/node-daemon/registry';
import { addrToBigInt, parsePrefix, prefixContains } from '../../src/lib/cidr';

/**
 * Two nodes on one L2 segment, each running `ternctl node run` with BGP on,
 * sharing one datastore: pods attached through the real `tern` binary get
 * addresses from per-node blocks, each daemon advertises its blocks to the
 * other (full mesh from the node registry), and pods on different nodes reach
 * each other through the routes BGP installs. A node that leaves the registry
 * has its routes withdrawn.
 */
describe('node daemons: BGP full mesh from the node registry', () => {
  const sb = new Sandbox('mesh');
  let db: string;
  let nodes: Record<string, ClusterNode>;
  const pods: Record<string, { ns: Netns; ip: string }> = {};

  const bgpRoutes = (n: string) => nodes[n].ns.ipJson('route', 'show', 'proto', '86').filter((r: any) => r.gateway);

  beforeAll(async () => {
    ({ nodes, db } = await startCluster(sb, ['n1', 'n2'], { bgp: 'bgp: {mesh: true, holdTime: 9, restartTime: 0}' }));
    for (const [i, n] of ['n1', 'n2'].entries()) {
      const ns = sb.netns(`pod${i + 1}`);
      const r = await runCni(nodes[n].ns, { command: 'ADD', containerId: `ctr-mesh-${i}`, netns: ns.path, ifname: 'eth0', config: nodes[n].conf });
      expect(r.code, r.stdout + nodes[n].daemon!.output().slice(-2000)).toBe(0);
      pods[n] = { ns, ip: r.json.ips[0].address.split('/')[0] };
    }
  }, 120_000);
  afterAll(() => sb.cleanup());

  it('each node learns the other node\'s block over BGP and installs it via that node', async () => {
    for (const [self, other] of [['n1', 'n2'], ['n2', 'n1']]) {
      const routes = await waitFor(() => {
        const r = bgpRoutes(self).filter((x: any) => x.gateway === nodes[other].ip);
        return r.length ? r : undefined;
      }, { what: `${self} learns ${other}'s block`, timeoutMs: 60_000 });
      expect(routes.every((r: any) => r.dst.endsWith('/26'))).toBe(true);
    }
    // The blocks differ, and each pod's address lies in its own node's block.
    const b1 = bgpRoutes('n2')[0].dst as string;
    const b2 = bgpRoutes('n1')[0].dst as string;
    expect(b1).not.toBe(b2);
    expect(prefixContains(parsePrefix(b1), addrToBigInt(pods.n1.ip))).toBe(true);
    expect(prefixContains(parsePrefix(b2), addrToBigInt(pods.n2.ip))).toBe(true);
    const list = nodes.n1.ns.must(path.join(DIST_BIN, 'ternctl'), ['--datastore', db, 'node', 'list', '-o', 'json']);
    expect(JSON.parse(list).map((n: any) => n.name).sort()).toEqual(['n1', 'n2']);
    // ternctl status asks the node's daemon: ready, datastore reachable, its block, the session Established.
    const st = nodes.n1.ns.exec(path.join(DIST_BIN, 'ternctl'), ['status', '-o', 'json']);
    expect(st.code, st.stdout + st.stderr + nodes.n1.daemon!.output().slice(-3000)).toBe(0);
    const status = JSON.parse(st.stdout);
    expect(status).toMatchObject({ node: 'n1', ready: true, datastore: { type: 'sqlite', reachable: true }, blocks: [b1] });
    expect(status.bgp.peers).toEqual([expect.objectContaining({ address: nodes.n2.ip, asn: 64512, state: 'Established' })]);
    const table = nodes.n1.ns.must(path.join(DIST_BIN, 'ternctl'), ['status']);
    expect(table).toMatch(new RegExp(`${nodes.n2.ip.replace(/\./g, '\\.')}\\s+64512\\s+Established`));
  });

  it('/metrics shows the session state and the routes', () => {
    const m = nodes.n1.ns.must(process.execPath, ['-e', "fetch('http://127.0.0.1:9099/metrics').then((r) => r.text()).then((t) => process.stdout.write(t))"]);
    expect(m).toMatch(/tern_bgp_session_state\{peer="192\.0\.2\.12"\} 6/);
    expect(m).toMatch(/tern_bgp_routes [1-9]/);
  });

  it('pods on different nodes reach each other through the BGP routes', () => {
    expect(pods.n1.ns.ping(pods.n2.ip, 2, 3)).toBe(true);
    expect(pods.n2.ns.ping(pods.n1.ip, 2, 3)).toBe(true);
  });

  it('a node removed from the registry has its routes withdrawn on the others', async () => {
    // Its daemon still runs: the withdrawal comes from n1 following the registry, not from a dead session.
    const store = new SqliteStore({ path: db });
    try {
      await removeNode(store, 'n2');
    } finally {
      await store.close();
    }
    await waitFor(() => bgpRoutes('n1').every((r: any) => r.gateway !== nodes.n2.ip) || undefined, { what: 'n2 routes withdrawn on n1', timeoutMs: 60_000 });
    expect(bgpRoutes('n1')).toEqual([]);
    expect(pods.n1.ns.ping(pods.n2.ip, 1, 1)).toBe(false);
    expect(nodes.n2.daemon!.child.exitCode).toBeNull();
    await nodes.n2.daemon!.stop('SIGTERM');
  });
});
