/**
 * One resource model: get/apply/delete for every stored kind against a real
 * SQLite datastore; `get -o yaml` goes back through `apply -f` unchanged; IPPool
 * changes follow the IPAM rules through every path (apply, ipam pool set, delete).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import YAML from 'yaml';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SqliteStore } from '../../src/datastore';
import { BlockIpam } from '../../src/ipam/block-ipam';
import { Sandbox } from '../sandbox';
import { ternctl } from './run';

const sb = new Sandbox('hclires');
let dir: string;
let db: string;

const ALL = `
apiVersion: tern.io/v1
kind: IPPool
metadata: {name: 10.244.0.0-16}
spec: {cidr: 10.244.0.0/16, blockSize: 28, nodeSelector: {zone: a}, reserved: [10.244.0.1/32], communities: ["64512:100"]}
---
apiVersion: tern.io/v1
kind: Node
metadata: {name: n1, labels: {zone: a}}
spec: {addresses: [192.0.2.1/24], asn: 64512}
---
apiVersion: tern.io/v1
kind: Tier
metadata: {name: security}
spec: {order: 100, defaultAction: Pass}
---
apiVersion: tern.io/v1
kind: Tenant
metadata: {name: alpha}
spec: {namespaces: [shop]}
---
apiVersion: tern.io/v1
kind: ClusterSettings
metadata: {name: default}
spec: {tenantIsolation: true}
---
apiVersion: v1
kind: Namespace
metadata: {name: shop, labels: {env: prod}}
---
apiVersion: tern.io/v1
kind: GlobalNetworkPolicy
metadata: {name: deny-db-egress}
spec:
  tier: security
  order: 10
  selector: app == "db"
  types: [Egress]
  egress: [{action: Deny}]
---
apiVersion: tern.io/v1
kind: NetworkPolicy
metadata: {name: allow-web, namespace: shop}
spec:
  selector: app == "web"
  ingress:
    - action: Allow
      protocol: TCP
      source: {selector: app == "client"}
      destination: {ports: [443]}
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: k8s-web, namespace: shop}
spec:
  podSelector: {matchLabels: {app: web}}
  ingress: [{ports: [{port: 80}]}]
---
apiVersion: tern.io/v1
kind: WorkloadEndpoint
metadata: {name: web-1, namespace: shop, labels: {app: web}}
spec: {interfaceName: tern0000000000a, ipNetworks: [10.0.0.10/32]}
---
kind: BGPConfiguration
metadata: {name: default}
spec: {nodeToNodeMesh: false, asNumber: 64512, nodeASLabel: rack-asn, listenPort: 1179}
---
apiVersion: tern.io/v1
kind: BGPPeer
metadata: {name: r1-tor}
spec:
  peerIP: 192.0.2.101
  nodeSelector: rack == "r1"
  asNumber: 65101
  bfd: {minRx: 300, minTx: 300, multiplier: 3}
  exportPrefixes: ["10.244.0.0/16 le 26"]
`;
const KINDS = ['ippool', 'node', 'tier', 'tenant', 'clustersettings', 'namespace', 'globalnetworkpolicy', 'networkpolicy', 'workloadendpoint', 'bgpconfiguration', 'bgppeer'];

beforeAll(() => {
  dir = sb.tmpdir();
  db = path.join(dir, 'tern.db');
  fs.writeFileSync(path.join(dir, 'all.yaml'), ALL);
});
afterAll(() => sb.cleanup());

const save = (name: string, text: string) => {
  const p = path.join(dir, name);
  fs.writeFileSync(p, text);
  return p;
};

describe('get, apply, delete', () => {
  it('apply stores every kind, all or none; a second apply changes nothing', async () => {
    const a = await ternctl('--datastore', db, '-o', 'json', 'apply', '-f', path.join(dir, 'all.yaml'));
    expect(a.code, a.err).toBe(0);
    expect(JSON.parse(a.out).changed).toHaveLength(12);
    const b = await ternctl('--datastore', db, '-o', 'json', 'apply', '-f', path.join(dir, 'all.yaml'));
    expect(JSON.parse(b.out)).toMatchObject({ changed: [], unchanged: expect.arrayContaining(['IPPool/10.244.0.0-16', 'Node/n1', 'Tier/security']) });
  });

  it('get lists each kind as a table (wide adds columns), json as a List', async () => {
    const pools = await ternctl('--datastore', db, 'get', 'ippools', '-o', 'wide');
    expect(pools.out).toMatch(/^NAME\s+CIDR\s+BLOCK\s+MODE\s+DISABLED\s+NODE SELECTOR\s+BLOCKS\s+USED\s+RESERVED/);
    expect(pools.out).toMatch(/10\.244\.0\.0-16\s+10\.244\.0\.0\/16\s+\/28\s+routed\s+false\s+zone=a\s+0\s+0\s+10\.244\.0\.1\/32\s+-\s+-\s+64512:100/);
    expect((await ternctl('--datastore', db, 'get', 'np')).out).toMatch(/shop\s+allow-web\s+default\s+-\s+app == "web"\n[\s\S]*shop\s+k8s-web/);
    expect((await ternctl('--datastore', db, 'get', 'gnp')).out).toMatch(/deny-db-egress\s+security\s+10\s+app == "db"/);
    const list = JSON.parse((await ternctl('--datastore', db, '-o', 'json', 'get', 'tier')).out);
    expect(list).toEqual({ apiVersion: 'v1', kind: 'List', items: [{ apiVersion: 'tern.io/v1', kind: 'Tier', metadata: { name: 'security' }, spec: { order: 100, defaultAction: 'Pass' } }] });
    expect(JSON.parse((await ternctl('--datastore', db, '-o', 'json', 'get', 'node', 'n1')).out)).toMatchObject({ kind: 'Node', metadata: { name: 'n1', labels: { zone: 'a' } }, spec: { addresses: ['192.0.2.1/24'], asn: 64512 } });
    expect((await ternctl('--datastore', db, 'get', 'wep', '-n', 'other')).out).toBe('no WorkloadEndpoint stored\n');
    expect((await ternctl('--datastore', db, 'get', 'ippool', '10.244.0.0/16', '-o', 'json')).code).toBe(0);
    expect((await ternctl('--datastore', db, 'get', 'bgppeers', '-o', 'wide')).out).toBe(
      'NAME    PEER         AS     NODE SELECTOR  PASSIVE  MULTIHOP  BFD           PASSWORD FILE\nr1-tor  192.0.2.101  65101  rack == "r1"   false    -         300/300ms x3  -\n',
    );
    expect((await ternctl('--datastore', db, 'get', 'bgpconfig')).out).toBe('NAME     MESH  AS     AS LABEL  PORT\ndefault  off   64512  rack-asn  1179\n');
    expect(JSON.parse((await ternctl('--datastore', db, '-o', 'json', 'get', 'bgppeer', 'r1-tor')).out)).toEqual({
      apiVersion: 'tern.io/v1',
      kind: 'BGPPeer',
      metadata: { name: 'r1-tor' },
      spec: { peerIP: '192.0.2.101', nodeSelector: 'rack == "r1"', asNumber: 65101, bfd: { minRx: 300, minTx: 300, multiplier: 3 }, exportPrefixes: ['10.244.0.0/16 le 26'] },
    });
  });

  for (const kind of KINDS) {
    it(`${kind}: get -o yaml goes through apply -f unchanged, in place and into an empty datastore`, async () => {
      const y1 = (await ternctl('--datastore', db, 'get', kind, '-o', 'yaml')).out;
      expect(y1).toMatch(/^apiVersion: /);
      const file = save(`${kind}.yaml`, y1);
      const again = await ternctl('--datastore', db, '-o', 'json', 'apply', '-f', file);
      expect(again.code, again.out).toBe(0);
      expect(JSON.parse(again.out).changed).toEqual([]);
      expect((await ternctl('--datastore', db, 'get', kind, '-o', 'yaml')).out).toBe(y1);
      const fresh = path.join(dir, `fresh-${kind}.db`);
      expect((await ternctl('--datastore', fresh, 'apply', '-f', file)).code).toBe(0);
      const y2 = (await ternctl('--datastore', fresh, 'get', kind, '-o', 'yaml')).out;
      // A node's status (its last registration) is the datastore's own; the rest is what was applied.
      const strip = (t: string) => YAML.parseAllDocuments(t).map((d) => ({ ...(d.toJS() as object), status: undefined }));
      expect(strip(y2)).toEqual(strip(y1));
    });
  }

  it('delete KIND NAME and delete -f', async () => {
    expect((await ternctl('--datastore', db, 'delete', 'tenant', 'alpha')).code).toBe(0);
    expect((await ternctl('--datastore', db, 'get', 'tenant', 'alpha')).code).toBe(3);
    expect((await ternctl('--datastore', db, 'delete', 'networkpolicy', 'allow-web', '-n', 'shop')).code).toBe(0);
    expect((await ternctl('--datastore', db, 'get', 'np')).out).not.toContain('allow-web');
    const d = await ternctl('--datastore', db, 'delete', '-f', path.join(dir, 'all.yaml'));
    expect(d.code, d.err).toBe(0);
    for (const k of KINDS) expect((await ternctl('--datastore', db, 'get', k)).out).toMatch(/^no \w+ stored\n$/);
  });
});

describe('BGP kinds', () => {
  it('an invalid BGPPeer names file, line and field, and nothing is stored', async () => {
    const bdb = path.join(dir, 'bgp-bad.db');
    const f = save('bad-bgppeer.yaml', 'apiVersion: tern.io/v1\nkind: Tier\nmetadata: {name: t}\n---\nkind: BGPPeer\nmetadata: {name: tor}\nspec:\n  peerIP: 192.0.2.1\n  asNumber: 0\n---\nkind: BGPPeer\nmetadata: {name: tor2, namespace: x}\nspec: {peerIP: 192.0.2.2}\n');
    const r = await ternctl('--datastore', bdb, 'apply', '-f', f);
    expect(r.code).toBe(2);
    expect(r.err).toContain(`${f}:9: spec.asNumber: must be an AS number from 1 to 4294967295`);
    expect(r.err).toContain(`${f}:12: metadata.namespace: unknown field`);
    expect((await ternctl('--datastore', bdb, 'get', 'tier')).code).toBe(4); // not even the datastore was created
  });

  it('bgp apply|get|delete are the same verbs: what one stores the other lists and removes', async () => {
    const bdb = path.join(dir, 'bgp.db');
    const f = save('fabric.yaml', 'kind: BGPConfiguration\nmetadata: {name: default}\nspec: {nodeToNodeMesh: false}\n---\nkind: BGPPeer\nmetadata: {name: tor}\nspec: {peerIP: 192.0.2.1}\n');
    const a = await ternctl('--datastore', bdb, 'bgp', 'apply', '-f', f);
    expect(a.code, a.err).toBe(0);
    expect(a.out).toBe('BGPConfiguration/default applied\nBGPPeer/tor applied\napplied 2 resources (2 changed)\n');
    expect(JSON.parse((await ternctl('--datastore', bdb, '-o', 'json', 'apply', '-f', f)).out)).toEqual({ changed: [], unchanged: ['BGPConfiguration/default', 'BGPPeer/tor'] });
    // json/yaml of bgp get stay the stored resources, configuration first.
    expect(JSON.parse((await ternctl('--datastore', bdb, '-o', 'json', 'bgp', 'get')).out)).toEqual([
      { kind: 'BGPConfiguration', name: 'default', nodeToNodeMesh: false },
      { kind: 'BGPPeer', name: 'tor', peerIP: '192.0.2.1' },
    ]);
    expect((await ternctl('--datastore', bdb, 'bgp', 'get')).out).toBe('NAME     MESH  AS  AS LABEL  PORT\ndefault  off   -   -         -\n\nNAME  PEER       AS  NODE SELECTOR\ntor   192.0.2.1  -   all()\n');
    // bgp apply takes only the BGP kinds, naming the document that is not one.
    const other = save('not-bgp.yaml', 'kind: BGPPeer\nmetadata: {name: tor3}\nspec: {peerIP: 192.0.2.3}\n---\napiVersion: tern.io/v1\nkind: Tier\nmetadata: {name: t}\n');
    const o = await ternctl('--datastore', bdb, 'bgp', 'apply', '-f', other);
    expect(o.code).toBe(2);
    expect(o.err).toContain(`${other}:6: kind: must be BGPPeer or BGPConfiguration`);
    expect((await ternctl('--datastore', bdb, 'get', 'bgppeer', 'tor3')).code).toBe(3);
    expect((await ternctl('--datastore', bdb, 'bgp', 'delete', 'BGPPeer', 'tor')).out).toBe('BGPPeer/tor deleted\ndeleted 1 resources (1 changed)\n');
    expect((await ternctl('--datastore', bdb, 'get', 'bgppeer', 'tor')).code).toBe(3);
    expect((await ternctl('--datastore', bdb, 'bgp', 'delete', 'bgppeer', 'tor')).code).toBe(3);
    expect((await ternctl('--datastore', bdb, 'bgp', 'delete', 'ippool', 'tor')).code).toBe(2);
    expect((await ternctl('--datastore', bdb, 'delete', 'bgpconfig', 'default')).code).toBe(0);
    expect((await ternctl('--datastore', bdb, 'bgp', 'get')).out).toBe('no BGPConfiguration stored\n\nno BGPPeer stored\n');
  });
});

describe('IPPool follows the IPAM rules', () => {
  let pdb: string;
  beforeAll(async () => {
    pdb = path.join(dir, 'pools.db');
    expect((await ternctl('--datastore', pdb, 'ipam', 'pool', 'set', '10.60.0.0/16', '--block-size', '26')).code).toBe(0);
  });
  const pool = (cidr: string, extra = '') => save(`pool-${cidr.replace(/\W/g, '_')}.yaml`, `apiVersion: tern.io/v1\nkind: IPPool\nspec: {cidr: ${cidr}${extra}}\n`);

  it('no overlap with another pool, through apply and ipam pool set', async () => {
    const a = await ternctl('--datastore', pdb, 'apply', '-f', pool('10.60.128.0/17'));
    expect(a.code).toBe(2);
    expect(a.err).toContain('pool 10.60.128.0/17 overlaps pool 10.60.0.0/16');
    expect((await ternctl('--datastore', pdb, 'ipam', 'pool', 'set', '10.0.0.0/8')).code).toBe(2);
    expect((await ternctl('--datastore', pdb, 'apply', '-f', pool('10.61.0.0/16'))).code).toBe(0);
  });

  it('no block-size change while blocks exist; other changes are fine', async () => {
    expect((await ternctl('--datastore', pdb, 'apply', '-f', pool('10.61.0.0/16', ', blockSize: 28'))).code).toBe(0); // no blocks yet
    const s = new SqliteStore({ path: pdb });
    await new BlockIpam({ store: s, node: 'n1' }).allocate({ key: { network: 'net', containerId: 'c1', ifname: 'eth0' }, pools: ['10.60.0.0/16'] });
    await s.close();
    const r = await ternctl('--datastore', pdb, '-o', 'json', 'apply', '-f', pool('10.60.0.0/16', ', blockSize: 28'));
    expect(r.code).toBe(2);
    expect(JSON.parse(r.out).error).toMatchObject({ code: 'INVALID_CONFIG', field: 'spec.blockSize', message: expect.stringContaining('blockSize cannot change from /26 to /28 while it has 1 blocks') });
    expect((await ternctl('--datastore', pdb, 'ipam', 'pool', 'set', '10.60.0.0/16', '--block-size', '28')).code).toBe(2);
    expect((await ternctl('--datastore', pdb, 'apply', '-f', pool('10.60.0.0/16', ', blockSize: 26, disabled: true'))).code).toBe(0);
  });

  it('a pool with addresses in use is not deleted', async () => {
    const r = await ternctl('--datastore', pdb, 'delete', 'ippool', '10.60.0.0-16');
    expect(r.code).toBe(1);
    expect(r.err).toContain('1 addresses in use');
    expect((await ternctl('--datastore', pdb, 'delete', 'ippool', '10.61.0.0/16')).code).toBe(0);
  });

  it('file, line and field for a bad pool', async () => {
    const f = save('bad-pool.yaml', 'apiVersion: tern.io/v1\nkind: Tier\nmetadata: {name: t}\n---\napiVersion: tern.io/v1\nkind: IPPool\nspec:\n  cidr: 10.70.0.0/16\n  blockSize: 8\n');
    const r = await ternctl('--datastore', pdb, 'apply', '-f', f);
    expect(r.code).toBe(2);
    expect(r.err).toContain(`${f}:9: spec.blockSize: pool 10.70.0.0/16: blockSize /8 must lie between /16 and /32`);
    expect((await ternctl('--datastore', pdb, 'get', 'tier')).out).toBe('no Tier stored\n');
  });
});
