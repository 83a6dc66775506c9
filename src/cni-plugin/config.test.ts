import { describe, expect, it } from 'vitest';
import { parseNetConf, parseStdin } from './config';
import { parseCniArgs, parseEnv } from './env';
import { buildResult, prevResultIps } from './result';
import { TernError } from '../lib/errors';

const minimal = { cniVersion: '1.0.0', name: 'tern-net', type: 'tern', ipam: { type: 'tern-ipam', pools: ['10.244.0.0/16'] } };

describe('parseNetConf', () => {
  it('fills the documented defaults', () => {
    const c = parseNetConf(minimal, { needIpam: true });
    expect(c.datastore).toEqual({ type: 'sqlite', path: '/var/lib/tern/tern.db' });
    expect(c.mtu).toBe(0);
    expect(c.logFile).toBe('/var/log/tern/cni.log');
    expect(c.logLevel).toBe('info');
  });

  it('parses etcd datastores', () => {
    const c = parseNetConf({ ...minimal, datastore: { type: 'etcd', endpoints: ['https://127.0.0.1:2379'], ca: '/ca', cert: '/c', key: '/k' } }, { needIpam: true });
    expect(c.datastore).toEqual({ type: 'etcd', endpoints: ['https://127.0.0.1:2379'], ca: '/ca', cert: '/c', key: '/k' });
  });

  it.each([
    [{ ...minimal, cniVersion: 7 }, 'INVALID_CONFIG', /cniVersion/],
    [{ ...minimal, cniVersion: '2.0.0' }, 'INCOMPATIBLE_VERSION', /2\.0\.0/],
    [{ ...minimal, name: 'bad name' }, 'INVALID_CONFIG', /"name"/],
    [{ ...minimal, ipam: { type: 'tern-ipam', pools: ['x'] } }, 'INVALID_CONFIG', /"ipam\.pools\[0\]"/],
    [{ ...minimal, ipam: { type: 'tern-ipam', pools: 'x' } }, 'INVALID_CONFIG', /"ipam\.pools"/],
    [{ ...minimal, datastore: { type: "etcd", endpoints: ["127.0.0.1:2379"] } }, "INVALID_CONFIG", /"datastore": not an etcd URL/],
    [{ ...minimal, args: { cni: { ports: [{ name: 'http', port: 99999 }] } } }, 'INVALID_CONFIG', /"args\.cni\.ports\[0\]"/],
    [{ ...minimal, args: { cni: { ports: [{ name: 'http', port: 80, protocol: 'icmp' }] } } }, 'INVALID_CONFIG', /protocol/],
    [{ ...minimal, cni_socket: 5 }, 'INVALID_CONFIG', /"cni_socket": must be a string/],
    [{ ...minimal, cni_socket: 'run/cni.sock' }, 'INVALID_CONFIG', /"cni_socket": must be an absolute path/],
    [{ ...minimal, datastore: { type: 'sqlite', pth: '/x.db' } }, 'INVALID_CONFIG', /"datastore": unknown field "pth"/],
  ])('rejects %j', (raw, code, msg) => {
    try {
      parseNetConf(raw as never, { needIpam: true });
      expect.unreachable();
    } catch (e) {
      expect(e).toBeInstanceOf(TernError);
      expect((e as TernError).code).toBe(code);
      expect((e as TernError).message).toMatch(msg);
    }
  });

  it('reads labels, named ports and requested IPs', () => {
    const c = parseNetConf(
      { ...minimal, runtimeConfig: { ips: ['10.244.1.1/16'] }, args: { cni: { ips: ['10.244.1.2'], labels: [{ key: 'app', value: 'web' }], ports: [{ name: 'http', protocol: 'tcp', port: 80 }] } } },
      { needIpam: true },
    );
    expect(c.runtimeIps).toEqual(['10.244.1.1']);
    expect(c.argsIps).toEqual(['10.244.1.2']);
    expect(c.labels).toEqual([{ key: 'app', value: 'web' }]);
    expect(c.ports).toEqual([{ name: 'http', protocol: 'TCP', port: 80 }]);
  });

  it('decode failures are code DECODE_FAILURE', () => {
    expect(() => parseStdin('{')).toThrow(expect.objectContaining({ code: 'DECODE_FAILURE' }));
    expect(() => parseStdin('"x"')).toThrow(expect.objectContaining({ code: 'DECODE_FAILURE' }));
  });
});

describe('parseEnv', () => {
  const ok = { CNI_COMMAND: 'ADD', CNI_CONTAINERID: 'c1', CNI_NETNS: '/run/netns/x', CNI_IFNAME: 'eth0', CNI_PATH: '/opt/cni/bin' };
  it('accepts a runtime environment', () => {
    const e = parseEnv({ ...ok, CNI_ARGS: 'IgnoreUnknown=1;K8S_POD_NAMESPACE=ns;K8S_POD_NAME=p;IP=10.0.0.1,fd00::1' });
    expect(e.args.get('K8S_POD_NAMESPACE')).toBe('ns');
    expect(e.args.get('IP')).toBe('10.0.0.1,fd00::1');
    expect(e.path).toEqual(['/opt/cni/bin']);
  });
  it('DEL does not need CNI_NETNS; VERSION needs nothing else', () => {
    expect(parseEnv({ ...ok, CNI_COMMAND: 'DEL', CNI_NETNS: '' }).netns).toBe('');
    expect(parseEnv({ CNI_COMMAND: 'VERSION' }).command).toBe('VERSION');
  });
  it.each([
    [{ ...ok, CNI_COMMAND: undefined }, /CNI_COMMAND/],
    [{ ...ok, CNI_IFNAME: 'a/b' }, /CNI_IFNAME/],
    [{ ...ok, CNI_ARGS: 'novalue' }, /CNI_ARGS/],
    [{ ...ok, CNI_ARGS: 'IP=1.2.3' }, /CNI_ARGS/],
  ])('rejects %j', (env, msg) => {
    expect(() => parseEnv(env)).toThrow(msg);
  });
  it('parses CNI_ARGS pairs', () => {
    expect([...parseCniArgs('A=1;B=x=y;')]).toEqual([['A', '1'], ['B', 'x=y']]);
  });
});

describe('buildResult', () => {
  const base = {
    host: { name: 'tern0123456789a', mac: 'ee:ee:ee:ee:ee:ee', mtu: 1500 },
    container: { name: 'eth0', mac: '02:00:00:00:00:01', mtu: 1500, sandbox: '/run/netns/p' },
    ips: [{ address: '10.0.0.1', family: 4 as const, pool: '10.0.0.0/24' }, { address: 'fd00::1', family: 6 as const, pool: 'fd00::/64' }],
  };
  it('0.4.0 carries ip versions, 1.0.0 does not, 1.1.0 adds MTU', () => {
    expect(buildResult({ ...base, version: '0.4.0' }).ips.map((i) => i.version)).toEqual(['4', '6']);
    expect(buildResult({ ...base, version: '1.0.0' }).ips[0]).not.toHaveProperty('version');
    expect(buildResult({ ...base, version: '1.1.0' }).interfaces[1].mtu).toBe(1500);
    expect(buildResult({ ...base, version: '1.0.0' }).interfaces[1]).not.toHaveProperty('mtu');
  });
  it('prevResultIps keeps the IPs of the named interface', () => {
    const r = buildResult({ ...base, version: '1.0.0' });
    expect(prevResultIps(r as never, 'eth0')).toEqual(['10.0.0.1', 'fd00::1']);
    expect(prevResultIps(r as never, 'eth1')).toEqual([]);
  });
});
