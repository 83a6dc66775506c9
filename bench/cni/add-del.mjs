// CNI ADD/DEL latency: tern (standalone binary) against Debian's Go ptp+host-local,
// on identical namespaces, interleaved in one run so both see the same machine load.
// Usage (as root, after npm run build): node bench/cni/add-del.mjs [--pods 50] [--concurrent 20] [--only daemon|standalone] [--rounds 3]
// REF=<another built checkout>: that build's tern runs too, interleaved, as "(ref)" rows (a change measured against
// its base in the same run). Each sequential round also times a bare `node -e 0` in the node namespace, the floor of
// the standalone path.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { Namespaces, fmt, pct } from '../lib.mjs';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const arg = (k, d) => { const i = process.argv.indexOf(k); return i > 0 ? Number(process.argv[i + 1]) : d; };
const PODS = arg('--pods', 50);
const CONC = arg('--concurrent', 20);
const ONLY = process.argv.includes('--only') ? process.argv[process.argv.indexOf('--only') + 1] : undefined;
const REF = process.env.REF ? path.resolve(process.env.REF) : undefined;
const work = fs.mkdtempSync(path.join(os.tmpdir(), 'tern-bench-'));
const ns = new Namespaces('cni');
process.on('exit', () => fs.rmSync(work, { recursive: true, force: true }));

const ternConf = (db, extra = {}) => ({ cniVersion: '1.0.0', name: 'bench', type: 'tern', ipam: { type: 'tern-ipam', pools: ['10.244.0.0/16'] }, datastore: { type: 'sqlite', path: path.join(work, db) }, log_file: path.join(work, 'cni.log'), log_level: 'warn', ...extra });
const ternImpls = (dir, tag) => ({
  [`tern (daemon${tag})`]: {
    bin: path.join(dir, 'dist/bin/tern'),
    cniPath: `${path.join(dir, 'dist/bin')}:/usr/lib/cni`,
    conf: ternConf(`daemon${tag ? '-ref' : ''}.db`, { cni_socket: socket(tag) }),
    daemon: dir,
    kind: 'daemon',
  },
  [`tern (standalone${tag})`]: {
    bin: path.join(dir, 'dist/bin/tern'),
    cniPath: `${path.join(dir, 'dist/bin')}:/usr/lib/cni`,
    conf: ternConf(`standalone${tag ? '-ref' : ''}.db`),
    kind: 'standalone',
  },
});
const socket = (tag) => path.join(work, `cni${tag ? '-ref' : ''}.sock`);
const impls = Object.fromEntries(
  Object.entries({ ...ternImpls(root, ''), ...(REF ? ternImpls(REF, ', ref') : {}) }).filter(([, v]) => !ONLY || v.kind === ONLY),
);
impls['ptp+host-local'] = {
  bin: '/usr/lib/cni/ptp',
  cniPath: '/usr/lib/cni',
  conf: { cniVersion: '1.0.0', name: 'bench', type: 'ptp', ipMasq: false, ipam: { type: 'host-local', ranges: [[{ subnet: '10.245.0.0/16' }]], routes: [{ dst: '0.0.0.0/0' }], dataDir: path.join(work, 'host-local') } },
};

function invoke(impl, node, command, pod, id) {
  const env = { PATH: process.env.PATH, TERN_ACL_STATE_DIR: path.join(work, 'acl-known'), CNI_COMMAND: command, CNI_CONTAINERID: id, CNI_NETNS: `/run/netns/${pod}`, CNI_IFNAME: 'eth0', CNI_PATH: impl.cniPath };
  return new Promise((resolve, reject) => {
    const t0 = process.hrtime.bigint();
    const c = spawn('nsenter', [`--net=/run/netns/${node}`, '--', impl.bin], { env, stdio: ['pipe', 'pipe', 'pipe'] });
    let out = '';
    c.stdout.on('data', (d) => (out += d));
    c.on('close', (code) => {
      const ms = Number(process.hrtime.bigint() - t0) / 1e6;
      code === 0 ? resolve(ms) : reject(new Error(`${command} ${id}: ${out}`));
    });
    c.stdin.end(JSON.stringify(impl.conf));
  });
}

