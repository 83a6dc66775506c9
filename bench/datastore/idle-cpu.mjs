// Idle CPU of a node daemon on the embedded (SQLite) store, fresh and after N
// CNI ADD/DEL cycles: this checkout against a reference checkout (built, e.g. a
// worktree of an older commit), both daemons in one run on the same machine.
// Usage (as root, after npm run build in both):
//   node bench/datastore/idle-cpu.mjs --ref /path/to/reference/checkout [--cycles 2000] [--seconds 20]
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { Namespaces } from '../lib.mjs';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const argv = process.argv;
const opt = (k, d) => { const i = argv.indexOf(k); return i > 0 ? argv[i + 1] : d; };
const CYCLES = Number(opt('--cycles', 2000));
const SECONDS = Number(opt('--seconds', 20));
const REF = opt('--ref', '');
const work = fs.mkdtempSync(path.join(os.tmpdir(), 'tern-bench-idle-'));
const ns = new Namespaces('idle');
process.on('exit', () => fs.rmSync(work, { recursive: true, force: true }));

const impls = { reference: REF, current: root };
if (!REF) delete impls.reference;
const CLK_TCK = 100;
const cpuTicks = (pid) => { const f = fs.readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' '); return Number(f[11]) + Number(f[12]); };
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

const runs = {};
for (const [name, dir] of Object.entries(impls)) {
  const node = ns.node(name.slice(0, 3));
  const pod = ns.add(`${name.slice(0, 3)}p`);
  const socket = path.join(work, `${name}.sock`);
  const db = path.join(work, `${name}.db`);
  const cfg = path.join(work, `${name}.yaml`);
  fs.writeFileSync(cfg, `nodename: ${name}\nnodenameFile: ${work}/${name}.nodename\ncniSocket: ${socket}\nhealthListen: ""\npolicyDir: ""\nlogLevel: warn\ndatastore: {type: sqlite, path: ${db}}\n`);
  const d = spawn('nsenter', [`--net=/run/netns/${node}`, '--', path.join(dir, 'dist/bin/ternctl'), 'node', 'run', '--config', cfg], { stdio: 'ignore' });
  process.on('exit', () => { try { process.kill(d.pid, 'SIGKILL'); } catch { /* gone */ } });
  for (let i = 0; i < 100 && !fs.existsSync(socket); i++) await sleep(100);
  if (!fs.existsSync(socket)) throw new Error(`${name} daemon did not start`);
  const conf = JSON.stringify({ cniVersion: '1.0.0', name: 'bench', type: 'tern', nodename: name, cni_socket: socket, ipam: { type: 'tern-ipam', pools: ['10.244.0.0/16'] }, datastore: { type: 'sqlite', path: db }, log_file: path.join(work, `${name}-cni.log`), log_level: 'warn' });
  runs[name] = { pid: d.pid, node, pod, dir, conf };
}

function invoke(r, command, id) {
  const env = { PATH: process.env.PATH, CNI_COMMAND: command, CNI_CONTAINERID: id, CNI_NETNS: `/run/netns/${r.pod}`, CNI_IFNAME: 'eth0', CNI_PATH: path.join(r.dir, 'dist/bin') };
  return new Promise((resolve, reject) => {
    const c = spawn('nsenter', [`--net=/run/netns/${r.node}`, '--', path.join(r.dir, 'dist/bin/tern')], { env, stdio: ['pipe', 'pipe', 'ignore'] });
    let out = '';
    c.stdout.on('data', (x) => (out += x));
    c.on('close', (code) => (code === 0 ? resolve() : reject(new Error(`${command} ${id}: ${out}`))));
    c.stdin.end(r.conf);
  });
}

/** Percent of one core each daemon used over the same idle window. */
async function idle() {
  await sleep(3000); // let coalesced work finish
  const t0 = Object.fromEntries(Object.entries(runs).map(([n, r]) => [n, cpuTicks(r.pid)]));
  const w0 = performance.now();
  await sleep(SECONDS * 1000);
  const secs = (performance.now() - w0) / 1000;
  return Object.fromEntries(Object.entries(runs).map(([n, r]) => [n, ((cpuTicks(r.pid) - t0[n]) / CLK_TCK / secs) * 100]));
}

for (const r of Object.values(runs)) { await invoke(r, 'ADD', 'warm'); await invoke(r, 'DEL', 'warm'); }
const fresh = await idle();
const tc = performance.now();
await Promise.all(Object.values(runs).map(async (r) => { for (let i = 0; i < CYCLES; i++) { await invoke(r, 'ADD', `c${i}`); await invoke(r, 'DEL', `c${i}`); } }));
console.log(`${CYCLES} ADD/DEL cycles per daemon in ${((performance.now() - tc) / 1000).toFixed(0)} s`);
const after = await idle();
console.log(`idle CPU of one node daemon (% of one core over ${SECONDS} s):`);
console.log('daemon'.padEnd(12), 'fresh'.padStart(8), `after ${CYCLES}`.padStart(12));
for (const n of Object.keys(runs)) console.log(n.padEnd(12), fresh[n].toFixed(2).padStart(8), after[n].toFixed(2).padStart(12));
