import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as path from 'node:path';
import { DIST_BIN, Sandbox, waitFor, type Netns } from '../sandbox';
import { runCni } from '../sandbox/cni';
import { startCluster, type ClusterNode } from '../sandbox/cluster';
import { VTEP_NAME, vtepMacFor } from '../../src/overlay';

/**
 * The daemon's reconcilers share one loop: a kernel write that fails is
 * retried with backoff, with no further datastore change. Here the VXLAN
 * driver of n2 cannot act on a registry change (its underlay address is
 * gone, so it finds no uplink); once the address is back, the retry alone
 * brings the kernel in line.
 */
describe('a failed reconcile is retried without a datastore change (VXLAN driver)', () => {
  const sb = new Sandbox('rretry');
  let nodes: Record<string, ClusterNode>;
  let db: string;
  const ctl = (n: string, ...args: string[]) => nodes[n].ns.exec(path.join(DIST_BIN, 'ternctl'), args);
  const fdbMacs = (ns: Netns): string[] => JSON.parse(ns.must('bridge', ['-j', 'fdb', 'show', 'dev', VTEP_NAME]) || '[]').filter((e: any) => e.state === 'permanent').map((e: any) => e.mac);
  const overlay = (n: string) => JSON.parse(ctl(n, 'status', '-o', 'json').stdout || '{}').overlay ?? {};

  beforeAll(async () => {
    ({ nodes, db } = await startCluster(sb, ['n1', 'n2'], { bgp: 'vxlan: {vni: 4096}' }));
    const pool = ctl('n1', '--datastore', db, 'ipam', 'pool', 'set', '10.244.0.0/16', '--mode', 'vxlan');
    expect(pool.code, pool.stderr).toBe(0);
    for (const n of ['n1', 'n2']) {
      const r = await runCni(nodes[n].ns, { command: 'ADD', containerId: `ctr-${n}`, netns: sb.netns(`pod-${n}`).path, ifname: 'eth0', config: nodes[n].conf });
      expect(r.code, r.stdout).toBe(0);
    }
    await waitFor(() => fdbMacs(nodes.n2.ns).includes(vtepMacFor('n1')) || undefined, { what: 'n1 in the FDB of n2', timeoutMs: 30_000 });
  }, 120_000);
  afterAll(() => sb.cleanup());

  it('n2 fails while its underlay address is gone, and removes n1 once it is back, by retrying alone', async () => {
    const n2 = nodes.n2.ns;
    n2.ip('addr', 'del', `${nodes.n2.ip}/24`, 'dev', 'uplink0');
    expect(ctl('n1', '--datastore', db, 'node', 'remove', 'n1').code).toBe(0);
    await waitFor(() => (/underlay address/.test(overlay('n2').lastError ?? '') ? true : undefined), { what: 'n2 overlay reconcile failing', timeoutMs: 30_000 });
    expect(fdbMacs(n2)).toContain(vtepMacFor('n1'));
    n2.ip('addr', 'add', `${nodes.n2.ip}/24`, 'dev', 'uplink0');
    n2.ip('route', 'replace', 'default', 'via', '192.0.2.1');
    // No datastore write from here on.
    await waitFor(() => (!fdbMacs(n2).includes(vtepMacFor('n1')) ? true : undefined), { what: 'n1 gone from the FDB of n2', timeoutMs: 45_000 });
    expect(overlay('n2').lastError).toBeUndefined();
  }, 120_000);
});
