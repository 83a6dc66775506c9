import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as path from 'node:path';
import * as fs from 'node:fs';
import { DIST_BIN, Sandbox, must, waitFor, type Netns } from '../sandbox';
import { runCni } from '../sandbox/cni';
import { startCluster, type ClusterNode } from '../sandbox/cluster';
import { SqliteStore } from '../../src/datastore';
import { listNodes, registerNode, removeNode } from '../../src/node-daemon/registry';
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

/**
 * A data-center fabric from the datastore (issue 14 §4): 4 nodes in 2 racks,
 * BIRD as each rack's ToR (AS per rack: the ToR reflects for its rack's
 * nodes, the ToRs peer with each other over eBGP). The cluster starts as a
 * full mesh; `ternctl bgp apply` turns the mesh off and peers every node
 * with its rack's ToR, live; relabelling a node into the other rack moves
 * its peering and its AS; deleting a BGPPeer closes those sessions.
 */
describe('node daemons: BGPPeer and BGPConfiguration from the datastore, two racks with BIRD ToRs', () => {
  const sb = new Sandbox('fabric');
  let db: string;
  let dir: string;
  let nodes: Record<string, ClusterNode>;
  const pods: Record<string, { ns: Netns; ip: string }> = {};
  const tors: Record<string, string> = {};
  const NODES = ['n1', 'n2', 'n3', 'n4'];
  const rack = (r: string) => ({ rack: r, 'rack-asn': r === 'r1' ? '65101' : '65102' });
  // r2's ToR runs BFD with its nodes (the r2-tor BGPPeer asks for it); `direct`, or BIRD takes
  // iBGP for multihop and asks for multihop BFD, which Tern does not do.
  const torConf = (me: string, asn: number, other: string, otherAs: number, bfd: boolean) => `
router id ${me};
protocol device {}
protocol kernel { ipv4 { import none; export all; }; }
${bfd ? 'protocol bfd { interface "uplink0" { min rx interval 300 ms; min tx interval 300 ms; multiplier 3; }; }' : ''}
template bgp node { local ${me} as ${asn}; rr client; direct; hold time 9; connect retry time 2; error wait time 1, 5; ${bfd ? 'bfd on;' : ''} ipv4 { import all; export all; }; }
${NODES.map((n, i) => `protocol bgp ${n} from node { neighbor 192.0.2.${11 + i} as ${asn}; }`).join('\n')}
protocol bgp tor { local ${me} as ${asn}; neighbor ${other} as ${otherAs}; hold time 9; connect retry time 2; error wait time 1, 5; ipv4 { import all; export all; next hop keep; }; }
`;
  const birdc = (r: string, ...args: string[]) => must('birdc', ['-s', tors[r], ...args]);
  /** Prefixes a ToR learned over one session (`birdc show route protocol X`). */
  const learned = (r: string, proto: string) => [...birdc(r, 'show', 'route', 'protocol', proto).matchAll(/^(\d+\.\d+\.\d+\.\d+\/\d+)/gm)].map((m) => m[1]);
  const up = (r: string, proto: string) => new RegExp(`^${proto}\\s+BGP\\s+\\S+\\s+up\\s`, 'm').test(birdc(r, 'show', 'protocols'));
  const ternctl = (...args: string[]) => nodes.n1.ns.exec(process.execPath, [path.join(DIST_BIN, 'ternctl'), '--datastore', db, ...args]);
  const unreachable = () => NODES.flatMap((a) => NODES.filter((b) => a !== b && !pods[a].ns.ping(pods[b].ip, 1, 2)).map((b) => `${a}->${b}`));

  beforeAll(async () => {
    let lan;
    ({ nodes, db, dir, lan } = await startCluster(sb, NODES, { bgp: 'bgp: {mesh: true, holdTime: 9, restartTime: 0}', labels: { n1: rack('r1'), n2: rack('r1'), n3: rack('r2'), n4: rack('r2') } }));
    for (const [r, me, asn, other, otherAs] of [['r1', '192.0.2.101', 65101, '192.0.2.102', 65102], ['r2', '192.0.2.102', 65102, '192.0.2.101', 65101]] as const) {
      const ns = sb.netns(`tor${r}`);
      lan.attach(ns, me);
      const conf = path.join(dir, `tor-${r}.conf`);
      tors[r] = path.join(dir, `tor-${r}.ctl`);
      fs.writeFileSync(conf, torConf(me, asn, other, otherAs, r === 'r2'));
      sb.daemon('bird', ['-c', conf, '-s', tors[r], '-f'], { netns: ns });
    }
    for (const [i, n] of NODES.entries()) {
      const ns = sb.netns(`pod${i + 1}`);
      const r = await runCni(nodes[n].ns, { command: 'ADD', containerId: `ctr-fab-${i}`, netns: ns.path, ifname: 'eth0', config: nodes[n].conf });
      expect(r.code, r.stdout + nodes[n].daemon!.output().slice(-2000)).toBe(0);
      pods[n] = { ns, ip: r.json.ips[0].address.split('/')[0] };
    }
    await waitFor(() => fs.existsSync(tors.r1) && fs.existsSync(tors.r2) && up('r1', 'tor'), { what: 'ToRs up', timeoutMs: 30_000 });
  }, 180_000);
  afterAll(() => sb.cleanup());

  it('`ternctl bgp apply`: mesh off, each node peers with its rack\'s ToR in the rack\'s AS, live, and every pod reaches every other', async () => {
    const file = path.join(dir, 'fabric.yaml');
    fs.writeFileSync(file, `
kind: BGPConfiguration
metadata: {name: default}
spec: {nodeToNodeMesh: false, asNumber: 64512, nodeASLabel: rack-asn}
---
kind: BGPPeer
metadata: {name: r1-tor}
spec: {peerIP: 192.0.2.101, nodeSelector: rack == "r1"}
---
kind: BGPPeer
metadata: {name: r2-tor}
spec: {peerIP: 192.0.2.102, nodeSelector: rack == "r2", bfd: {minRx: 300, minTx: 300, multiplier: 3}}
`);
    const r = ternctl('bgp', 'apply', '-f', file);
    expect(r.code, r.stderr).toBe(0);
    for (const [rk, ns] of [['r1', ['n1', 'n2']], ['r2', ['n3', 'n4']]] as const) {
      await waitFor(() => ns.every((n) => up(rk, n)), { what: `${rk}'s nodes peer with their ToR (${birdc(rk, 'show', 'protocols')})`, timeoutMs: 60_000 });
    }
    // No node peers with another node any more, nor with the other rack's ToR.
    await waitFor(() => NODES.every((n) => JSON.parse(nodes[n].ns.must(path.join(DIST_BIN, 'ternctl'), ['status', '-o', 'json'])).bgp.peers.length === 1), { what: 'mesh sessions gone', timeoutMs: 30_000 });
    // Each ToR learns from each of its rack's nodes exactly one route per block the node owns, no /32.
    await waitFor(() => ['n1', 'n2'].every((n) => learned('r1', n).length === 1) && ['n3', 'n4'].every((n) => learned('r2', n).length === 1) || undefined, { what: 'one block per node at its ToR', timeoutMs: 30_000 });
    const counts = Object.fromEntries([['r1', 'n1'], ['r1', 'n2'], ['r2', 'n3'], ['r2', 'n4']].map(([rk, n]) => [`${rk}<-${n}`, learned(rk, n)]));
    console.log(`routes each ToR learned per node: ${JSON.stringify(counts)}`);
    for (const l of Object.values(counts)) {
      expect(l).toHaveLength(1);
      expect(l[0]).toMatch(/\/26$/);
    }
    expect(learned('r1', 'n3')).toEqual([]); // the other rack's nodes do not peer here
    await waitFor(() => unreachable().length === 0 || undefined, { what: `pods reach each other (${unreachable()})`, timeoutMs: 30_000 });
    // BFD from the BGPPeer resource, with BIRD's bfd on the ToR: in `ternctl status` and /metrics.
    await waitFor(() => JSON.parse(nodes.n3.ns.must(path.join(DIST_BIN, 'ternctl'), ['status', '-o', 'json'])).bgp.peers[0].bfd?.state === 'Up' || undefined, { what: `BFD up between n3 and its ToR (${nodes.n3.ns.must(path.join(DIST_BIN, 'ternctl'), ['status', '-o', 'json']).slice(0, 1500)} ${nodes.n3.daemon!.output().split('\n').filter((l) => /bfd|BFD/.test(l)).slice(-5).join('\n')} ${birdc('r2', 'show', 'bfd', 'sessions')})`, timeoutMs: 30_000 });
    const m = nodes.n3.ns.must(process.execPath, ['-e', "fetch('http://127.0.0.1:9099/metrics').then((r) => r.text()).then((t) => process.stdout.write(t))"]);
    expect(m).toMatch(/tern_bgp_bfd_up\{peer="192\.0\.2\.102"\} 1/);
  }, 180_000);

  it('labelling a node into the other rack moves its peering and its AS', async () => {
    const store = new SqliteStore({ path: db });
    try {
      const rec = (await listNodes(store)).find((n) => n.name === 'n2')!;
      await registerNode(store, { ...rec, labels: rack('r2') });
    } finally {
      await store.close();
    }
    await waitFor(() => up('r2', 'n2') && !up('r1', 'n2'), { what: 'n2 peers with r2\'s ToR only', timeoutMs: 60_000 });
    await waitFor(() => learned('r2', 'n2').length === 1 || undefined, { what: 'r2 learns n2\'s block', timeoutMs: 30_000 });
    expect(learned('r1', 'n2')).toEqual([]);
    expect(JSON.parse(nodes.n2.ns.must(path.join(DIST_BIN, 'ternctl'), ['status', '-o', 'json'])).bgp.asn).toBe(65102);
    await waitFor(() => unreachable().length === 0 || undefined, { what: `pods reach each other after the move (${unreachable()})`, timeoutMs: 30_000 });
  }, 120_000);

  it('deleting a BGPPeer closes those sessions and the ToR forgets their routes', async () => {
    const r = ternctl('bgp', 'delete', 'BGPPeer', 'r1-tor');
    expect(r.code, r.stderr).toBe(0);
    await waitFor(() => !up('r1', 'n1') && learned('r1', 'n1').length === 0, { what: 'n1 gone from r1', timeoutMs: 30_000 });
    const g = ternctl('-o', 'json', 'bgp', 'get');
    expect(JSON.parse(g.stdout).map((x: { name: string }) => x.name)).toEqual(['default', 'r2-tor']);
  }, 60_000);
});
