/**
 * Issue 11, section 1: a runtime kills a slow ADD (SIGKILL of the `tern` shim)
 * and sends DEL for the same container at once. The daemon's ADD must not
 * outlive that DEL: no pod may keep an address IPAM considers free, no
 * address may sit on two pods, and GC must leave no endpoint record of an
 * attachment the runtime no longer lists. Eight other pods churn meanwhile.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { DIST_BIN, Sandbox, waitFor, type Daemon, type Netns } from '../sandbox';
import { listAllocations, makeNode, runCni, ternConfig } from '../sandbox/cni';
import { SqliteStore } from '../../src/datastore';
import { storedResources } from '../../src/acl/store';

const TRIES = 30;
const CHURNERS = 8;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function podAddresses(ns: Netns): string[] {
  const r = ns.exec('ip', ['-j', 'addr', 'show', 'dev', 'eth0']);
  if (r.code !== 0) return [];
  return (JSON.parse(r.stdout || '[]') as any[]).flatMap((l) => l.addr_info ?? []).filter((a: any) => a.family === 'inet').map((a: any) => a.local as string);
}

describe('a cancelled ADD that the daemon finishes after its DEL', () => {
  const sb = new Sandbox('cnicanc');
  let node: Netns;
  let dir: string;
  let conf: Record<string, any>;
  let daemon: Daemon;

  beforeAll(async () => {
    ({ node } = makeNode(sb, 'node'));
    dir = sb.tmpdir();
    const socket = path.join(dir, 'cni.sock');
    conf = ternConfig(dir, { cni_socket: socket, nodename: 'node1', ipam: { type: 'tern-ipam', pools: ['10.254.0.0/24'] } });
    const cfg = path.join(dir, 'node.yaml');
    fs.writeFileSync(cfg, `nodename: node1\nnodenameFile: ${dir}/nodename\ncniSocket: ${socket}\nhealthListen: ''\npolicyDir: ''\ndatastore: {type: sqlite, path: ${dir}/tern.db}\nlogLevel: info\n`);
    daemon = sb.daemon(path.join(DIST_BIN, 'ternctl'), ['node', 'run', '--config', cfg], { netns: node });
    await waitFor(() => fs.existsSync(socket), { what: 'CNI socket', timeoutMs: 30_000 });
  }, 60_000);
  afterAll(() => sb.cleanup());

  it(`${TRIES} killed ADDs, each followed at once by DEL, under churn of ${CHURNERS} pods: no orphan, no duplicate, no stale endpoint`, async () => {
    let churning = true;
    const churnPods = Array.from({ length: CHURNERS }, (_, i) => sb.netns(`bg${i}`));
    const churnErrors: string[] = [];
    const churners = churnPods.map(async (pod, i) => {
      for (let n = 0; churning; n++) {
        const call = { containerId: `bg-${i}`, netns: pod.path, ifname: 'eth0', config: conf };
        const a = await runCni(node, { command: 'ADD', ...call });
        if (a.code !== 0) churnErrors.push(`ADD bg-${i}: ${a.stdout}`);
        const d = await runCni(node, { command: 'DEL', ...call });
        if (d.code !== 0) churnErrors.push(`DEL bg-${i}: ${d.stdout}`);
      }
    });

    const pods: Netns[] = [];
    const orphans: string[] = [];
    const duplicates: string[] = [];
    for (let i = 0; i < TRIES; i++) {
      const pod = sb.netns(`c${i}`);
      pods.push(pod);
      const env = { PATH: process.env.PATH, TERN_ACL_STATE_DIR: process.env.TERN_ACL_STATE_DIR, CNI_COMMAND: 'ADD', CNI_CONTAINERID: `c${i}`, CNI_NETNS: pod.path, CNI_IFNAME: 'eth0', CNI_PATH: DIST_BIN };
      // nsenter execs the shim in place, so this PID is the shim itself.
      const shim = spawn('nsenter', [`--net=${node.path}`, '--', path.join(DIST_BIN, 'tern')], { env, stdio: ['pipe', 'ignore', 'ignore'] });
      const exited = new Promise((r) => shim.once('exit', r));
      shim.stdin.end(JSON.stringify(conf));
      await sleep(50 + Math.floor(Math.random() * 40));
      shim.kill('SIGKILL');
      await exited;
      const del = await runCni(node, { command: 'DEL', containerId: `c${i}`, netns: pod.path, ifname: 'eth0', config: conf });
      expect(del.code, del.stdout).toBe(0);
      await sleep(500);
      const left = podAddresses(pod);
      if (left.length) orphans.push(`c${i}: ${left.join(',')}`);
      // Every live pod's addresses at this moment: none may be on two pods.
      const seen = new Map<string, string>();
      for (const p of [...pods, ...churnPods]) {
        for (const a of podAddresses(p)) {
          if (seen.has(a)) duplicates.push(`${a} on ${seen.get(a)} and ${p.name}`);
          seen.set(a, p.name);
        }
      }
    }
    churning = false;
    await Promise.all(churners);
    expect(churnErrors).toEqual([]);
    expect(orphans).toEqual([]);
    expect(duplicates).toEqual([]);

    // The runtime lists no attachment any more: GC leaves no endpoint record, allocation or veth.
    const gc = await runCni(node, { command: 'GC', config: { ...conf, cniVersion: '1.1.0', 'cni.dev/valid-attachments': [] } });
    expect(gc.code, gc.stdout).toBe(0);
    const store = new SqliteStore({ path: path.join(dir, 'tern.db') });
    try {
      const endpoints = (await storedResources(store)).filter((r) => r.kind === 'Endpoint').map((r) => r.key);
      expect(endpoints).toEqual([]);
    } finally {
      await store.close();
    }
    expect(await listAllocations(conf)).toEqual([]);
    expect(node.ipJson('link', 'show').filter((l: any) => l.ifname.startsWith('tern'))).toEqual([]);
    expect(daemon.output()).not.toMatch(/"level":(50|60)/);
  }, 600_000);
});
