import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import { DIST_BIN, Sandbox, waitFor, type Daemon, type Netns } from '../sandbox';
import { makeNode, runCni, ternConfig } from '../sandbox/cni';
import { decodeCniResponse, encodeCniRequest } from '../../src/node-daemon/cni-wire';

/** Talk to a unix socket from the test process (sockets live in the filesystem, not a netns). */
function rawRequest(socket: string, payload: Buffer): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const c = net.connect(socket);
    const chunks: Buffer[] = [];
    c.on('data', (d) => chunks.push(d));
    c.on('end', () => resolve(Buffer.concat(chunks)));
    c.on('error', reject);
    c.end(payload);
  });
}

describe('the fast CNI path: native shim -> node daemon socket, with the standalone fallback', () => {
  const sb = new Sandbox('cnifast');
  let node: Netns;
  let dir: string;
  let socket: string;
  let conf: Record<string, any>;
  let daemon: Daemon;

  const metrics = () => node.must('node', ['-e', "fetch('http://127.0.0.1:9099/metrics').then(r=>r.text()).then(t=>process.stdout.write(t))"]);
  const adds = () => Number(/tern_cni_requests_total\{command="ADD",code="0"\} (\d+)/.exec(metrics())?.[1] ?? 0);

  beforeAll(async () => {
    ({ node } = makeNode(sb, 'node'));
    dir = sb.tmpdir();
    socket = path.join(dir, 'run', 'cni.sock');
    conf = ternConfig(dir, { cni_socket: socket, nodename: 'node1' });
    const cfg = path.join(dir, 'node.yaml');
    fs.writeFileSync(cfg, `nodename: node1\nnodenameFile: ${dir}/nodename\nasn: 64512\nlabels: {rack: r1}\ncniSocket: ${socket}\nhealthListen: 127.0.0.1:9099\npolicyDir: ''\ndatastore:\n  type: sqlite\n  path: ${dir}/tern.db\nlogLevel: debug\n`);
    daemon = sb.daemon(path.join(DIST_BIN, 'ternctl'), ['node', 'run', '--config', cfg], { netns: node });
    await waitFor(() => fs.existsSync(socket) && node.exec('node', ['-e', "fetch('http://127.0.0.1:9099/readyz').then(r=>process.exit(r.ok?0:1),()=>process.exit(1))"]).code === 0, { what: 'daemon ready', timeoutMs: 30_000 });
  });
  afterAll(() => sb.cleanup());

  it('the socket is root-only', () => {
    const st = fs.statSync(socket);
    expect(st.isSocket()).toBe(true);
    expect(st.mode & 0o777).toBe(0o600);
  });

  it('ADD, CHECK and DEL go through the daemon and do the same as the standalone plugin', async () => {
    const before = adds();
    const pod = sb.netns('pod1');
    const r = await runCni(node, { command: 'ADD', containerId: 'ctr-fast', netns: pod.path, ifname: 'eth0', config: conf });
    expect(r.code, r.stdout + daemon.output()).toBe(0);
    expect(adds()).toBe(before + 1);
    // IPAM use of this node, taken at scrape time.
    expect(metrics()).toMatch(/tern_ipam_node_addresses_used [1-9]/);
    expect(metrics()).toMatch(/tern_ipam_node_blocks [1-9]/);
    expect(r.json.ips[0].address).toMatch(/^10\.244\./);
    expect(node.ping(r.json.ips[0].address.split('/')[0])).toBe(true);
    const c = await runCni(node, { command: 'CHECK', containerId: 'ctr-fast', netns: pod.path, ifname: 'eth0', config: { ...conf, prevResult: r.json } });
    expect(c.code, c.stdout).toBe(0);
    // Errors keep their codes through the daemon.
    const again = await runCni(node, { command: 'ADD', containerId: 'ctr-fast', netns: pod.path, ifname: 'eth0', config: conf });
    expect(again.json.code).toBe(102);
    const bad = await runCni(node, { command: 'ADD', containerId: 'ctr-fast2', netns: pod.path, ifname: 'eth1', config: { ...conf, mtu: 3 } });
    expect(bad.json.code).toBe(7);
    const v = await runCni(node, { command: 'VERSION', config: '' });
    expect(v.json.supportedVersions).toContain('1.1.0');
    expect((await runCni(node, { command: 'DEL', containerId: 'ctr-fast', netns: pod.path, ifname: 'eth0', config: conf })).code).toBe(0);
    expect(pod.exec('ip', ['link', 'show', 'eth0']).code).not.toBe(0);
  });

  it('registers the node and keeps a blackhole route for each block it owns', async () => {
    expect(fs.readFileSync(path.join(dir, 'nodename'), 'utf8').trim()).toBe('node1');
    const list = JSON.parse(node.must(path.join(DIST_BIN, 'ternctl'), ['--datastore', path.join(dir, 'tern.db'), 'node', 'list', '-o', 'json']));
    expect(list).toEqual([expect.objectContaining({ name: 'node1', asn: 64512, labels: { rack: 'r1' }, addresses: expect.arrayContaining(['192.0.2.11/24']) })]);
    const table = node.must(path.join(DIST_BIN, 'ternctl'), ['--datastore', path.join(dir, 'tern.db'), 'node', 'list']);
    expect(table).toMatch(/^NAME\s+ADDRESSES\s+ASN/);
    expect(table).toMatch(/node1\s+192\.0\.2\.11\/24/);

    const pod = sb.netns('pod3');
    const r = await runCni(node, { command: 'ADD', containerId: 'ctr-block', netns: pod.path, ifname: 'eth0', config: conf });
    expect(r.code, r.stdout).toBe(0);
    const ip = r.json.ips[0].address.split('/')[0];
    // The block around the pod's address (a /26 by default) becomes a blackhole route, marked proto 85 (the block routes' own mark).
    const routes = await waitFor(() => {
      const bh = node.ipJson('route', 'show', 'type', 'blackhole', 'proto', '85');
      return bh.length >= 1 ? bh : undefined;
    }, { what: 'blackhole route for the block' });
    const block = routes.map((x: any) => x.dst as string).find((d: string) => d.endsWith('/26'));
    expect(block).toBeDefined();
    const base = block!.split('/')[0].split('.').map(Number);
    const a = ip.split('.').map(Number);
    expect(a.slice(0, 3)).toEqual(base.slice(0, 3));
    expect(a[3] - base[3]).toBeGreaterThanOrEqual(0);
    expect(a[3] - base[3]).toBeLessThan(64);
    // The pod's own /32 is more specific than the blackhole, so it stays reachable.
    expect(node.ping(ip)).toBe(true);
    expect((await runCni(node, { command: 'DEL', containerId: 'ctr-block', netns: pod.path, ifname: 'eth0', config: conf })).code).toBe(0);
  });

  it('malformed and oversized requests get a CNI error and the daemon keeps serving', async () => {
    const garbage = decodeCniResponse(await rawRequest(socket, Buffer.from('GET / HTTP/1.1\r\n\r\n')));
    expect(garbage?.exitCode).toBe(1);
    expect(JSON.parse(garbage!.stdout)).toMatchObject({ code: 6, msg: expect.stringMatching(/malformed request/) });
    const truncated = decodeCniResponse(await rawRequest(socket, encodeCniRequest({ CNI_COMMAND: 'VERSION' }, '').subarray(0, 10)));
    expect(JSON.parse(truncated!.stdout).code).toBe(6);
    // 2 MiB of stdin through the real shim.
    const huge = { ...conf, padding: 'x'.repeat(2 << 20) };
    const big = await runCni(node, { command: 'ADD', containerId: 'ctr-big', netns: sb.netns('big').path, ifname: 'eth0', config: huge });
    expect(big.code).toBe(1);
    expect(big.json.code).toBe(6);
    expect(big.json.msg).toMatch(/exceeds/);
    const ok = decodeCniResponse(await rawRequest(socket, encodeCniRequest({ CNI_COMMAND: 'VERSION' }, '')));
    expect(ok?.exitCode).toBe(0);
    expect(JSON.parse(ok!.stdout).supportedVersions).toContain('1.0.0');
    expect(daemon.child.exitCode).toBeNull();
  });

  it('with the daemon stopped, the same binary falls back to the standalone plugin', async () => {
    await daemon.stop('SIGTERM');
    expect(fs.existsSync(socket)).toBe(false);
    const pod = sb.netns('pod2');
    const r = await runCni(node, { command: 'ADD', containerId: 'ctr-standalone', netns: pod.path, ifname: 'eth0', config: conf });
    expect(r.code, r.stdout + r.stderr).toBe(0);
    expect(node.ping(r.json.ips[0].address.split('/')[0])).toBe(true);
    const log = fs.readFileSync(conf.log_file, 'utf8');
    expect(log).toContain('"name":"tern-cni"');
    expect((await runCni(node, { command: 'DEL', containerId: 'ctr-standalone', netns: pod.path, ifname: 'eth0', config: conf })).code).toBe(0);
  });
});
