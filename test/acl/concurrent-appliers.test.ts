import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { DIST_BIN, REPO, Sandbox, type Netns } from '../sandbox';
import { makeNode, runCni, ternConfig } from '../sandbox/cni';
import { endpointSetName } from '../../src/acl/compile';

/**
 * Many appliers at once on one node without a daemon: CNI ADDs and
 * `ternctl policy apply --sync` racing each other. Each reads the datastore
 * under the node's ACL lock, so the last one to program the kernel has seen
 * every write: afterwards a fresh sync has nothing left to write, every pod is
 * in the endpoint set and every policy is in its pods' chains.
 */
describe('concurrent ACL appliers on one node', () => {
  const sb = new Sandbox('cacl');
  let dir: string;
  let node: Netns;
  let conf: Record<string, any>;
  const N_PODS = 6;
  const N_POLICIES = 4;
  const pods: { ns: Netns; ip: string; tenant: string }[] = [];
  const ternctl = (args: string[]) => node.execAsync(path.join(DIST_BIN, 'ternctl'), ['--datastore', `${dir}/tern.db`, ...args], { timeoutMs: 120_000 });

  beforeAll(async () => {
    dir = sb.tmpdir();
    ({ node } = makeNode(sb, 'n1'));
    node.sysctl('net.ipv4.ip_forward', '1');
    conf = ternConfig(dir, { nodename: 'n1', ipam: { type: 'tern-ipam', pools: ['10.244.0.0/16'] } });
    const r = await ternctl(['policy', 'apply', '-f', path.join(REPO, 'docs', 'examples', 'tenant-isolation.yaml'), '--sync']);
    expect(r.code, r.stderr).toBe(0);
  }, 60_000);
  afterAll(() => sb.cleanup());

  it('every ADD and every apply succeeds, whatever the interleaving', async () => {
    const jobs: Promise<{ code: number; what: string; out: string }>[] = [];
    for (let i = 0; i < N_PODS; i++) {
      const tenant = i % 2 ? 'beta' : 'alpha';
      const ns = sb.netns(`p${i}`);
      jobs.push(
        runCni(node, { command: 'ADD', containerId: `ctr-c${i}`, netns: ns.path, ifname: 'eth0', args: `K8S_POD_NAMESPACE=${tenant};K8S_POD_NAME=p${i}`, config: conf }).then((r) => {
          if (r.code === 0) pods[i] = { ns, ip: r.json.ips[0].address.split('/')[0], tenant };
          return { code: r.code, what: `ADD p${i}`, out: r.stdout + r.stderr };
        }),
      );
    }
    for (let i = 0; i < N_POLICIES; i++) {
      const f = path.join(dir, `pol${i}.yaml`);
      fs.writeFileSync(f, `apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: pol${i}, namespace: alpha}\nspec:\n  podSelector: {}\n  ingress: [{ports: [{port: ${8000 + i}}]}, {from: [{podSelector: {}}]}]\n`);
      jobs.push(ternctl(['policy', 'apply', '-f', f, '--sync']).then((r) => ({ code: r.code, what: `apply pol${i}`, out: r.stdout + r.stderr })));
    }
    const done = await Promise.all(jobs);
    for (const d of done) expect(d.code, `${d.what}: ${d.out}`).toBe(0);
  }, 180_000);

  it('the kernel already equals the final datastore: a fresh sync writes nothing', async () => {
    const r = await ternctl(['-o', 'json', 'policy', 'sync']);
    expect(r.code, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject({ chainsWritten: 0, setsWritten: 0, setsDestroyed: 0 });
  });

  it('every pod is in the endpoint set and every policy is in its pods\' chains', () => {
    const members = node.must('ipset', ['list', endpointSetName(4)]);
    for (const p of pods) expect(members).toContain(p.ip);
    const save = node.must('iptables-save', ['-t', 'filter']) + node.must('iptables-legacy-save', ['-t', 'filter']);
    // Each policy selects every alpha pod: its rules are in those pods' endpoint chains.
    for (let i = 0; i < N_POLICIES; i++) expect(save).toMatch(new RegExp(`-A tern-tw-\\S+ .*--dports ${8000 + i} `));
  });

  it('and the packets agree: same tenant reaches, other tenant does not', () => {
    expect(pods.filter(Boolean).length).toBe(N_PODS);
    expect(pods[0].ns.ping(pods[2].ip, 1, 1)).toBe(true);
    expect(pods[1].ns.ping(pods[3].ip, 1, 1)).toBe(true);
    expect(pods[0].ns.ping(pods[1].ip, 1, 0.5)).toBe(false);
    expect(pods[3].ns.ping(pods[2].ip, 1, 0.5)).toBe(false);
  });
});