const results = {};
const nodes = {};
for (const name of Object.keys(impls)) {
  nodes[name] = ns.node(`n${Object.keys(nodes).length}`);
  results[name] = { add: [], del: [], conc: 0, concDel: 0 };
}
// The daemons of the fast path run inside their node namespaces; stopped by PID at the end
// (a live child would keep this process from ever exiting).
const daemons = [];
for (const [name, impl] of Object.entries(impls)) {
  if (!impl.daemon) continue;
  const sock = impl.conf.cni_socket;
  const cfg = path.join(work, `node-${daemons.length}.yaml`);
  fs.writeFileSync(cfg, `cniSocket: ${sock}\nhealthListen: ""\nlogLevel: warn\ndatastore: {type: sqlite, path: ${impl.conf.datastore.path}}\n`);
  const d = spawn('nsenter', [`--net=/run/netns/${nodes[name]}`, '--', path.join(impl.daemon, 'dist/bin/ternctl'), 'node', 'run', '--config', cfg], { stdio: 'ignore' });
  daemons.push(d);
  process.on('exit', () => { try { process.kill(d.pid, 'SIGKILL'); } catch { /* gone */ } });
  for (let i = 0; i < 100 && !fs.existsSync(sock); i++) await new Promise((r) => setTimeout(r, 100));
  if (!fs.existsSync(sock)) throw new Error(`${name}: daemon did not start`);
}
// Warm-up (page cache, first sqlite open) for all.
for (const [name, impl] of Object.entries(impls)) {
  const p = ns.add(`w${Object.keys(impls).indexOf(name)}`);
  await invoke(impl, nodes[name], 'ADD', p, 'warm');
  await invoke(impl, nodes[name], 'DEL', p, 'warm');
}
// `node -e 0` started the way the shim starts tern-standalone (nsenter, then exec), in the same rounds.
const bare = [];
function bareNode(node) {
  return new Promise((resolve) => {
    const t0 = process.hrtime.bigint();
    spawn('nsenter', [`--net=/run/netns/${node}`, '--', process.execPath, '-e', '0'], { stdio: 'ignore' }).on('close', () => resolve(Number(process.hrtime.bigint() - t0) / 1e6));
  });
}
const pods = {};
for (const [k, name] of Object.keys(impls).entries()) pods[name] = Array.from({ length: PODS }, (_, i) => ns.add(`p${k}-${i}`));
for (let i = 0; i < PODS; i++) {
  const keys = Object.keys(impls);
  const order = keys.map((_, j) => keys[(i + j) % keys.length]);
  for (const name of order) results[name].add.push(await invoke(impls[name], nodes[name], 'ADD', pods[name][i], `c${i}`));
  bare.push(await bareNode(nodes['ptp+host-local']));
}
for (let i = 0; i < PODS; i++) {
  const keys = Object.keys(impls);
  const order = keys.map((_, j) => keys[(i + j) % keys.length]);
  for (const name of order) results[name].del.push(await invoke(impls[name], nodes[name], 'DEL', pods[name][i], `c${i}`));
}
// The concurrent burst is one wall-clock sample per round, so it is repeated (--rounds, default 3), the
// implementations taking turns first, and the median is reported.
const ROUNDS = arg('--rounds', 3);
const concAdd = Object.fromEntries(Object.keys(impls).map((n) => [n, []]));
const concDel = Object.fromEntries(Object.keys(impls).map((n) => [n, []]));
for (let r = 0; r < ROUNDS; r++) {
  const keys = Object.keys(impls);
  for (const name of keys.map((_, j) => keys[(r + j) % keys.length])) {
    const cp = Array.from({ length: CONC }, (_, i) => pods[name][i]);
    const t0 = process.hrtime.bigint();
    await Promise.all(cp.map((p, i) => invoke(impls[name], nodes[name], 'ADD', p, `k${r}-${i}`)));
    concAdd[name].push(Number(process.hrtime.bigint() - t0) / 1e6);
    const t1 = process.hrtime.bigint();
    await Promise.all(cp.map((p, i) => invoke(impls[name], nodes[name], 'DEL', p, `k${r}-${i}`)));
    concDel[name].push(Number(process.hrtime.bigint() - t1) / 1e6);
  }
}
for (const name of Object.keys(impls)) Object.assign(results[name], { conc: pct(concAdd[name], 50), concDel: pct(concDel[name], 50) });

const ref = results['ptp+host-local'];
console.log(`\nCNI ADD/DEL, ${PODS} sequential pods and ${CONC} concurrent ADDs then DELs (median of ${ROUNDS} rounds), ${os.cpus().length} cores, load ${os.loadavg()[0].toFixed(2)}\n`);
console.log(`| plugin | ADD p50 | ADD p90 | DEL p50 | DEL p90 | ${CONC} concurrent ADDs (wall) | ${CONC} concurrent DELs (wall) |`);
console.log('|---|---|---|---|---|---|---|');
for (const [name, r] of Object.entries(results)) {
  console.log(`| ${name} | ${fmt(pct(r.add, 50))} | ${fmt(pct(r.add, 90))} | ${fmt(pct(r.del, 50))} | ${fmt(pct(r.del, 90))} | ${fmt(r.conc)} | ${fmt(r.concDel)} |`);
}
for (const name of Object.keys(impls)) {
  if (name === 'ptp+host-local') continue;
  const t = results[name];
  console.log(`| ratio ${name}/ref | ${(pct(t.add, 50) / pct(ref.add, 50)).toFixed(2)}x | ${(pct(t.add, 90) / pct(ref.add, 90)).toFixed(2)}x | ${(pct(t.del, 50) / pct(ref.del, 50)).toFixed(2)}x | ${(pct(t.del, 90) / pct(ref.del, 90)).toFixed(2)}x | ${(t.conc / ref.conc).toFixed(2)}x | ${(t.concDel / ref.concDel).toFixed(2)}x |`);
}
console.log(`\nbare \`node -e 0\` through nsenter, in the same rounds: p50 ${fmt(pct(bare, 50))}, p90 ${fmt(pct(bare, 90))}`);
for (const name of Object.keys(impls)) {
  if (impls[name].kind === 'standalone') console.log(`${name} ADD p50 minus bare start p50: ${fmt(pct(results[name].add, 50) - pct(bare, 50))} (target <= 30 ms)`);
}
// Stop the daemons by PID and wait for them, then leave (the exit handlers remove the namespaces).
for (const d of daemons) {
  if (d.exitCode !== null) continue;
  const gone = new Promise((r) => d.once('exit', r));
  d.kill('SIGTERM');
  await Promise.race([gone, new Promise((r) => setTimeout(r, 5000))]);
}
process.exit(0);
