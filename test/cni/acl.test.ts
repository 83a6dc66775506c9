import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { DIST_BIN, Sandbox, type Netns } from '../sandbox';
import { makeNode, runCni, ternConfig } from '../sandbox/cni';

/**
 * Single node, no daemon: the CNI plugin records each endpoint (namespace,
 * pod, labels) in the datastore, `ternctl policy apply --sync` programs the
 * node, and every later ADD and DEL keeps the rules in sync by itself.
 */
describe('CNI ADD/DEL keep the ACL in sync without a node daemon', () => {
  const sb = new Sandbox('cniacl');
  let node: Netns;
  let dir: string;
  let conf: Record<string, any>;
  const ips: Record<string, string> = {};
  const pods: Record<string, Netns> = {};

  const add = async (name: string, ns: string, app: string) => {
    pods[name] = sb.netns(name);
    const r = await runCni(node, {
      command: 'ADD',
      containerId: `ctr-${name}`,
      netns: pods[name].path,
      ifname: 'eth0',
      args: `IgnoreUnknown=1;K8S_POD_NAMESPACE=${ns};K8S_POD_NAME=${name}`,
      config: { ...conf, args: { cni: { labels: [{ key: 'app', value: app }] } } },
    });
    expect(r.code, r.stdout).toBe(0);
    ips[name] = r.json.ips[0].address.split('/')[0];
  };
  const del = (name: string, ns: string) =>
    runCni(node, { command: 'DEL', containerId: `ctr-${name}`, netns: pods[name].path, ifname: 'eth0', args: `K8S_POD_NAMESPACE=${ns};K8S_POD_NAME=${name}`, config: conf });
  const ternctl = (...args: string[]) => node.exec(path.join(DIST_BIN, 'ternctl'), ['--datastore', path.join(dir, 'tern.db'), ...args]);

  beforeAll(async () => {
    ({ node } = makeNode(sb, 'node'));
    dir = sb.tmpdir();
    conf = ternConfig(dir, { ipam: { type: 'tern-ipam', pools: ['10.244.0.0/16'] } });
    await add('db', 'prod', 'db');
    await add('web', 'prod', 'web');
    await add('other', 'prod', 'other');
  }, 180_000); // three standalone ADDs, each a full ACL sync: minutes on a machine at load 14
  afterAll(() => sb.cleanup());

  it('before any policy, only the anti-spoofing gate is programmed and everything is allowed', () => {
    // docs/acl.md: the gate holds from the first pod, policy or not; no policy or tier chain exists yet.
    const rules = node.must('iptables-save', ['-t', 'filter']);
    expect(rules).toMatch(/-m set ! --match-set tern-ep4 src,src -j DROP/);
    expect(rules).not.toMatch(/:tern-(pi|po|ti|te|tw|p|n|s)-/);
    const sets = node.must('ipset', ['save', 'tern-ep4']);
    for (const name of ['db', 'web', 'other']) expect(sets).toContain(`add tern-ep4 ${ips[name]},`);
    expect(pods.web.ping(ips.db)).toBe(true);
    expect(pods.other.ping(ips.db)).toBe(true);
  });

  it('a NetworkPolicy applied with --sync isolates the selected pod; later ADDs and DELs keep it in sync', async () => {
    const file = path.join(dir, 'db-policy.yaml');
    fs.writeFileSync(
      file,
      [
        'apiVersion: networking.k8s.io/v1',
        'kind: NetworkPolicy',
        'metadata: {name: db-from-web, namespace: prod}',
        'spec:',
        '  podSelector: {matchLabels: {app: db}}',
        '  policyTypes: [Ingress]',
        '  ingress:',
        '  - from:',
        '    - podSelector: {matchLabels: {app: web}}',
        '',
      ].join('\n'),
    );
    const r = ternctl('policy', 'apply', '-f', file, '--sync');
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/rules in sync/);
    expect(pods.web.ping(ips.db)).toBe(true);
    expect(pods.other.ping(ips.db)).toBe(false);
    expect(pods.db.ping(ips.other)).toBe(true); // egress is not isolated

    // A new web pod is admitted by its own ADD, with no further ternctl call.
    await add('web2', 'prod', 'web');
    await add('other2', 'prod', 'other');
    expect(pods.web2.ping(ips.db)).toBe(true);
    expect(pods.other2.ping(ips.db)).toBe(false);

    // DEL removes the endpoint from the sets: its address no longer counts as a web pod.
    expect((await del('web2', 'prod')).code).toBe(0);
    expect(node.must('ipset', ['save'])).not.toContain(ips.web2);
    expect(pods.web.ping(ips.db)).toBe(true);
  });

  it('relabelling a pod with ternctl endpoint label takes effect without re-attaching it', () => {
    expect(pods.other.ping(ips.db)).toBe(false);
    const r = ternctl('endpoint', 'label', 'prod/other', 'app=web', '--sync');
    expect(r.code, r.stderr).toBe(0);
    expect(pods.other.ping(ips.db)).toBe(true);
    const list = JSON.parse(ternctl('endpoint', 'list', '-o', 'json').stdout);
    expect(list.find((e: any) => e.name === 'other')).toMatchObject({ namespace: 'prod', labels: { app: 'web' }, ips: [ips.other] });
    expect(ternctl('endpoint', 'label', 'prod/other', 'app=other', '--sync').code).toBe(0);
    expect(pods.other.ping(ips.db)).toBe(false);
    const missing = ternctl('endpoint', 'label', 'prod/nobody', 'app=web');
    expect(missing.code).toBe(3);
    expect(missing.stderr).toMatch(/no endpoint prod\/nobody/);
    expect(ternctl('endpoint', 'ports', 'prod/db', 'sql:tcp:99999').code).toBe(2);
  });

  it('deleting the policy opens the pod again', () => {
    const r = ternctl('policy', 'delete', '-f', path.join(dir, 'db-policy.yaml'), '--sync');
    expect(r.code, r.stderr).toBe(0);
    expect(pods.other.ping(ips.db)).toBe(true);
  });
});
