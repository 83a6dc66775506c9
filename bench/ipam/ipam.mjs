// IPAM benchmark: allocation rate, p50 latency and datastore round trips per
// allocation on SQLite, etcd (1 and 3 members); a 65,536-address pool across
// 256 simulated nodes; Debian's host-local for comparison.
//
//   npm run build && node bench/ipam/ipam.mjs [--n 1000] [--pods-per-node 200]
//
// etcd members run on loopback with free ports and temp data dirs, and are
// killed by PID at the end. Nothing touches the network configuration.
import { spawn, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);
const dist = path.resolve(path.dirname(new URL(import.meta.url).pathname), '../../dist/src');
const { SqliteStore, EtcdStore, CountingStore } = require(`${dist}/datastore`);
const { BlockIpam, loadIpamState, utilisation, normalisePool, poolKey } = require(`${dist}/ipam`);

const arg = (name, def) => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? Number(process.argv[i + 1]) : def;
};
const N = arg('n', 1000);
const PODS_PER_NODE = arg('pods-per-node', 200);
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'tern-bench-ipam-'));
const children = [];

const p50 = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const fmt = (x, d = 2) => x.toFixed(d);

function freePort() {
  return new Promise((res, rej) => {
    const s = net.createServer();
    s.on('error', rej);
    s.listen(0, '127.0.0.1', () => {
      const p = s.address().port;
      s.close(() => res(p));
    });
  });
}

async function startEtcd(members) {
  const ms = [];
  for (let i = 0; i < members; i++) ms.push({ name: `b${i}`, client: `http://127.0.0.1:${await freePort()}`, peer: `http://127.0.0.1:${await freePort()}` });
  const cluster = ms.map((m) => `${m.name}=${m.peer}`).join(',');
  const dir = fs.mkdtempSync(path.join(tmp, 'etcd-'));
  for (const m of ms) {
    const c = spawn('/usr/bin/etcd', ['--name', m.name, '--data-dir', path.join(dir, m.name), '--listen-client-urls', m.client, '--advertise-client-urls', m.client,
      '--listen-peer-urls', m.peer, '--initial-advertise-peer-urls', m.peer, '--initial-cluster', cluster, '--initial-cluster-state', 'new',
      '--initial-cluster-token', path.basename(dir), '--log-level', 'error'], { stdio: 'ignore' });
    children.push(c);
  }
  const endpoints = ms.map((m) => m.client);
  const probe = new EtcdStore({ endpoints, timeoutMs: 1000 });
  for (let t = 0; ; t++) {
    try {
      await probe.txn([{ op: 'put', key: '/bench/health', value: 'ok' }]);
      break;
    } catch (e) {
      if (t > 120) throw e;
      await new Promise((r) => setTimeout(r, 250));
    }
  }
  await probe.close();
  return endpoints;
}

/**
 * Steady state: one long-lived allocator (the daemon case); cold: a new allocator
 * object per allocation in the same process (what a fresh process pays in
 * datastore round trips, without its start-up; ternIpamExec measures that).
 */
async function measure(label, makeStore, n) {
  const rows = [];
  for (const mode of ['steady', 'cold']) {
    const store = new CountingStore(await makeStore());
    const pool = '10.0.0.0/8';
    let ipam = new BlockIpam({ store, node: 'bench' });
    await ipam.allocate({ key: { network: 'b', containerId: `warm-${mode}`, ifname: 'eth0' }, pools: [pool] });
    const lat = [];
    const rt0 = store.roundTrips;
    const t0 = process.hrtime.bigint();
    for (let i = 0; i < n; i++) {
      if (mode === 'cold') ipam = new BlockIpam({ store, node: 'bench' });
      const s = process.hrtime.bigint();
      await ipam.allocate({ key: { network: 'b', containerId: `${mode}-${i}`, ifname: 'eth0' }, pools: [pool] });
      lat.push(Number(process.hrtime.bigint() - s) / 1e6);
    }
    const secs = Number(process.hrtime.bigint() - t0) / 1e9;
    rows.push({ backend: label, mode: mode === 'steady' ? 'long-lived (daemon)' : 'new allocator per call, in-process', allocations: n, perSec: n / secs, p50ms: p50(lat), roundTrips: (store.roundTrips - rt0) / n });
    await store.close();
  }
  return rows;
}

async function scale() {
  const store = new SqliteStore({ path: path.join(tmp, 'scale.db') });
  const pool = '10.64.0.0/16';
  await store.create(poolKey(pool), JSON.stringify(normalisePool({ cidr: pool })));
  const t0 = Date.now();
  for (let node = 0; node < 256; node++) {
    const ipam = new BlockIpam({ store, node: `node-${String(node).padStart(3, '0')}` });
    for (let i = 0; i < PODS_PER_NODE; i++) await ipam.allocate({ key: { network: 'scale', containerId: `${node}-${i}`, ifname: 'eth0' }, pools: [pool] });
  }
  const u = utilisation(await loadIpamState(store));
  await store.close();
  return { nodes: 256, podsPerNode: PODS_PER_NODE, pods: 256 * PODS_PER_NODE, blocks: u.blocks.length, poolUtilisation: u.pools[0].utilisation, blockUtilisation: u.pools[0].used / (u.blocks.length * 64), fabricRoutes: u.fabricRoutes, routesWithoutBlocks: 256 * PODS_PER_NODE, seconds: (Date.now() - t0) / 1000 };
}

