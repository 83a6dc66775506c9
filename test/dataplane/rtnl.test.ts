import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Sandbox, type Netns } from '../sandbox';
import { NetnsHandle, Rtnl, readSysctl, writeSysctl } from '../../src/dataplane';

describe('netlink dataplane in namespaces', () => {
  const sb = new Sandbox('dpl');
  let a: Netns;
  let b: Netns;
  let ha: NetnsHandle;
  let hb: NetnsHandle;
  let rta: Rtnl;
  let rtb: Rtnl;

  beforeAll(() => {
    a = sb.netns('a');
    b = sb.netns('b');
    ha = NetnsHandle.open(a.path);
    hb = NetnsHandle.open(b.path);
    rta = Rtnl.open(ha);
    rtb = Rtnl.open(hb);
  });
  afterAll(async () => {
    rta.close();
    rtb.close();
    ha.close();
    hb.close();
    await sb.cleanup();
  });

  it('creates a veth with its peer born in another namespace; sets MAC, MTU, alias and up', async () => {
    await rta.createVeth({ name: 'terntest0', mac: 'ee:ee:ee:ee:ee:ee', mtu: 1400, alias: 'tern:test', peer: { name: 'eth0', mtu: 1400, netns: hb, mac: '02:00:00:00:00:02' } });
    await rta.setLink('terntest0', { up: true });
    await rtb.setLink('eth0', { up: true });
    const la = a.ipJson('link', 'show', 'terntest0')[0];
    const lb = b.ipJson('link', 'show', 'eth0')[0];
    expect(la.address).toBe('ee:ee:ee:ee:ee:ee');
    expect(la.mtu).toBe(1400);
    expect(la.ifalias).toBe('tern:test');
    expect(lb.address).toBe('02:00:00:00:00:02');
    expect(lb.mtu).toBe(1400);
    expect(la.flags).toContain('UP');
    const links = await rta.listLinks();
    expect(links.find((l) => l.name === 'terntest0')).toMatchObject({ kind: 'veth', alias: 'tern:test', up: true, mtu: 1400 });
    expect(await rta.linkByName('nope0')).toBeUndefined();
    // Creating it twice is EEXIST, mapped to ALREADY_EXISTS.
    await expect(rta.createVeth({ name: 'terntest0', peer: { name: 'eth9', netns: hb } })).rejects.toMatchObject({ code: 'ALREADY_EXISTS' });
  });

  it('addresses, scope link, onlink, ECMP and blackhole routes carry the protocol and are listed back', async () => {
    const la = (await rta.linkByName('terntest0'))!;
    const lb = (await rtb.linkByName('eth0'))!;
    await rtb.addAddress(lb.index, '10.9.0.2/32');
    await rtb.addAddress(lb.index, 'fd09::2/128', { nodad: true });
    await rta.addAddress(la.index, '10.8.0.1/32');
    await rta.replaceRoute({ dst: '10.9.0.2/32', dev: la.index, scope: 'link', protocol: 84 });
    await rtb.replaceRoute({ dst: '10.8.0.1/32', dev: lb.index, scope: 'link', protocol: 84 });
    await rtb.replaceRoute({ dst: '10.77.0.0/24', dev: lb.index, gateway: '10.8.0.1', protocol: 84 });
    await rta.replaceRoute({ dst: '10.66.0.0/26', dev: la.index, gateway: '192.0.2.99', onlink: true, protocol: 84 });
    await rta.replaceRoute({ dst: '10.55.0.0/24', protocol: 84, multipath: [{ gateway: '192.0.2.98', dev: la.index, onlink: true }, { gateway: '192.0.2.97', dev: la.index, onlink: true }] });
    await rta.replaceRoute({ dst: '10.44.0.0/26', type: 'blackhole', protocol: 84 });
    // Idempotent.
    await rta.replaceRoute({ dst: '10.44.0.0/26', type: 'blackhole', protocol: 84 });
    expect(b.ping('10.8.0.1')).toBe(true);

    const routes = await rta.listRoutes({ family: 4, protocol: 84 });
    expect(routes.map((r) => r.dst).sort()).toEqual(['10.44.0.0/26', '10.55.0.0/24', '10.66.0.0/26', '10.9.0.2/32']);
    expect(routes.find((r) => r.dst === '10.9.0.2/32')).toMatchObject({ scope: 'link', dev: la.index });
    expect(routes.find((r) => r.dst === '10.66.0.0/26')).toMatchObject({ gateway: '192.0.2.99', onlink: true });
    expect(routes.find((r) => r.dst === '10.44.0.0/26')).toMatchObject({ type: 'blackhole' });
    expect(routes.find((r) => r.dst === '10.55.0.0/24')!.multipath!.map((h) => h.gateway).sort()).toEqual(['192.0.2.97', '192.0.2.98']);
    expect(a.must('ip', ['route', 'show', '10.66.0.0/26'])).toMatch(/via 192\.0\.2\.99 dev terntest0 proto 84 onlink/);

    const addrs = await rtb.listAddresses(lb.index);
    expect(addrs.map((x) => `${x.address}/${x.prefixLen}`)).toEqual(expect.arrayContaining(['10.9.0.2/32', 'fd09::2/128']));

    expect(await rta.deleteRoute({ dst: '10.66.0.0/26', dev: la.index, gateway: '192.0.2.99', onlink: true, protocol: 84 })).toBe(true);
    expect(await rta.deleteRoute({ dst: '10.66.0.0/26', dev: la.index, gateway: '192.0.2.99', onlink: true, protocol: 84 })).toBe(false);
  });

  it('per-interface sysctls are written in the namespace the code runs in', () => {
    ha.run(() => writeSysctl({ key: 'net/ipv4/conf/terntest0/proxy_arp', value: '1' }));
    expect(a.must('cat', ['/proc/sys/net/ipv4/conf/terntest0/proxy_arp']).trim()).toBe('1');
    expect(ha.run(() => readSysctl('net/ipv4/conf/terntest0/proxy_arp'))).toBe('1');
    expect(readSysctl('net/ipv4/conf/terntest0/proxy_arp')).toBeUndefined(); // not in this namespace
  });

  it('deleting the host end removes the peer and its routes; deleting again reports false', async () => {
    expect(await rta.deleteLink('terntest0')).toBe(true);
    expect(await rta.deleteLink('terntest0')).toBe(false);
    expect(await rtb.linkByName('eth0')).toBeUndefined();
    expect((await rta.listRoutes({ family: 4, protocol: 84 })).map((r) => r.dst)).toEqual(['10.44.0.0/26']);
  });
});
