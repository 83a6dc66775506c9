import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as fs from 'node:fs';
import { Sandbox, type Netns } from '../sandbox';
import { makeNode, runCni, ternConfig } from '../sandbox/cni';
import { hostVethName } from '../../src/dataplane/endpoint-plan';
import { ifaceGroup } from '../../src/lib/iface-group';

describe('tern CNI plugin: ADD, CHECK, DEL on the real kernel', () => {
  const sb = new Sandbox('cniad');
  let node: Netns;
  let nodeIp: string;
  let dir: string;
  let conf: Record<string, any>;

  beforeAll(() => {
    ({ node, nodeIp } = makeNode(sb, 'node', { uplinkMtu: 1450 }));
    dir = sb.tmpdir();
    conf = ternConfig(dir);
  });
  afterAll(() => sb.cleanup());

  const add = (pod: Netns, cid: string, c: object = conf, extra: Partial<Parameters<typeof runCni>[1]> = {}) =>
    runCni(node, { command: 'ADD', containerId: cid, netns: pod.path, ifname: 'eth0', config: c, ...extra });
  const del = (pod: Netns | undefined, cid: string, c: object = conf) =>
    runCni(node, { command: 'DEL', containerId: cid, netns: pod?.path ?? '', ifname: 'eth0', config: c });
  const check = (pod: Netns, cid: string, prevResult: object, c: object = conf) =>
    runCni(node, { command: 'CHECK', containerId: cid, netns: pod.path, ifname: 'eth0', config: { ...c, prevResult } });

  it('dual stack: interfaces, addresses, routes, sysctls, result, CHECK, DEL twice', async () => {
    const pod = sb.netns('pod1');
    const r = await add(pod, 'ctr-dual-1');
    expect(r.code, r.stdout + r.stderr).toBe(0);
    const host = hostVethName('ctr-dual-1', 'eth0');
    expect(host).toMatch(/^tern[0-9a-f]{11}$/);
    expect(r.json.cniVersion).toBe('1.0.0');
    expect(r.json.interfaces[0]).toEqual({ name: host, mac: 'ee:ee:ee:ee:ee:ee' });
    expect(r.json.interfaces[1].name).toBe('eth0');
    expect(r.json.interfaces[1].sandbox).toBe(pod.path);
    expect(r.json.ips).toHaveLength(2);
    expect(r.json.ips.every((i: any) => i.interface === 1 && !('version' in i))).toBe(true);
    const v4 = r.json.ips[0].address as string;
    const v6 = r.json.ips[1].address as string;
    expect(v4).toMatch(/^10\.244\.\d+\.\d+\/32$/);
    expect(v6).toMatch(/^fd00:10:244::[0-9a-f]*\/128$/);

    // Container side.
    const link = pod.ipJson('link', 'show', 'eth0')[0];
    expect(link.mtu).toBe(1450); // detected from the uplink
    expect(link.address).toBe(r.json.interfaces[1].mac);
    const addrs = pod.ipJson('addr', 'show', 'eth0')[0].addr_info.map((a: any) => `${a.local}/${a.prefixlen}`);
    expect(addrs).toContain(v4);
    expect(addrs).toContain(v6);
    const routes4 = pod.ipJson('route', 'show');
    expect(routes4).toContainEqual(expect.objectContaining({ dst: 'default', gateway: '169.254.1.1', dev: 'eth0' }));
    expect(routes4).toContainEqual(expect.objectContaining({ dst: '169.254.1.1', dev: 'eth0', scope: 'link' }));
    expect(pod.ipJson('-6', 'route', 'show')).toContainEqual(expect.objectContaining({ dst: 'default', gateway: 'fe80::ecee:eeff:feee:eeee', dev: 'eth0' }));

    // Host side: no IP, our MAC, our protocol on the host routes, sysctls.
    const hl = node.ipJson('-d', 'link', 'show', host)[0];
    expect(hl.address).toBe('ee:ee:ee:ee:ee:ee');
    expect(hl.ifalias).toBe('tern:tern-net:ctr-dual-1:eth0');
    expect(String(hl.group)).toBe(String(ifaceGroup(host))); // the ACL dispatch finds the veth's chains by it
    expect(node.ipJson('-4', 'addr', 'show', host)[0]?.addr_info ?? []).toEqual([]);
    const hr4 = node.ipJson('route', 'show', 'proto', '84');
    expect(hr4).toContainEqual(expect.objectContaining({ dst: v4.split('/')[0], dev: host, scope: 'link' }));
    expect(node.ipJson('-6', 'route', 'show', 'proto', '84')).toContainEqual(expect.objectContaining({ dst: v6.split('/')[0], dev: host }));
    const sys = (k: string) => node.must('cat', [`/proc/sys/${k}`]).trim();
    expect(sys(`net/ipv4/conf/${host}/proxy_arp`)).toBe('1');
    expect(sys(`net/ipv4/conf/${host}/forwarding`)).toBe('1');
    expect(sys(`net/ipv4/neigh/${host}/proxy_delay`)).toBe('0');
    expect(sys(`net/ipv6/conf/${host}/accept_ra`)).toBe('0');
    expect(sys(`net/ipv6/conf/${host}/proxy_ndp`)).toBe('1');

    // Traffic: pod <-> node over both families.
    expect(pod.ping(nodeIp)).toBe(true);
    expect(node.ping(v4.split('/')[0])).toBe(true);
    expect(node.ping(v6.split('/')[0], 1, 3)).toBe(true);

    const c = await check(pod, 'ctr-dual-1', r.json);
    expect(c.code, c.stdout).toBe(0);

    expect((await del(pod, 'ctr-dual-1')).code).toBe(0);
    expect(node.exec('ip', ['link', 'show', host]).code).not.toBe(0);
    expect(pod.exec('ip', ['link', 'show', 'eth0']).code).not.toBe(0);
    expect(node.ipJson('route', 'show', 'proto', '84')).toEqual([]);
    const again = await del(pod, 'ctr-dual-1');
    expect(again.code, again.stdout).toBe(0);
    expect(again.stdout).toBe('');
  });

  it('IPv4 only and IPv6 only pools, and pod <-> pod on both', async () => {
    const c4 = ternConfig(dir, { name: 'v4net', ipam: { type: 'tern-ipam', pools: ['10.50.0.0/24'] } });
    const c6 = ternConfig(dir, { name: 'v6net', ipam: { type: 'tern-ipam', pools: ['fd00:50::/64'] } });
    const a = sb.netns('pa');
    const b = sb.netns('pb');
    const c = sb.netns('pc');
    const d = sb.netns('pd');
    const ra = await add(a, 'ctr-a', c4);
    const rb = await add(b, 'ctr-b', c4);
    const rc = await add(c, 'ctr-c', c6);
    const rd = await add(d, 'ctr-d', c6);
    for (const r of [ra, rb, rc, rd]) expect(r.code, r.stdout).toBe(0);
    expect(ra.json.ips).toHaveLength(1);
    expect(rc.json.ips).toHaveLength(1);
    // Block IPAM hands out every address of the node's block, the block's first included (routed /32s have no broadcast).
    expect(ra.json.ips[0].address).toBe('10.50.0.0/32');
    expect(rb.json.ips[0].address).toBe('10.50.0.1/32');
    expect(a.ping('10.50.0.1')).toBe(true);
    expect(b.ping('10.50.0.0')).toBe(true);
    expect(c.ping(rd.json.ips[0].address.split('/')[0], 1, 3)).toBe(true);
    expect(c.exec('ip', ['-4', 'route', 'show']).stdout.trim()).toBe('');
    for (const [p, id, cf] of [[a, 'ctr-a', c4], [b, 'ctr-b', c4], [c, 'ctr-c', c6], [d, 'ctr-d', c6]] as const) {
      expect((await check(p, id, { a: ra, b: rb, c: rc, d: rd }[id.slice(-1) as 'a'].json, cf)).code).toBe(0);
      expect((await del(p, id, cf)).code).toBe(0);
    }
  });

  it('DEL succeeds with a missing or empty netns, without prevResult, and releases the address', async () => {
    const pod = sb.netns('gone');
    const r = await add(pod, 'ctr-gone');
    expect(r.code).toBe(0);
    const ip = r.json.ips[0].address;
    sb.netnsRemove(pod);
    const d1 = await runCni(node, { command: 'DEL', containerId: 'ctr-gone', netns: pod.path, ifname: 'eth0', config: conf });
    expect(d1.code, d1.stdout).toBe(0);
    const d2 = await del(undefined, 'ctr-gone');
    expect(d2.code, d2.stdout).toBe(0);
    expect(node.exec('ip', ['link', 'show', hostVethName('ctr-gone', 'eth0')]).code).not.toBe(0);
    // The address is free again: a new pod asking for it by CNI_ARGS gets it.
    const p2 = sb.netns('reuse');
    const r2 = await add(p2, 'ctr-reuse', conf, { args: `IgnoreUnknown=1;IP=${ip.split('/')[0]}` });
    expect(r2.code, r2.stdout).toBe(0);
    expect(r2.json.ips[0].address).toBe(ip);
    expect((await del(p2, 'ctr-reuse')).code).toBe(0);
  });

  it('a specific IP through CNI_ARGS and through the ips capability, and MTU from the config', async () => {
    const p = sb.netns('spec');
    const c = { ...conf, mtu: 1300, runtimeConfig: { ips: ['10.244.99.7/16', 'fd00:10:244::99:7/48'] } };
    const r = await add(p, 'ctr-spec', c);
    expect(r.code, r.stdout).toBe(0);
    expect(r.json.ips.map((i: any) => i.address)).toEqual(['10.244.99.7/32', 'fd00:10:244::99:7/128']);
    expect(p.ipJson('link', 'show', 'eth0')[0].mtu).toBe(1300);
    expect(node.ipJson('link', 'show', hostVethName('ctr-spec', 'eth0'))[0].mtu).toBe(1300);
    // The same address again, for another container: a conflict, and nothing is left behind.
    const q = sb.netns('spec2');
    const r2 = await add(q, 'ctr-spec2', conf, { args: 'IP=10.244.99.7' });
    expect(r2.code).not.toBe(0);
    expect(r2.json.code).toBe(103);
    expect(q.exec('ip', ['link', 'show', 'eth0']).code).not.toBe(0);
    expect(node.exec('ip', ['link', 'show', hostVethName('ctr-spec2', 'eth0')]).code).not.toBe(0);
    expect((await del(p, 'ctr-spec', c)).code).toBe(0);
  });

  it('a repeated ADD of a live attachment fails with code 102 and keeps the first one intact', async () => {
    const p = sb.netns('twice');
    const r = await add(p, 'ctr-twice');
    expect(r.code).toBe(0);
    const r2 = await add(p, 'ctr-twice');
    expect(r2.code).toBe(1);
    expect(r2.json.code).toBe(102);
    expect(r2.json.msg).toMatch(/eth0 already exists/);
    expect((await check(p, 'ctr-twice', r.json)).code).toBe(0);
    expect((await del(p, 'ctr-twice')).code).toBe(0);
  });

  it.each(['0.3.0', '0.3.1', '0.4.0', '1.1.0'])('answers in the %s result format', async (v) => {
    const p = sb.netns(`v${v.replace(/\./g, '')}`);
    const c = { ...conf, cniVersion: v };
    const r = await add(p, `ctr-v${v}`, c);
    expect(r.code, r.stdout).toBe(0);
    expect(r.json.cniVersion).toBe(v);
    if (v.startsWith('0.')) expect(r.json.ips.map((i: any) => i.version)).toEqual(['4', '6']);
    else expect(r.json.ips[0].version).toBeUndefined();
    if (v === '1.1.0') expect(r.json.interfaces[1].mtu).toBe(1450);
    else expect(r.json.interfaces[1].mtu).toBeUndefined();
    if (v !== '0.3.0' && v !== '0.3.1') expect((await check(p, `ctr-v${v}`, r.json, c)).code).toBe(0);
    expect((await del(p, `ctr-v${v}`, c)).code).toBe(0);
  });

  it('CHECK reports a specific mismatch', async () => {
    const p = sb.netns('chk');
    const r = await add(p, 'ctr-chk');
    expect(r.code).toBe(0);
    p.ip('route', 'del', 'default');
    const c1 = await check(p, 'ctr-chk', r.json);
    expect(c1.code).toBe(1);
    expect(c1.json.code).toBe(104);
    expect(c1.json.msg).toMatch(/default route via 169\.254\.1\.1/);
    p.ip('route', 'add', 'default', 'via', '169.254.1.1', 'dev', 'eth0', 'proto', '84');
    expect((await check(p, 'ctr-chk', r.json)).code).toBe(0);
    node.ip('route', 'del', r.json.ips[0].address);
    const c2 = await check(p, 'ctr-chk', r.json);
    expect(c2.json.code).toBe(104);
    expect(c2.json.msg).toMatch(/host route/);
    const wrong = JSON.parse(JSON.stringify(r.json));
    wrong.ips[0].address = '10.244.200.200/32';
    expect((await check(p, 'ctr-chk', wrong)).json.msg).toMatch(/has addresses/);
    p.ip('link', 'del', 'eth0');
    const c3 = await check(p, 'ctr-chk', r.json);
    expect(c3.json.code).toBe(3);
    expect((await del(p, 'ctr-chk')).code).toBe(0);
  });

  it('writes logs to the configured file and never to stdout', async () => {
    const log = fs.readFileSync(conf.log_file, 'utf8').trim().split('\n');
    expect(log.length).toBeGreaterThan(0);
    const rec = JSON.parse(log[log.length - 1]);
    expect(rec.name).toBe('tern-cni');
    expect(typeof rec.command).toBe('string');
  });
});
