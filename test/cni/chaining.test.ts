import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { REPO, STATE_DIR, Sandbox, must, sh, type Netns } from '../sandbox';
import { makeNode, runCni, ternConfig } from '../sandbox/cni';

/**
 * Runs a conflist the way a runtime does: each plugin in order with the
 * previous result, DEL in reverse order. tern first, then Debian's reference
 * `tuning` and `portmap`, which consume tern's prevResult.
 */
async function runConflist(node: Netns, list: any, command: 'ADD' | 'DEL' | 'CHECK', env: { containerId: string; netns: string; ifname: string }, prev?: any) {
  const plugins = command === 'DEL' ? [...list.plugins].reverse() : list.plugins;
  let result = prev;
  for (const p of plugins) {
    const config = { cniVersion: list.cniVersion, name: list.name, ...p, ...(result ? { prevResult: result } : {}) };
    const r = await runCni(node, { command, ...env, config, plugin: p.type });
    if (r.code !== 0) return { failedAt: p.type, out: r };
    if (command === 'ADD' && r.json) result = r.json;
  }
  return { result };
}

describe('chaining: tern + reference tuning + portmap', () => {
  const sb = new Sandbox('cnich');
  let node: Netns;
  let dir: string;
  beforeAll(() => {
    ({ node } = makeNode(sb, 'node'));
    dir = sb.tmpdir();
  });
  afterAll(() => sb.cleanup());

  it('ADD, CHECK and DEL through a conflist; portmap DNATs a host port to the pod', async () => {
    const tern = ternConfig(dir);
    delete tern.cniVersion;
    delete tern.name;
    const list = {
      cniVersion: '1.0.0',
      name: 'tern-net',
      plugins: [
        tern,
        { type: 'tuning', sysctl: { 'net.ipv4.conf.eth0.rp_filter': '2' }, mac: 'c2:00:00:00:00:42' },
        { type: 'portmap', capabilities: { portMappings: true }, runtimeConfig: { portMappings: [{ hostPort: 18080, containerPort: 80, protocol: 'tcp' }] } },
      ],
    };
    const pod = sb.netns('pod');
    const env = { containerId: 'ctr-chain', netns: pod.path, ifname: 'eth0' };
    const add = await runConflist(node, list, 'ADD', env);
    expect(add.failedAt, JSON.stringify(add.out?.json ?? add.out?.stderr)).toBeUndefined();
    const podIp = add.result.ips[0].address.split('/')[0];
    // tuning changed the MAC and the sysctl inside the pod, and reported the new MAC.
    expect(pod.ipJson('link', 'show', 'eth0')[0].address).toBe('c2:00:00:00:00:42');
    expect(pod.must('cat', ['/proc/sys/net/ipv4/conf/eth0/rp_filter']).trim()).toBe('2');
    expect(add.result.interfaces.find((i: any) => i.name === 'eth0').mac).toBe('c2:00:00:00:00:42');
    // portmap programmed a DNAT to the pod in the node's namespace.
    const nat = node.must('iptables-save', ['-t', 'nat']);
    expect(nat).toContain(`--to-destination ${podIp}:80`);
    // Traffic still flows after the MAC change (the host learns it via ARP).
    expect(node.ping(podIp)).toBe(true);

    // CHECK through tern and tuning. Debian's portmap 1.1.1 fails its own CHECK even
    // behind ptp+host-local ("could not check ipv6 dnat: chain … not found"), so it is left out.
    const chk = await runConflist(node, { ...list, plugins: list.plugins.slice(0, 2) }, 'CHECK', env, add.result);
    expect(chk.failedAt, JSON.stringify(chk.out?.json)).toBeUndefined();

    const del = await runConflist(node, list, 'DEL', env, add.result);
    expect(del.failedAt, JSON.stringify(del.out?.json)).toBeUndefined();
    expect(node.must('iptables-save', ['-t', 'nat'])).not.toContain(podIp);
    expect(pod.exec('ip', ['link', 'show', 'eth0']).code).not.toBe(0);
  });
});

describe('libcni, the library runtimes use', () => {
  const sb = new Sandbox('cnilib');
  let node: Netns;
  let client: string;
  let dir: string;

  beforeAll(() => {
    ({ node } = makeNode(sb, 'node'));
    dir = sb.tmpdir();
    // Build the small Go client offline against Debian's libcni sources.
    client = path.join(STATE_DIR, 'libcni-client');
    const src = path.join(REPO, 'test', 'cni', 'libcni-client');
    const stale = !fs.existsSync(client) || fs.statSync(client).mtimeMs < fs.statSync(path.join(src, 'main.go')).mtimeMs;
    if (stale) {
      fs.mkdirSync(STATE_DIR, { recursive: true });
      must('go', ['build', '-o', client, '.'], {
        timeoutMs: 300_000,
        env: { ...process.env, GOPATH: '/usr/share/gocode', GO111MODULE: 'off', GOFLAGS: '', GOCACHE: path.join(STATE_DIR, 'gocache'), HOME: process.env.HOME ?? '/root' },
        cwd: src,
      });
    }
  }, 300_000);
  afterAll(() => sb.cleanup());

  it('add, check and del through libcni.CNIConfig with a conflist on disk', () => {
    const confDir = path.join(dir, 'net.d');
    fs.mkdirSync(confDir);
    const tern = ternConfig(dir);
    delete tern.cniVersion;
    delete tern.name;
    fs.writeFileSync(path.join(confDir, '10-tern.conflist'), JSON.stringify({ cniVersion: '1.0.0', name: 'tern-net', plugins: [tern] }));
    const pod = sb.netns('pod');
    const run = (verb: string) =>
      sh('nsenter', [`--net=${node.path}`, '--', client, verb, confDir, 'tern-net', 'ctr-libcni', pod.path, 'eth0'], {
        env: { ...process.env, CNI_PATH: `${REPO}/dist/bin:/usr/lib/cni` },
      });
    const add = run('add');
    expect(add.code, add.stderr).toBe(0);
    const result = JSON.parse(add.stdout);
    expect(result.ips[0].address).toMatch(/^10\.244\./);
    expect(pod.ipJson('addr', 'show', 'eth0')[0].addr_info.map((a: any) => a.local)).toContain(result.ips[0].address.split('/')[0]);
    const check = run('check');
    expect(check.code, check.stderr).toBe(0);
    const del = run('del');
    expect(del.code, del.stderr).toBe(0);
    expect(pod.exec('ip', ['link', 'show', 'eth0']).code).not.toBe(0);
  });
});
