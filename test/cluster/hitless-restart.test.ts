import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as path from 'node:path';
import { DIST_BIN, Sandbox, waitFor, type Netns } from '../sandbox';
import { runCni } from '../sandbox/cni';
import { hostVethName } from '../../src/dataplane/endpoint-plan';
import { ifaceGroup } from '../../src/lib/iface-group';
import { startCluster, type ClusterNode } from '../sandbox/cluster';

/**
 * Restarting a node daemon costs no packet. The dataplane is the kernel's:
 * pod veths, host routes and block blackholes stay, the BGP routes stay in
 * both kernels (graceful restart, RFC 4724: the restarting node leaves its
 * FIB alone and its peer keeps the routes as stale until End-of-RIB), and the
 * new daemon adopts them by mark and sweep. Both a clean stop (SIGTERM) and a
 * crash (SIGKILL) are restarted under a 50-packets-per-second flow.
 */
describe('node daemon restart under traffic', () => {
  const sb = new Sandbox('hitl');
  let nodes: Record<string, ClusterNode>;
  const pods: Record<string, { ns: Netns; ip: string }> = {};
  const bgpRoutes = (n: string) => nodes[n].ns.ipJson('route', 'show', 'proto', '86').filter((r: any) => r.gateway).map((r: any) => `${r.dst} via ${r.gateway}`).sort();
  const established = (n: string) => {
    const r = nodes[n].ns.exec(path.join(DIST_BIN, 'ternctl'), ['status', '-o', 'json']);
    return r.code === 0 && JSON.parse(r.stdout).bgp.peers.every((p: any) => p.state === 'Established');
  };

  beforeAll(async () => {
    ({ nodes } = await startCluster(sb, ['n1', 'n2'], { bgp: 'bgp: {mesh: true, holdTime: 9, restartTime: 60}' }));
    for (const [i, n] of ['n1', 'n2'].entries()) {
      const ns = sb.netns(`pod${i + 1}`);
      const r = await runCni(nodes[n].ns, { command: 'ADD', containerId: `ctr-hitl-${i}`, netns: ns.path, ifname: 'eth0', config: nodes[n].conf });
      expect(r.code, r.stdout).toBe(0);
      pods[n] = { ns, ip: r.json.ips[0].address.split('/')[0] };
    }
    await waitFor(() => (bgpRoutes('n1').length && bgpRoutes('n2').length && pods.n1.ns.ping(pods.n2.ip, 1, 1)) || undefined, { what: 'routes both ways', timeoutMs: 60_000 });
  }, 120_000);
  afterAll(() => sb.cleanup());

  /** Restart n1's daemon with `signal` while pod1 pings pod2; returns the ping summary. */
  let lost: number[] = [];
  async function restartUnderTraffic(signal: NodeJS.Signals, whileDown?: () => void): Promise<{ sent: number; received: number }> {
    const before = { n1: bgpRoutes('n1'), n2: bgpRoutes('n2') };
    // -w: wait for late replies up to a deadline, so a reply slowed by a loaded machine is not counted lost.
    const flow = pods.n1.ns.execAsync('ping', ['-n', '-i', '0.02', '-c', '400', '-w', '30', pods.n2.ip], { timeoutMs: 60_000 });
    await new Promise((r) => setTimeout(r, 1000));
    await nodes.n1.daemon!.stop(signal);
    // While n1 is down its routes stay on both sides.
    expect(bgpRoutes('n1')).toEqual(before.n1);
    expect(bgpRoutes('n2')).toEqual(before.n2);
    whileDown?.();
    await nodes.n1.start();
    const out = (await flow).stdout;
    const m = /(\d+) packets transmitted, (\d+) received/.exec(out);
    expect(m, out.slice(-2000)).not.toBeNull();
    const seen = new Set([...out.matchAll(/icmp_seq=(\d+)/g)].map((x) => Number(x[1])));
    lost = Array.from({ length: 400 }, (_, i) => i + 1).filter((i) => !seen.has(i));
    await waitFor(() => (established('n1') && established('n2')) || undefined, { what: 'sessions back', timeoutMs: 60_000 });
    // Re-learned, not duplicated; nothing left stale.
    await waitFor(() => (JSON.stringify(bgpRoutes('n1')) === JSON.stringify(before.n1) && JSON.stringify(bgpRoutes('n2')) === JSON.stringify(before.n2)) || undefined, { what: 'the same routes after restart', timeoutMs: 30_000 });
    return { sent: Number(m![1]), received: Number(m![2]) };
  }

  it('SIGTERM and start again: no packet lost', async () => {
    const r = await restartUnderTraffic('SIGTERM');
    // Every one of the first 400 echo requests was answered (with -w, ping may send a few more while it waits).
    expect(r.sent).toBeGreaterThanOrEqual(400);
    expect(lost, `lost icmp_seq ${lost.join(',')}`).toEqual([]);
  }, 120_000);

  it('SIGKILL (a crash) and start again: no packet lost', async () => {
    const r = await restartUnderTraffic('SIGKILL');
    // Every one of the first 400 echo requests was answered (with -w, ping may send a few more while it waits).
    expect(r.sent).toBeGreaterThanOrEqual(400);
    expect(lost, `lost icmp_seq ${lost.join(',')}`).toEqual([]);
  }, 120_000);

  it('upgrade from the shared mark and from veths without a device group: the daemon adopts the routes and groups the veth, no packet lost', async () => {
    const veth = hostVethName('ctr-hitl-0', 'eth0');
    const group = () => String(nodes.n1.ns.ipJson('-d', 'link', 'show', veth)[0].group);
    const blackholes = (proto: string) => nodes.n1.ns.ipJson('route', 'show', 'type', 'blackhole', 'proto', proto).map((r: any) => r.dst).sort();
    const owned = blackholes('85');
    expect(owned.length).toBeGreaterThan(0);
    // What a version before per-owner marks left: the same routes, all with proto 84 (rewritten in place).
    const r = await restartUnderTraffic('SIGTERM', () => {
      for (const x of bgpRoutes('n1')) {
        const [dst, , gw] = x.split(' ');
        nodes.n1.ns.ip('route', 'replace', dst, 'via', gw, 'proto', '84');
      }
      for (const dst of owned) nodes.n1.ns.ip('route', 'replace', 'blackhole', dst, 'proto', '84');
      expect(bgpRoutes('n1')).toEqual([]);
      nodes.n1.ns.ip('link', 'set', veth, 'group', '0'); // what a version before device groups made
      expect(group()).toBe('default');
    });
    expect(group()).toBe(String(ifaceGroup(veth)));
    expect(r.sent).toBeGreaterThanOrEqual(400);
    expect(lost, `lost icmp_seq ${lost.join(',')}`).toEqual([]);
    await waitFor(() => (blackholes('85').join() === owned.join() && blackholes('84').length === 0) || undefined, { what: 'blackholes re-marked' });
    expect(nodes.n1.ns.ipJson('route', 'show', 'proto', '84').filter((x: any) => x.gateway)).toEqual([]);
  }, 120_000);

  it('the restarted daemon serves CNI at once, and the new pod is reachable across nodes', async () => {
    const ns = sb.netns('pod3');
    const r = await runCni(nodes.n1.ns, { command: 'ADD', containerId: 'ctr-hitl-3', netns: ns.path, ifname: 'eth0', config: nodes.n1.conf });
    expect(r.code, r.stdout + nodes.n1.daemon!.output().slice(-2000)).toBe(0);
    expect(pods.n2.ns.ping(r.json.ips[0].address.split('/')[0], 2, 2)).toBe(true);
  });
});