/**
 * The CNI-process case for real: exec dist/bin/tern-ipam once per allocation on
 * SQLite, as a runtime chaining it behind ptp would, beside host-local's exec.
 */
function ternIpamExec(n) {
  const bin = path.resolve(dist, '../bin/tern-ipam');
  const conf = JSON.stringify({ cniVersion: '1.0.0', name: 'bench', type: 'ptp', ipam: { type: 'tern-ipam', pools: ['10.129.0.0/16'], datastore: { type: 'sqlite', path: path.join(tmp, 'exec.db') }, nodename: 'bench' } });
  const lat = [];
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < n; i++) {
    const s = process.hrtime.bigint();
    const r = spawnSync(bin, [], { input: conf, env: { PATH: process.env.PATH, CNI_COMMAND: 'ADD', CNI_CONTAINERID: `c${i}`, CNI_NETNS: '/dev/null', CNI_IFNAME: 'eth0', CNI_PATH: '/usr/lib/cni' }, encoding: 'utf8' });
    if (r.status !== 0) throw new Error(`tern-ipam: ${r.stdout}${r.stderr}`);
    lat.push(Number(process.hrtime.bigint() - s) / 1e6);
  }
  const secs = Number(process.hrtime.bigint() - t0) / 1e9;
  return { backend: 'SQLite, tern-ipam (exec per allocation)', mode: 'process per call', allocations: n, perSec: n / secs, p50ms: p50(lat), roundTrips: NaN };
}

function hostLocal(n) {
  const dataDir = path.join(tmp, 'host-local');
  const conf = JSON.stringify({ cniVersion: '1.0.0', name: 'bench', type: 'host-local', ipam: { type: 'host-local', ranges: [[{ subnet: '10.128.0.0/16' }]], dataDir } });
  const lat = [];
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < n; i++) {
    const s = process.hrtime.bigint();
    const r = spawnSync('/usr/lib/cni/host-local', [], {
      input: conf,
      env: { CNI_COMMAND: 'ADD', CNI_CONTAINERID: `c${i}`, CNI_NETNS: '/dev/null', CNI_IFNAME: 'eth0', CNI_PATH: '/usr/lib/cni' },
      encoding: 'utf8',
    });
    if (r.status !== 0) throw new Error(`host-local: ${r.stdout}${r.stderr}`);
    lat.push(Number(process.hrtime.bigint() - s) / 1e6);
  }
  const secs = Number(process.hrtime.bigint() - t0) / 1e9;
  return { backend: 'host-local (exec per allocation)', mode: 'process per call', allocations: n, perSec: n / secs, p50ms: p50(lat), roundTrips: NaN };
}

try {
  const rows = [];
  rows.push(...(await measure('SQLite', async () => new SqliteStore({ path: path.join(tmp, `bench-${Date.now()}.db`) }), N)));
  const e1 = await startEtcd(1);
  rows.push(...(await measure('etcd, 1 member', async () => new EtcdStore({ endpoints: e1, prefix: `/b${Date.now()}` }), N)));
  const e3 = await startEtcd(3);
  rows.push(...(await measure('etcd, 3 members', async () => new EtcdStore({ endpoints: e3, prefix: `/b${Date.now()}` }), N)));
  rows.push(ternIpamExec(Math.min(N, 500)));
  rows.push(hostLocal(Math.min(N, 500)));
  console.log('| backend | allocator | allocations | alloc/s | p50 ms | round trips/alloc |');
  console.log('|---|---|---:|---:|---:|---:|');
  for (const r of rows) console.log(`| ${r.backend} | ${r.mode} | ${r.allocations} | ${fmt(r.perSec, 0)} | ${fmt(r.p50ms)} | ${Number.isNaN(r.roundTrips) ? 'n/a' : fmt(r.roundTrips)} |`);
  const s = await scale();
  console.log('\n65,536-address pool (10.64.0.0/16, /26 blocks) across 256 simulated nodes (SQLite):');
  console.log(`  pods ${s.pods} (${s.podsPerNode}/node), blocks used ${s.blocks} of 1024, pool utilisation ${fmt(s.poolUtilisation * 100, 1)}%, utilisation inside claimed blocks ${fmt(s.blockUtilisation * 100, 1)}%`);
  console.log(`  fabric routes needed ${s.fabricRoutes} (vs ${s.routesWithoutBlocks} host routes without blocks), ${fmt(s.seconds, 1)} s`);
} finally {
  for (const c of children) c.kill('SIGKILL');
  fs.rmSync(tmp, { recursive: true, force: true });
}
