/**
 * kill -9 in the middle of block claims: several processes allocate from
 * tiny blocks (a claim every few allocations) on one datastore and are
 * killed at arbitrary moments. Afterwards the datastore must be consistent:
 * no leaked or dangling entries, no address given twice, every affinity
 * matching its block. Run on SQLite (many processes on one file) and etcd.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openStore, type DatastoreConfig } from '../../src/datastore';
import { checkIpam, loadIpamState } from '../../src/ipam/gc';
import { poolKey, normalisePool } from '../../src/ipam/model';
import { Sandbox, waitFor } from '../sandbox';
import { startEtcd } from '../sandbox/etcd';
import { ALLOCATE_LOOP, buildForChildren } from './child-build';

const sb = new Sandbox('icrash');
let build = '';

beforeAll(() => {
  build = buildForChildren(`${sb.prefix}-build`);
  fs.writeFileSync(path.join(build, 'allocate-loop.js'), ALLOCATE_LOOP);
});
afterAll(async () => {
  await sb.cleanup();
  if (build) fs.rmSync(build, { recursive: true, force: true });
});

async function crashRounds(ds: DatastoreConfig, pools: string[]): Promise<void> {
  const seed = openStore(ds);
  for (const cidr of pools) await seed.create(poolKey(cidr), JSON.stringify(normalisePool({ cidr, blockSize: cidr.includes(':') ? 126 : 30 }))).catch(() => undefined);
  const nodes = ['n1', 'n2', 'n3', 'n4'];
  for (let round = 0; round < 3; round++) {
    const kids = nodes.map((node) =>
      sb.daemon(process.execPath, [path.join(build, 'allocate-loop.js'), JSON.stringify({ datastore: ds, node: `${node}`, pools, count: 100_000 })], { cwd: build }),
    );
    // Let each child get well into its loop (several claims), then kill -9 at a spread of moments.
    const target = 12 + round * 7;
    await waitFor(
      () => {
        const dead = kids.find((k) => k.child.exitCode !== null || k.child.signalCode !== null);
        if (dead) throw new Error(`child ${dead.pid} ended (${dead.child.exitCode ?? dead.child.signalCode}): ${dead.output()}`);
        return kids.every((k) => k.output().split('\n').length > target);
      },
      { timeoutMs: 90_000, what: 'children allocating' },
    ).catch((e) => {
      throw new Error(`round ${round}: ${e.message}\n${kids.map((k) => k.output().slice(-3000)).join('\n---\n')}`);
    });
    for (const k of kids) {
      await new Promise((r) => setTimeout(r, Math.random() * 30));
      await k.stop('SIGKILL');
      expect(k.output()).not.toMatch(/Error/);
    }
  }
  const st = await loadIpamState(seed);
  // Empty blocks are a normal state (released addresses), not damage.
  expect(checkIpam(st, { now: Date.now(), graceMs: 0 }).filter((f) => f.kind !== 'empty-block')).toEqual([]);
  const addrs = [...st.handles.values()].flatMap((h) => h.rec.ips.map((i) => i.address));
  expect(addrs.length).toBeGreaterThan(20);
  expect(new Set(addrs).size).toBe(addrs.length);
  // Each node's addresses lie in that node's blocks.
  for (const h of st.handles.values()) {
    for (const ip of h.rec.ips) {
      const b = [...st.blocks.values()].find((x) => x.block.cidr === ip.block);
      expect(b?.block.affinity).toBe(h.rec.node);
    }
  }
  await seed.close();
}

describe('kill -9 during block claims leaves a consistent datastore', () => {
  it('SQLite: four processes on one file', async () => {
    await crashRounds({ type: 'sqlite', path: path.join(sb.tmpdir(), 'tern.db') }, ['10.40.0.0/20', 'fd40::/112']);
  }, 180_000);

  it('etcd', async () => {
    const etcd = await startEtcd(sb);
    await crashRounds({ type: 'etcd', endpoints: etcd.endpoints, prefix: '/crash' }, ['10.41.0.0/20']);
    await etcd.stop();
  }, 180_000);
});
