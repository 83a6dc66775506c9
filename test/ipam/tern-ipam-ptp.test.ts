/**
 * tern-ipam as the IPAM of Debian's ptp plugin: ptp runs inside a "node"
 * namespace (its host side), containers are namespaces; addresses come from
 * Tern's block IPAM on SQLite, and the containers reach each other via the node.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SqliteStore } from '../../src/datastore';
import { normalisePool, poolKey } from '../../src/ipam/model';
import { REPO, Sandbox, type Netns } from '../sandbox';

/** The built plugin entry; the test makes its own launcher so it does not depend on dist/bin's layout. */
const ENTRY = path.join(REPO, 'dist', 'src', 'bin', 'tern-ipam.js');

const sb = new Sandbox('iptp');
let node: Netns;
let dir = '';
let bin = '';
let ternIpam = '';
const conf = () => ({
  cniVersion: '1.0.0',
  name: 'ptpnet',
  type: 'ptp',
  ipMasq: false,
  log_file: path.join(dir, 'cni.log'),
  ipam: { type: 'tern-ipam', pools: ['10.70.0.0/24'], datastore: { type: 'sqlite', path: path.join(dir, 'tern.db') }, nodename: 'node1' },
});

function cni(command: string, container: Netns | undefined, id: string, config: object = conf(), plugin = '/usr/lib/cni/ptp') {
  return node.exec(plugin, [], {
    input: JSON.stringify(config),
    env: {
      ...process.env,
      CNI_COMMAND: command,
      CNI_CONTAINERID: id,
      CNI_NETNS: container?.path ?? '',
      CNI_IFNAME: 'eth0',
      CNI_PATH: `${bin}:/usr/lib/cni`,
    },
    timeoutMs: 60_000,
  });
}

beforeAll(async () => {
  if (!fs.existsSync(ENTRY)) throw new Error(`${ENTRY} missing: run npm run build first`);
  dir = sb.tmpdir();
  bin = path.join(dir, 'bin');
  fs.mkdirSync(bin);
  ternIpam = path.join(bin, 'tern-ipam');
  fs.writeFileSync(ternIpam, `#!${process.execPath}\nrequire(${JSON.stringify(ENTRY)}).run();\n`, { mode: 0o755 });
  node = sb.netns('node');
  // The pool's network and broadcast addresses are not for containers of a /24.
  const s = new SqliteStore({ path: path.join(dir, 'tern.db') });
  await s.create(poolKey('10.70.0.0/24'), JSON.stringify(normalisePool({ cidr: '10.70.0.0/24', reserved: ['10.70.0.0', '10.70.0.255'] })));
  await s.close();
});
afterAll(() => sb.cleanup());

describe('tern-ipam under Debian ptp', () => {
  it('ADD two containers, ping between them, CHECK, DEL twice, addresses released', async () => {
    const c1 = sb.netns('c1');
    const c2 = sb.netns('c2');
    const r1 = cni('ADD', c1, 'ctr1');
    expect(r1.code, r1.stdout + r1.stderr).toBe(0);
    const r2 = cni('ADD', c2, 'ctr2');
    expect(r2.code, r2.stdout + r2.stderr).toBe(0);
    const a1 = JSON.parse(r1.stdout).ips[0];
    const a2 = JSON.parse(r2.stdout).ips[0];
    expect(a1).toMatchObject({ address: '10.70.0.1/24', gateway: '169.254.1.1' });
    expect(a2.address).toBe('10.70.0.2/24');
    expect(c1.ipJson('-4', 'addr', 'show', 'eth0')[0].addr_info[0].local).toBe('10.70.0.1');
    expect(c1.ping('10.70.0.2', 2, 3)).toBe(true);
    const chk = cni('CHECK', c1, 'ctr1', { ...conf(), prevResult: JSON.parse(r1.stdout) });
    expect(chk.code, chk.stdout + chk.stderr).toBe(0);
    // The repeated ADD of the same attachment is not ptp's business; the IPAM side is idempotent.
    const direct = cni('ADD', c1, 'ctr1', { ...conf(), type: 'tern-ipam' }, ternIpam);
    expect(JSON.parse(direct.stdout).ips[0].address).toBe('10.70.0.1/24');
    for (let i = 0; i < 2; i++) {
      const d = cni('DEL', c1, 'ctr1');
      expect(d.code, d.stdout + d.stderr).toBe(0);
    }
    const s = new SqliteStore({ path: path.join(dir, 'tern.db') });
    const handles = (await s.list('/tern/ipam/v1/handles/')).items.map((kv) => kv.key.split('/').pop());
    await s.close();
    expect(handles).toEqual(['ptpnet.ctr2.eth0']);
  });

  it('errors are CNI error JSON: a bad config, an exhausted pool', () => {
    const c3 = sb.netns('c3');
    const bad = cni('ADD', c3, 'ctr3', { ...conf(), ipam: { ...conf().ipam, pools: ['not-a-cidr'] } }, ternIpam);
    expect(bad.code).not.toBe(0);
    expect(JSON.parse(bad.stdout)).toMatchObject({ code: 7 });
    const small = { ...conf(), ipam: { ...conf().ipam, pools: ['10.71.0.0/31'] } };
    for (const id of ['ctr3', 'ctr4']) expect(cni('ADD', c3, id, small, ternIpam).code).toBe(0);
    const full = cni('ADD', c3, 'ctr5', small, ternIpam);
    expect(full.code).not.toBe(0);
    expect(JSON.parse(full.stdout)).toMatchObject({ code: 101 });
    const ver = node.exec(ternIpam, [], { env: { ...process.env, CNI_COMMAND: 'VERSION' }, input: '{}' });
    expect(JSON.parse(ver.stdout).supportedVersions).toContain('1.1.0');
  });
});
