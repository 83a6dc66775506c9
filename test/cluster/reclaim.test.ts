import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { DIST_BIN, Sandbox, waitFor, type Netns } from '../sandbox';
import { makeNode, runCni, ternConfig } from '../sandbox/cni';
import { addrToBigInt, parsePrefix, prefixContains } from '../../src/lib/cidr';

/**
 * The daemon gives a block back to its pool once it has been empty for the
 * grace period (here 0 s, checked every second): its blackhole route goes,
 * its affinity goes, and the node keeps its last block.
 */
describe('node daemon: empty blocks return to their pool', () => {
  const sb = new Sandbox('recl');
  let dir: string;
  let node: Netns;
  let conf: Record<string, any>;
  const pods: { id: string; ns: Netns; ip: string }[] = [];
  const blackholes = (): string[] => node.ipJson('route', 'show', 'proto', '85', 'type', 'blackhole').map((r: any) => r.dst as string).sort();

  beforeAll(async () => {
    dir = sb.tmpdir();
    ({ node } = makeNode(sb, 'n1'));
    const db = path.join(dir, 'tern.db');
    const pool = node.exec(path.join(DIST_BIN, 'ternctl'), ['--datastore', db, 'ipam', 'pool', 'set', '10.250.0.0/24', '--block-size', '30']);
    expect(pool.code, pool.stderr).toBe(0);
    const socket = path.join(dir, 'cni.sock');
    const cfg = path.join(dir, 'node.yaml');
    fs.writeFileSync(cfg, [`nodename: n1`, `nodenameFile: ${dir}/nodename`, 'addresses: [192.0.2.11/24]', `cniSocket: ${socket}`, 'healthListen: ""', "policyDir: ''", `datastore: {type: sqlite, path: ${db}}`, 'ipam: {reclaimInterval: 1, emptyBlockGrace: 0}', ''].join('\n'));
    sb.daemon(path.join(DIST_BIN, 'ternctl'), ['node', 'run', '--config', cfg], { netns: node });
    await waitFor(() => fs.existsSync(socket) || undefined, { what: 'daemon socket', timeoutMs: 30_000 });
    conf = ternConfig(dir, { nodename: 'n1', cni_socket: socket, ipam: { type: 'tern-ipam', pools: ['10.250.0.0/24'] } });
    // Attach pods until the node needs a second block.
    for (let i = 0; i < 10 && blackholes().length < 2; i++) {
      const ns = sb.netns(`p${i}`);
      const r = await runCni(node, { command: 'ADD', containerId: `ctr-r${i}`, netns: ns.path, ifname: 'eth0', config: conf });
      expect(r.code, r.stdout).toBe(0);
      pods.push({ id: `ctr-r${i}`, ns, ip: r.json.ips[0].address.split('/')[0] });
      await new Promise((res) => setTimeout(res, 300)); // the block reconciler follows the affinity index
    }
  }, 90_000);
  afterAll(() => sb.cleanup());

  it('a block emptied by DEL goes back; the node keeps its other block', async () => {
    const before = blackholes();
    expect(before.length).toBe(2);
    const last = pods[pods.length - 1];
    const second = before.find((b) => prefixContains(parsePrefix(b), addrToBigInt(last.ip)))!;
    for (const p of pods.filter((x) => prefixContains(parsePrefix(second), addrToBigInt(x.ip)))) {
      const r = await runCni(node, { command: 'DEL', containerId: p.id, netns: p.ns.path, ifname: 'eth0', config: conf });
      expect(r.code, r.stdout).toBe(0);
    }
    await waitFor(() => (blackholes().length === 1 ? true : undefined), { what: 'the empty block reclaimed', timeoutMs: 20_000 });
    expect(blackholes()).toEqual(before.filter((b) => b !== second));
    const show = JSON.parse(node.must(path.join(DIST_BIN, 'ternctl'), ['--datastore', path.join(dir, 'tern.db'), '-o', 'json', 'ipam', 'show']));
    expect(show.blocks.map((b: any) => b.block)).toEqual(before.filter((b) => b !== second));
    // Its addresses are the pool's again: the next pod may get one of them.
    await new Promise((res) => setTimeout(res, 2000));
    expect(blackholes().length).toBe(1); // the last block is never reclaimed
  });
});
