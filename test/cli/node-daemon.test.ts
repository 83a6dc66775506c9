/**
 * The node daemon as ternctl sees it, with two real daemons peering over BGP
 * in namespaces: its own control socket (root-only, found through node.yaml)
 * answers `ternctl bgp`, `ternctl status` reads healthListen and the sockets
 * from node.yaml, and /readyz and `ternctl status` give the same verdict.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as net from 'node:net';
import { DIST_BIN, Sandbox, sh, waitFor } from '../sandbox';
import { startCluster, type ClusterNode } from '../sandbox/cluster';
import { runCni } from '../sandbox/cni';

const sb = new Sandbox('hclinode');
let nodes: Record<string, ClusterNode>;
let dir: string;
const ternctl = (n: string, ...args: string[]) => nodes[n].ns.exec(path.join(DIST_BIN, 'ternctl'), args);
const cfg = (n: string) => path.join(dir, `${n}.yaml`);

beforeAll(async () => {
  ({ nodes, dir } = await startCluster(sb, ['n1', 'n2'], { bgp: 'bgp: {mesh: true, holdTime: 9, restartTime: 0}' }));
  // A pod on n2 gives n2 a block to advertise.
  const r = await runCni(nodes.n2.ns, { command: 'ADD', containerId: 'ctr-hcli', netns: sb.netns('pod').path, ifname: 'eth0', config: nodes.n2.conf });
  expect(r.code, r.stdout).toBe(0);
}, 120_000);
afterAll(() => sb.cleanup());

describe("the node daemon's control socket", () => {
  it('is root-only and ternctl bgp finds it through node.yaml', async () => {
    const sock = path.join(dir, 'n1.bgp.sock');
    expect(fs.statSync(sock).mode & 0o777).toBe(0o600);
    const peers = await waitFor(() => {
      const r = ternctl('n1', 'bgp', 'peers', '--config', cfg('n1'), '-o', 'json');
      const p = r.code === 0 ? JSON.parse(r.stdout) : [];
      return p[0]?.state === 'Established' ? p : undefined;
    }, { what: 'n1 Established with n2', timeoutMs: 60_000 });
    expect(peers).toEqual([expect.objectContaining({ address: nodes.n2.ip, asn: 64512, state: 'Established' })]);
    expect(ternctl('n1', 'bgp', 'peers', '--config', cfg('n1')).stdout).toMatch(new RegExp(`${nodes.n2.ip}\\s+64512\\s+Established .* router id ${nodes.n2.ip}\\n`));
  });

  it("bgp routes shows the other node's block, every path and why it won", async () => {
    const routes = await waitFor(() => {
      const r = JSON.parse(ternctl('n1', 'bgp', 'routes', '--config', cfg('n1'), '-o', 'json').stdout) as { prefix: string; best?: { peer: string } }[];
      return r.find((x) => x.best?.peer === nodes.n2.ip) ? r : undefined;
    }, { what: "n2's block at n1", timeoutMs: 60_000 });
    const learned = routes.find((x) => x.best?.peer === nodes.n2.ip)!.prefix;
    const one = ternctl('n1', 'bgp', 'routes', learned, '--config', cfg('n1'));
    expect(one.code).toBe(0);
    expect(one.stdout).toBe(`${learned}: best from ${nodes.n2.ip} (only-path)\n  * from ${nodes.n2.ip} via ${nodes.n2.ip}, AS path (empty)\n`);
  });

  it('ternctl status takes healthListen and the sockets from node.yaml', () => {
    const r = ternctl('n1', 'status', '--config', cfg('n1'), '-o', 'json');
    expect(r.code, r.stdout + r.stderr).toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject({ node: 'n1', notReady: [], sockets: { cni: path.join(dir, 'n1.sock'), control: path.join(dir, 'n1.bgp.sock') } });
    // A config whose healthListen points elsewhere is followed (nothing listens there).
    const other = path.join(dir, 'other.yaml');
    fs.writeFileSync(other, fs.readFileSync(cfg('n1'), 'utf8').replace('healthListen: 127.0.0.1:9099', 'healthListen: 127.0.0.1:9177'));
    const o = ternctl('n1', 'status', '--config', other);
    expect(o.code).toBe(1);
    expect(o.stderr).toContain('no node daemon answers at http://127.0.0.1:9177');
  });
});

describe('/metrics', () => {
  const scrape = (n: string) => nodes[n].ns.must('curl', ['-sf', 'http://127.0.0.1:9099/metrics']);

  it('counts CNI requests per verb and result code, and malformed ones', async () => {
    const bad = await runCni(nodes.n2.ns, { command: 'ADD', containerId: 'ctr-hcli-bad', netns: sb.netns('pod2').path, ifname: 'eth0', config: { ...nodes.n2.conf, cniVersion: '9.9.9' } });
    expect(bad.code).toBe(1);
    const code = String(bad.json.code);
    await new Promise<void>((resolve, reject) => {
      const c = net.connect(path.join(dir, 'n2.sock'), () => c.end('this is not a CNI request'));
      c.on('data', () => undefined).on('close', () => resolve()).on('error', reject);
    });
    const m = scrape('n2');
    expect(m).toMatch(/\ntern_cni_requests_total\{command="ADD",code="0"\} 1\n/);
    expect(m).toContain(`\ntern_cni_requests_total{command="ADD",code="${code}"} 1\n`);
    expect(m).toMatch(new RegExp(`\\ntern_cni_request_duration_seconds_count\\{command="ADD",code="${code}"\\} 1\\n`));
    expect(m).toMatch(/\ntern_cni_request_duration_seconds_bucket\{le="\+Inf",command="ADD",code="0"\} 1\n/);
    expect(m).toMatch(/\ntern_cni_malformed_requests_total\{reason="malformed"\} 1\n/);
  });

  it('BGP session state is a value, process metrics are there, and promtool finds nothing to complain about', () => {
    const m = scrape('n1');
    expect(m).toContain(`\ntern_bgp_session_state{peer="${nodes.n2.ip}"} 6\n`);
    expect(m).toMatch(/\ntern_bgp_fib_errors_total 0\n/);
    for (const name of ['process_cpu_seconds_total', 'process_resident_memory_bytes', 'process_open_fds', 'nodejs_eventloop_lag_seconds']) expect(m).toMatch(new RegExp(`\\n${name} \\d`));
    for (const n of ['n1', 'n2']) {
      const r = sh('promtool', ['check', 'metrics'], { input: scrape(n) });
      expect(r.stdout + r.stderr, n).toBe('');
      expect(r.code).toBe(0);
    }
  });
});

describe('one readiness rule', () => {
  it('a BGP peer that is not Established: /readyz 503 and ternctl status exit 1, with the same reason', async () => {
    await nodes.n2.daemon!.stop('SIGTERM');
    const readyz = await waitFor(() => {
      const r = nodes.n1.ns.exec('curl', ['-s', '-w', '\n%{http_code}', 'http://127.0.0.1:9099/readyz']);
      return r.stdout.endsWith('\n503') ? r.stdout : undefined;
    }, { what: '/readyz 503 at n1', timeoutMs: 60_000 });
    expect(readyz).toMatch(new RegExp(`^not ready: BGP ${nodes.n2.ip} \\w+\\n`));
    const st = ternctl('n1', 'status', '--config', cfg('n1'));
    expect(st.code).toBe(1);
    expect(st.stdout.split('\n')[0]).toMatch(new RegExp(`^Tern node n1: NOT READY: BGP ${nodes.n2.ip} \\w+$`));
    const json = JSON.parse(ternctl('n1', 'status', '--config', cfg('n1'), '-o', 'json').stdout);
    expect(json.notReady).toEqual([expect.stringMatching(new RegExp(`^BGP ${nodes.n2.ip} `))]);
    // An Established session shows no error from before; this one, down, says why.
    expect(ternctl('n1', 'bgp', 'peers', '--config', cfg('n1')).stdout).toMatch(new RegExp(`${nodes.n2.ip}\\s+64512\\s+(Active|Connect|Idle)\\b`));
  }, 90_000);
});
