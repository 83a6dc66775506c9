import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { DIST_BIN, REPO, Sandbox, waitFor, type Daemon, type Netns } from '../sandbox';
import { makeNode, runCni, ternConfig } from '../sandbox/cni';
import { SqliteStore } from '../../src/datastore';
import { storedResources } from '../../src/acl';
import { endpointChain } from '../../src/acl/compile';
import { hostVethName } from '../../src/dataplane';
import { spawn } from 'node:child_process';

/**
 * The node daemon owns the node's ACL rules: policies written to the
 * datastore by `ternctl policy apply` (no --sync) and files dropped into the
 * watched policy directory are programmed by the daemon; an invalid file
 * changes nothing and is reported by `ternctl status`; removing a file
 * removes what it defined and nothing else.
 */
const TENANTS = fs.readFileSync(path.join(REPO, 'docs', 'examples', 'tenant-isolation.yaml'), 'utf8');

/** Kubernetes default-deny ingress for app=locked in namespace alpha. */
const LOCKED = `apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: lock, namespace: alpha}
spec:
  podSelector: {matchLabels: {app: locked}}
  policyTypes: [Ingress]
`;

describe('node daemon: ACL sync from the datastore and the watched policy directory', () => {
  const sb = new Sandbox('dacl');
  let dir: string;
  let policyDir: string;
  let node: Netns;
  let daemon: Daemon;
  let conf: Record<string, any>;
  const pods: Record<string, { ns: Netns; ip: string }> = {};
  const ctl = (...args: string[]) => node.exec(path.join(DIST_BIN, 'ternctl'), args);
  const status = () => {
    const r = ctl('status', '--url', 'http://127.0.0.1:9111', '-o', 'json');
    return { code: r.code, st: JSON.parse(r.stdout || '{}'), text: ctl('status', '--url', 'http://127.0.0.1:9111').stdout };
  };
  const reach = (a: string, b: string) => pods[a].ns.ping(pods[b].ip, 1, 0.5);
  /** Wait until ping from a to b gives `want` twice in a row (the daemon applies within ~50 ms of a change, the directory within its rescan). */
  const until = (a: string, b: string, want: boolean) => waitFor(() => (reach(a, b) === want && reach(a, b) === want ? true : undefined), { what: `${a} -> ${b} ${want ? 'allowed' : 'denied'}`, timeoutMs: 20_000 });

  beforeAll(async () => {
    dir = sb.tmpdir();
    policyDir = path.join(dir, 'policies.d');
    ({ node } = makeNode(sb, 'n1'));
    node.sysctl('net.ipv4.ip_forward', '1');
    const socket = path.join(dir, 'cni.sock');
    const cfg = path.join(dir, 'node.yaml');
    fs.writeFileSync(cfg, [`nodename: n1`, `nodenameFile: ${dir}/nodename`, 'addresses: [192.0.2.11/24]', `cniSocket: ${socket}`, 'healthListen: 127.0.0.1:9111', `datastore: {type: sqlite, path: ${dir}/tern.db}`, `policyDir: ${policyDir}`, 'logLevel: debug', ''].join('\n'));
    daemon = sb.daemon(path.join(DIST_BIN, 'ternctl'), ['node', 'run', '--config', cfg], { netns: node });
    await waitFor(() => fs.existsSync(socket), { what: 'daemon socket', timeoutMs: 30_000 });
    conf = ternConfig(dir, { nodename: 'n1', cni_socket: socket, ipam: { type: 'tern-ipam', pools: ['10.244.0.0/16'] } });
    const specs: [string, string, string?][] = [['a1', 'alpha'], ['a2', 'alpha', 'locked'], ['b1', 'beta']];
    for (const [name, ns, app] of specs) {
      const pod = sb.netns(name);
      const r = await runCni(node, {
        command: 'ADD', containerId: `ctr-${name}`, netns: pod.path, ifname: 'eth0', args: `K8S_POD_NAMESPACE=${ns};K8S_POD_NAME=${name}`,
        config: app ? { ...conf, args: { cni: { labels: [{ key: 'app', value: app }] } } } : conf,
      });
      expect(r.code, r.stdout + daemon.output().slice(-2000)).toBe(0);
      pods[name] = { ns: pod, ip: r.json.ips[0].address.split('/')[0] };
    }
  }, 90_000);
  afterAll(() => sb.cleanup());

  it('with no policy stored the rules are in force from the first pod (source check) and every pod reaches every other', () => {
    const { code, st } = status();
    expect(code).toBe(0);
    expect(st.acl).toMatchObject({ active: true, endpoints: 3, policies: 0, policyDir: { path: policyDir, present: false } });
    expect(reach('a1', 'b1')).toBe(true);
    expect(reach('b1', 'a2')).toBe(true);
  });

  it('a file dropped into the policy directory is stored and programmed by the daemon', async () => {
    fs.mkdirSync(policyDir);
    fs.writeFileSync(path.join(policyDir, '10-tenants.yaml'), TENANTS);
    await until('a1', 'b1', false);
    expect(reach('b1', 'a1')).toBe(false);
    expect(reach('a1', 'a2')).toBe(true);
    const { code, st, text } = status();
    expect(code, text).toBe(0);
    expect(st.acl).toMatchObject({ active: true, policyDir: { present: true, resources: 3 } });
    expect(st.acl.lastError).toBeUndefined();
    expect(text).toMatch(/ACL: in sync \((nft|legacy)\)/);
    // In the datastore, tagged as the directory's.
    const store = new SqliteStore({ path: `${dir}/tern.db` });
    try {
      const stored = (await storedResources(store)).filter((r) => r.kind !== 'Endpoint');
      expect(stored.map((r) => `${r.kind}/${r.key}:${r.source}`).sort()).toEqual(['Settings/default:policies.d', 'Tenant/alpha:policies.d', 'Tenant/beta:policies.d']);
    } finally {
      await store.close();
    }
  });

  it('`ternctl policy apply` without --sync: the daemon programs it', async () => {
    const f = path.join(dir, 'lock.yaml');
    fs.writeFileSync(f, LOCKED);
    const r = ctl('--datastore', `${dir}/tern.db`, 'policy', 'apply', '-f', f);
    expect(r.code, r.stderr).toBe(0);
    await until('a1', 'a2', false);
    expect(reach('a2', 'a1')).toBe(true); // ingress only
  });

  it('an invalid file rejects the whole directory: nothing changes, status names file and line, exit 1', async () => {
    fs.writeFileSync(path.join(policyDir, '20-bad.yaml'), 'apiVersion: tern.io/v1\nkind: Tenant\nmetadata: {name: gamma}\nspec: {namespaces: 7}\n');
    // Also drop the tenants file in the same change: because the directory is rejected, isolation must stay.
    fs.renameSync(path.join(policyDir, '10-tenants.yaml'), path.join(dir, '10-tenants.yaml.off'));
    const st = await waitFor(() => {
      const s = status();
      return s.st.acl?.policyDir?.lastError ? s : undefined;
    }, { what: 'policy directory rejected', timeoutMs: 20_000 });
    expect(st.code).toBe(1);
    expect(st.st.acl.policyDir.lastError).toMatch(/20-bad\.yaml:4/);
    expect(st.st.acl.policyDir.lastError).toMatch(/namespaces/);
    expect(st.text).toMatch(/REJECTED/);
    expect(reach('a1', 'b1')).toBe(false);
    expect(reach('a1', 'a2')).toBe(false);
    await waitFor(() => /policy directory rejected/.test(daemon.output()) || undefined, { what: 'the rejection in the daemon log' });
  });

  it('fixing the directory applies it: what its files no longer define is removed, CLI-applied policies stay', async () => {
    fs.rmSync(path.join(policyDir, '20-bad.yaml'));
    await until('a1', 'b1', true);
    expect(reach('b1', 'a1')).toBe(true);
    expect(reach('a1', 'a2')).toBe(false); // the CLI's policy is not the directory's to remove
    const { code, st } = status();
    expect(code).toBe(0);
    expect(st.acl).toMatchObject({ active: true, policies: 1, policyDir: { resources: 0 } });
    expect(st.acl.policyDir.lastError).toBeUndefined();
  });

  it('a pod attached after the last policy is gone is still programmed (the rules keep following the datastore)', async () => {
    const r = ctl('--datastore', `${dir}/tern.db`, 'policy', 'delete', '-f', path.join(dir, 'lock.yaml'));
    expect(r.code, r.stderr).toBe(0);
    await until('a1', 'a2', true);
    const pod = sb.netns('c1');
    const add = await runCni(node, { command: 'ADD', containerId: 'ctr-c1', netns: pod.path, ifname: 'eth0', args: 'K8S_POD_NAMESPACE=alpha;K8S_POD_NAME=c1', config: conf });
    expect(add.code, add.stdout).toBe(0);
    pods.c1 = { ns: pod, ip: add.json.ips[0].address.split('/')[0] };
    expect(reach('c1', 'a1')).toBe(true);
    expect(reach('b1', 'c1')).toBe(true);
    // Metrics count the syncs.
    const m = node.exec(process.execPath, ['-e', "fetch('http://127.0.0.1:9111/metrics').then((r) => r.text()).then((t) => process.stdout.write(t))"]).stdout;
    expect(m).toMatch(/tern_acl_syncs_total\{result="ok"\} [1-9]/);
  });

  it('a policy file rewritten in place (truncated, then written a second later) is never applied half-written: 0 packets of the denied flow', async () => {
    const FORGE = path.join(REPO, 'test', 'acl', 'fixtures', 'forge.py');
    const deny = 'apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: deny-all, namespace: beta}\nspec:\n  podSelector: {}\n  policyTypes: [Ingress]\n';
    const file = path.join(policyDir, '30-deny.yaml');
    fs.writeFileSync(file, deny);
    await until('a1', 'b1', false);
    const recv = spawn('nsenter', [`--net=${pods.b1.ns.path}`, '--', 'python3', FORGE, 'recv', '7000'], { stdio: ['pipe', 'pipe', 'inherit'] });
    let out = '';
    recv.stdout!.on('data', (d) => (out += d));
    const done = new Promise<void>((resolve) => recv.on('exit', () => resolve()));
    await waitFor(() => out.includes('ready') || undefined, { what: 'receiver', timeoutMs: 30_000 });
    const flood = spawn('nsenter', [`--net=${pods.a1.ns.path}`, '--', 'python3', FORGE, 'send', pods.a1.ip, pods.b1.ip, '7000', '0', '0.001'], { stdio: ['ignore', 'pipe', 'ignore'] });
    try {
      await new Promise((r) => flood.stdout!.once('data', r));
      // In place: the same inode truncated, a pause longer than the directory's rescan, then the new text in two writes.
      const fd = fs.openSync(file, 'w');
      await new Promise((r) => setTimeout(r, 2_500));
      fs.writeSync(fd, deny.slice(0, 60));
      await new Promise((r) => setTimeout(r, 100));
      fs.writeSync(fd, deny.slice(60) + '# rewritten\n');
      fs.closeSync(fd);
      await new Promise((r) => setTimeout(r, 3_000));
    } finally {
      flood.kill('SIGKILL');
    }
    // The node itself (OUTPUT, never filtered) as the control that the receiver hears.
    await node.execAsync('python3', [FORGE, 'send', '192.0.2.11', pods.b1.ip, '7000', '20']);
    await new Promise((r) => setTimeout(r, 300));
    recv.stdin!.end();
    await done;
    const seen = JSON.parse(out.split('\n').filter(Boolean).pop()!) as Record<string, number>;
    expect({ denied: seen[pods.a1.ip] ?? 0, control: (seen['192.0.2.11'] ?? 0) >= 15 }).toEqual({ denied: 0, control: true });
    expect(status().st.acl.policyDir).toMatchObject({ resources: 1 });
    expect(daemon.output()).toMatch(/empty policy file keeps what it defined/);
  }, 60_000);

  it('a failed kernel write is retried with backoff, with no datastore change, and heals', async () => {
    const f = path.join(dir, 'lock.yaml');
    expect(ctl('--datastore', `${dir}/tern.db`, 'policy', 'apply', '-f', f).code).toBe(0);
    await until('a1', 'a2', false);
    // Someone else's chain jumps to a2's ingress chain, which only this policy needs: deleting the policy cannot remove it (iptables-restore fails).
    const ipt = `iptables-${status().st.acl.backend}`;
    node.must(ipt, ['-w', '-N', 'TESTREF']);
    node.must(ipt, ['-w', '-A', 'TESTREF', '-j', endpointChain(hostVethName('ctr-a2', 'eth0'), 'ingress')]);
    expect(ctl('--datastore', `${dir}/tern.db`, 'policy', 'delete', '-f', f).code).toBe(0);
    const failing = await waitFor(() => {
      const st = status().st;
      return st.acl.loop?.consecutiveFailures >= 2 ? st : undefined;
    }, { what: 'two failed syncs', timeoutMs: 20_000 });
    expect(failing.acl.lastError).toMatch(/iptables/);
    expect(reach('a1', 'a2')).toBe(false); // the previous complete ruleset stays in force
    // The obstacle goes; nothing is written to the datastore: the retry alone heals.
    node.must(ipt, ['-w', '-F', 'TESTREF']);
    node.must(ipt, ['-w', '-X', 'TESTREF']);
    await waitFor(() => (status().st.acl.loop?.consecutiveFailures === 0 ? true : undefined), { what: 'a successful retry', timeoutMs: 40_000 });
    await until('a1', 'a2', true);
    const { st } = status();
    expect(st.acl.lastError).toBeUndefined();
    expect(st.acl.loop.failures).toBeGreaterThanOrEqual(2);
    expect(st.reconcilers.map((l: { name: string }) => l.name)).toEqual(['block-routes', 'acl']);
    const m = node.exec(process.execPath, ['-e', "fetch('http://127.0.0.1:9111/metrics').then((r) => r.text()).then((t) => process.stdout.write(t))"]).stdout;
    expect(m).toMatch(/tern_reconcile_failures\{loop="acl"\} [2-9]/);
    expect(m).toMatch(/tern_reconcile_consecutive_failures\{loop="acl"\} 0/);
  }, 90_000);
});
