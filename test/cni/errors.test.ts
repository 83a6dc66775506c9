import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Sandbox, type Netns } from '../sandbox';
import Database from 'better-sqlite3';
import { SqliteStore } from '../../src/datastore';
import { hostVethName } from '../../src/dataplane/endpoint-plan';
import { listAllocations, makeNode, runCni, ternConfig, type CniCall } from '../sandbox/cni';

describe('tern CNI plugin: error codes from bad configs and environments', () => {
  const sb = new Sandbox('cnierr');
  let node: Netns;
  let pod: Netns;
  let conf: Record<string, any>;

  beforeAll(() => {
    ({ node } = makeNode(sb, 'node'));
    pod = sb.netns('pod');
    conf = ternConfig(sb.tmpdir());
  });
  afterAll(() => sb.cleanup());

  const base = (): CniCall => ({ command: 'ADD', containerId: 'ctr-err', netns: pod.path, ifname: 'eth0', config: conf });

  const cases: [string, () => CniCall, number, RegExp][] = [
    ['unsupported cniVersion', () => ({ ...base(), config: { ...conf, cniVersion: '0.2.0' } }), 1, /cniVersion 0\.2\.0 is not supported/],
    ['CHECK on a 0.3.1 config', () => ({ ...base(), command: 'CHECK', config: { ...conf, cniVersion: '0.3.1', prevResult: {} } }), 1, /CHECK needs cniVersion 0\.4\.0/],
    ['GC on a 1.0.0 config', () => ({ ...base(), command: 'GC', config: { ...conf, 'cni.dev/valid-attachments': [] } }), 1, /GC needs cniVersion 1\.1\.0/],
    ['missing CNI_COMMAND', () => ({ ...base(), extraEnv: { CNI_COMMAND: '' } }), 4, /CNI_COMMAND: missing/],
    ['unknown CNI_COMMAND', () => ({ ...base(), command: 'FROB' as never }), 4, /CNI_COMMAND: unknown command/],
    ['missing CNI_CONTAINERID', () => ({ ...base(), containerId: undefined }), 4, /CNI_CONTAINERID: missing/],
    ['bad CNI_CONTAINERID', () => ({ ...base(), containerId: '../etc' }), 4, /CNI_CONTAINERID/],
    ['missing CNI_IFNAME', () => ({ ...base(), ifname: undefined }), 4, /CNI_IFNAME: missing/],
    ['too long CNI_IFNAME', () => ({ ...base(), ifname: 'averyverylongname0' }), 4, /CNI_IFNAME/],
    ['missing CNI_NETNS on ADD', () => ({ ...base(), netns: undefined }), 4, /CNI_NETNS: missing/],
    ['nonexistent CNI_NETNS on ADD', () => ({ ...base(), netns: '/run/netns/does-not-exist-tern' }), 4, /CNI_NETNS: cannot open/],
    ['missing CNI_PATH', () => ({ ...base(), path: '' }), 4, /CNI_PATH: missing/],
    ['bad CNI_ARGS IP', () => ({ ...base(), args: 'IP=10.0.0.300' }), 4, /CNI_ARGS/],
    ['stdin not JSON', () => ({ ...base(), config: '{not json' }), 6, /cannot decode/],
    ['stdin a JSON array', () => ({ ...base(), config: '[]' }), 6, /must be a JSON object/],
    ['missing name', () => ({ ...base(), config: { ...conf, name: undefined } }), 7, /"name": missing/],
    ['missing ipam', () => ({ ...base(), config: { ...conf, ipam: undefined } }), 7, /"ipam": missing/],
    ['empty pools', () => ({ ...base(), config: { ...conf, ipam: { type: 'tern-ipam', pools: [] } } }), 7, /"ipam\.pools": needs at least one CIDR/],
    ['bad pool CIDR', () => ({ ...base(), config: { ...conf, ipam: { type: 'tern-ipam', pools: ['10.0.0.1/8'] } } }), 7, /"ipam\.pools\[0\]"/],
    ['bad mtu', () => ({ ...base(), config: { ...conf, mtu: 20 } }), 7, /"mtu"/],
    ['mtu of the wrong type', () => ({ ...base(), config: { ...conf, mtu: '1500' } }), 7, /"mtu"/],
    ['bad log_level', () => ({ ...base(), config: { ...conf, log_level: 'loud' } }), 7, /"log_level"/],
    ['bad datastore type', () => ({ ...base(), config: { ...conf, datastore: { type: 'redis' } } }), 7, /"datastore": unknown type "redis"/],
    ['relative datastore path', () => ({ ...base(), config: { ...conf, datastore: { type: 'sqlite', path: 'x.db' } } }), 7, /"datastore\.path"/],
    ['bad runtimeConfig ips', () => ({ ...base(), config: { ...conf, runtimeConfig: { ips: ['nope'] } } }), 7, /"runtimeConfig\.ips"/],
    ['bad labels', () => ({ ...base(), config: { ...conf, args: { cni: { labels: [{ key: 1 }] } } } }), 7, /"args\.cni\.labels\[0\]"/],
    ['requested IP outside every pool', () => ({ ...base(), args: 'IP=192.168.77.1' }), 7, /outside/],
    ['CHECK without prevResult', () => ({ ...base(), command: 'CHECK' }), 7, /"prevResult"/],
    ['GC without valid-attachments', () => ({ ...base(), command: 'GC', config: { ...conf, cniVersion: '1.1.0' } }), 7, /valid-attachments/],
  ];

  it.each(cases)('%s', async (_name, call, code, msg) => {
    const r = await runCni(node, call());
    expect(r.code).toBe(1);
    expect(r.json, r.stdout + r.stderr).toBeDefined();
    expect(r.json.code).toBe(code);
    expect(r.json.msg).toMatch(msg);
    expect(typeof r.json.cniVersion).toBe('string');
    // Nothing was created.
    expect(pod.exec('ip', ['link', 'show', 'eth0']).code).not.toBe(0);
    expect(node.ipJson('route', 'show', 'proto', '84')).toEqual([]);
  });

  it('VERSION works with empty stdin and lists every accepted version', async () => {
    const r = await runCni(node, { command: 'VERSION', config: '' });
    expect(r.code).toBe(0);
    expect(r.json).toEqual({ cniVersion: '1.1.0', supportedVersions: ['0.3.0', '0.3.1', '0.4.0', '1.0.0', '1.1.0'] });
    const r2 = await runCni(node, { command: 'VERSION', config: { cniVersion: '0.4.0' } });
    expect(r2.json.cniVersion).toBe('0.4.0');
  });

  it('exhausting a pool gives code 101 on ADD and code 50 on STATUS, and leaves nothing behind', async () => {
    // A /30 pool is one block of four addresses.
    const small = { ...conf, cniVersion: '1.1.0', name: 'small', ipam: { type: 'tern-ipam', pools: ['10.99.0.0/30'] } };
    const status = () => runCni(node, { command: 'STATUS', config: small });
    expect((await status()).code).toBe(0);
    const pods = [sb.netns('x1'), sb.netns('x2'), sb.netns('x3'), sb.netns('x4'), sb.netns('x5')];
    for (const [i, p] of pods.slice(0, 4).entries()) {
      expect((await runCni(node, { command: 'ADD', containerId: `ctr-x${i}`, netns: p.path, ifname: 'eth0', config: small })).code).toBe(0);
    }
    const full = await runCni(node, { command: 'ADD', containerId: 'ctr-x4', netns: pods[4].path, ifname: 'eth0', config: small });
    expect(full.json?.code, full.stdout).toBe(101);
    expect(full.json.msg).toMatch(/10\.99\.0\.0\/30/);
    expect(pods[4].exec('ip', ['link', 'show', 'eth0']).code).not.toBe(0);
    const st = await status();
    expect(st.code).toBe(1);
    expect(st.json.code).toBe(50);
    for (const [i, p] of pods.slice(0, 4).entries()) {
      expect((await runCni(node, { command: 'DEL', containerId: `ctr-x${i}`, netns: p.path, ifname: 'eth0', config: small })).code).toBe(0);
    }
    expect((await status()).code).toBe(0);
  });

  it('a refused endpoint record fails ADD and leaves no allocation, interface or route behind', async () => {
    // A datastore of its own in which SQLite itself aborts every write of an endpoint record.
    const own = { ...conf, datastore: { type: 'sqlite', path: path.join(sb.tmpdir(), 'refusing.db') } };
    await new SqliteStore({ path: own.datastore.path }).close();
    const db = new Database(own.datastore.path);
    db.exec("CREATE TRIGGER refuse_endpoints BEFORE INSERT ON kv WHEN NEW.key LIKE '/tern/acl/Endpoint/%' BEGIN SELECT RAISE(ABORT, 'endpoint records refused'); END");
    db.close();
    const p = sb.netns('refused');
    const r = await runCni(node, { command: 'ADD', containerId: 'ctr-refused', netns: p.path, ifname: 'eth0', config: own });
    expect(r.code, r.stdout + r.stderr).toBe(1);
    expect(r.json.msg).toMatch(/endpoint records refused/);
    expect(await listAllocations(own)).toEqual([]);
    expect(p.exec('ip', ['link', 'show', 'eth0']).code).not.toBe(0);
    expect(node.exec('ip', ['link', 'show', hostVethName('ctr-refused', 'eth0')]).code).not.toBe(0);
    expect(node.ipJson('route', 'show', 'proto', '84')).toEqual([]);
    expect((await runCni(node, { command: 'DEL', containerId: 'ctr-refused', netns: p.path, ifname: 'eth0', config: own })).code).toBe(0);
  });

  it('an unusable datastore gives STATUS code 50', async () => {
    // The datastore's directory is a regular file, so the database cannot be opened.
    const blocker = path.join(sb.tmpdir(), 'not-a-dir');
    fs.writeFileSync(blocker, '');
    const broken = { ...conf, cniVersion: '1.1.0', datastore: { type: 'sqlite', path: `${blocker}/tern.db` } };
    const r = await runCni(node, { command: 'STATUS', config: broken });
    expect(r.json.code).toBe(50);
  });
});
