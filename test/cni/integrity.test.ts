/**
 * Issue 11, section 1, the guards behind the serialised attach path: ADD never
 * takes over another device's /32, GC forgets endpoint records of attachments
 * the runtime no longer lists even without a handle or a veth, and
 * `ternctl ipam check` names an address routed to the wrong pod or recorded
 * for two endpoints.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as path from 'node:path';
import { DIST_BIN, Sandbox, type Netns } from '../sandbox';
import { listAllocations, makeNode, runCni, ternConfig } from '../sandbox/cni';
import { SqliteStore } from '../../src/datastore';
import { endpointResource, storedResources, writeResources } from '../../src/acl/store';

describe('attach-path integrity guards', () => {
  const sb = new Sandbox('cniinteg');
  let node: Netns;
  let dir: string;
  let conf: Record<string, any>;
  const ternctl = (...args: string[]) => node.exec(path.join(DIST_BIN, 'ternctl'), ['--datastore', path.join(dir, 'tern.db'), ...args]);
  const withStore = async <T>(fn: (s: SqliteStore) => Promise<T>): Promise<T> => {
    const s = new SqliteStore({ path: path.join(dir, 'tern.db') });
    try {
      return await fn(s);
    } finally {
      await s.close();
    }
  };

  beforeAll(() => {
    ({ node } = makeNode(sb, 'node'));
    dir = sb.tmpdir();
    conf = ternConfig(dir, { nodename: 'node1', ipam: { type: 'tern-ipam', pools: ['10.253.0.0/24'] } });
  });
  afterAll(() => sb.cleanup());

  it('ADD refuses (103, naming the device) to replace a /32 that leads to another device, and holds nothing after', async () => {
    node.ip('link', 'add', 'other0', 'type', 'veth', 'peer', 'name', 'other1');
    node.ip('link', 'set', 'other0', 'up');
    node.ip('route', 'add', '10.253.0.5/32', 'dev', 'other0');
    const pod = sb.netns('p103');
    const r = await runCni(node, { command: 'ADD', containerId: 'c103', netns: pod.path, ifname: 'eth0', args: 'IP=10.253.0.5', config: conf });
    expect(r.json?.code, r.stdout).toBe(103);
    expect(r.json.msg).toMatch(/10\.253\.0\.5\/32 is already routed to other0/);
    expect(node.ipJson('route', 'show', '10.253.0.5/32')).toEqual([expect.objectContaining({ dev: 'other0' })]);
    expect(pod.exec('ip', ['link', 'show', 'eth0']).code).not.toBe(0);
    expect(await listAllocations(conf)).toEqual([]);
    node.ip('link', 'del', 'other0');
  });

  it('GC forgets endpoint records of unlisted attachments of this node and network, even without a handle or veth', async () => {
    const ep = (name: string, containerId: string, nodeName: string, network = 'tern-net') =>
      endpointResource({ name, namespace: 'ns', labels: {}, ips: [], hostIface: `tern${name}`, namedPorts: [], attachment: { network, containerId, ifname: 'eth0', node: nodeName } } as never);
    await withStore((s) => writeResources(s, 'apply', [ep('ghost', 'ghost', 'node1'), ep('kept', 'kept', 'node1'), ep('elsewhere', 'elsewhere', 'node2'), ep('othernet', 'othernet', 'node1', 'other-net')]));
    const gc = await runCni(node, { command: 'GC', config: { ...conf, cniVersion: '1.1.0', 'cni.dev/valid-attachments': [{ containerID: 'kept', ifname: 'eth0' }] } });
    expect(gc.code, gc.stdout).toBe(0);
    const left = await withStore(async (s) => (await storedResources(s)).filter((r) => r.kind === 'Endpoint').map((r) => r.key).sort());
    expect(left).toEqual(['ns/elsewhere', 'ns/kept', 'ns/othernet']);
    await withStore(async (s) => writeResources(s, 'delete', (await storedResources(s)).filter((r) => r.kind === 'Endpoint')));
  });

  it('ipam check reports an address routed to a pod that IPAM does not give it to, and one address recorded for two endpoints', async () => {
    const pod = sb.netns('pchk');
    const add = await runCni(node, { command: 'ADD', containerId: 'cchk', netns: pod.path, ifname: 'eth0', args: 'K8S_POD_NAMESPACE=ns;K8S_POD_NAME=chk', config: conf });
    expect(add.code, add.stdout).toBe(0);
    const ip = add.json.ips[0].address.split('/')[0];
    expect(ternctl('ipam', 'check').code).toBe(0);
    // IPAM forgets the pod while its device and route stay: what a DEL racing a cancelled ADD used to leave.
    expect(ternctl('ipam', 'release', '--handle', 'tern-net.cchk.eth0').code).toBe(0);
    await withStore((s) => writeResources(s, 'apply', [endpointResource({ name: 'imposter', namespace: 'ns', labels: {}, ips: [ip], hostIface: 'ternimposter', namedPorts: [] })]));
    const c = ternctl('ipam', 'check');
    expect(c.code).toBe(1);
    expect(c.stdout).toMatch(new RegExp(`address ${ip.replace(/\./g, '\\.')} is routed to tern\\w+ \\(attachment tern-net\\.cchk\\.eth0\\) but IPAM holds it for no one`));
    expect(c.stdout).toContain(`address ${ip} is recorded for 2 endpoints: ns/chk, ns/imposter`);
    expect((await runCni(node, { command: 'DEL', containerId: 'cchk', netns: pod.path, ifname: 'eth0', config: conf })).code).toBe(0);
  });
});
