import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawn } from 'node:child_process';
import * as path from 'node:path';
import { DIST_BIN, Sandbox, type Netns } from '../sandbox';
import { listAllocations, makeNode, runCni, ternConfig } from '../sandbox/cni';

describe('tern CNI plugin under concurrency and crashes', () => {
  const sb = new Sandbox('cnicc');
  let node: Netns;
  let conf: Record<string, any>;

  beforeAll(() => {
    ({ node } = makeNode(sb, 'node'));
    conf = ternConfig(sb.tmpdir(), { cniVersion: '1.1.0' });
  });
  afterAll(() => sb.cleanup());

  it('20 concurrent ADDs get 20 distinct IPs; 20 concurrent DELs leave the store empty and no veth', async () => {
    const pods = Array.from({ length: 20 }, (_, i) => sb.netns(`c${i}`));
    const adds = await Promise.all(pods.map((p, i) => runCni(node, { command: 'ADD', containerId: `ctr-cc-${i}`, netns: p.path, ifname: 'eth0', config: conf })));
    for (const r of adds) expect(r.code, r.stdout + r.stderr).toBe(0);
    const v4 = adds.map((r) => r.json.ips[0].address);
    const v6 = adds.map((r) => r.json.ips[1].address);
    expect(new Set(v4).size).toBe(20);
    expect(new Set(v6).size).toBe(20);
    expect(await listAllocations(conf)).toHaveLength(40);
    // Spot-check the data path of the first and last pod.
    expect(pods[0].ping(v4[19].split('/')[0])).toBe(true);
    expect(pods[19].ping(v4[0].split('/')[0])).toBe(true);

    const dels = await Promise.all(pods.map((p, i) => runCni(node, { command: 'DEL', containerId: `ctr-cc-${i}`, netns: p.path, ifname: 'eth0', config: conf })));
    for (const r of dels) expect(r.code, r.stdout + r.stderr).toBe(0);
    expect(await listAllocations(conf)).toEqual([]);
    expect(node.ipJson('link', 'show').filter((l: any) => l.ifname.startsWith('tern'))).toEqual([]);
    expect(node.ipJson('route', 'show', 'proto', '84')).toEqual([]);
  }, 240_000);

  it('kill -9 of the plugin at any point of ADD, then GC: nothing leaked', async () => {
    const delays = [0, 40, 80, 120, 160, 200, 260, 320, 400, 500];
    const pods = delays.map((_, i) => sb.netns(`k${i}`));
    for (const [i, delay] of delays.entries()) {
      const child = spawn('nsenter', [`--net=${node.path}`, '--', path.join(DIST_BIN, 'tern')], {
        env: { PATH: process.env.PATH, TERN_ACL_STATE_DIR: process.env.TERN_ACL_STATE_DIR, CNI_COMMAND: 'ADD', CNI_CONTAINERID: `ctr-kill-${i}`, CNI_NETNS: pods[i].path, CNI_IFNAME: 'eth0', CNI_PATH: DIST_BIN },
        stdio: ['pipe', 'ignore', 'ignore'],
      });
      const exited = new Promise((r) => child.once('exit', r));
      child.stdin.end(JSON.stringify(conf));
      await new Promise((r) => setTimeout(r, delay));
      // nsenter execs the plugin in place, so this PID is the plugin itself.
      child.kill('SIGKILL');
      await exited;
    }
    // A live attachment that GC must keep.
    const keep = sb.netns('keep');
    const kept = await runCni(node, { command: 'ADD', containerId: 'ctr-keep', netns: keep.path, ifname: 'eth0', config: conf });
    expect(kept.code).toBe(0);

    const gc = await runCni(node, { command: 'GC', config: { ...conf, 'cni.dev/valid-attachments': [{ containerID: 'ctr-keep', ifname: 'eth0' }] } });
    expect(gc.code, gc.stdout).toBe(0);
    expect((await listAllocations(conf)).map((a) => a.handle)).toEqual(['tern-net.ctr-keep.eth0', 'tern-net.ctr-keep.eth0']);
    const links = node.ipJson('link', 'show').filter((l: any) => l.ifname.startsWith('tern'));
    expect(links).toHaveLength(1);
    for (const p of pods) expect(p.exec('ip', ['link', 'show', 'eth0']).code).not.toBe(0);
    const c = await runCni(node, { command: 'CHECK', containerId: 'ctr-keep', netns: keep.path, ifname: 'eth0', config: { ...conf, prevResult: kept.json } });
    expect(c.code, c.stdout).toBe(0);
    expect((await runCni(node, { command: 'DEL', containerId: 'ctr-keep', netns: keep.path, ifname: 'eth0', config: conf })).code).toBe(0);
  }, 240_000);
});
