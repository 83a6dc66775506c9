// Cluster scale run (issue 7): N node namespaces on one bridge, one shared
// SQLite datastore, a node daemon per node with Tern's own BGP full mesh, one
// pod per node attached through the real `tern` CNI binary (so every node owns
// a block), then: time to full convergence (every node has a BGP route, with a
// gateway, for every other node's block in its kernel), BGP sessions, memory
// (VmRSS) per daemon, and a pod-to-pod reachability spot check.
// Usage (as root, after npm run build):
//   node bench/cluster/scale.mjs [--nodes 30] [--settle 30] [--timeout 600] [--hold 30] [--concurrent 8] [--static-arp] [--keep-logs] [--debug]
// Everything (daemons by PID, namespaces, the work directory) is removed on
// exit, also on Ctrl-C or error. The root network namespace is not touched.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { Namespaces, pct, sh } from '../lib.mjs';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const arg = (k, d) => { const i = process.argv.indexOf(k); return i > 0 ? Number(process.argv[i + 1]) : d; };
const N = arg('--nodes', 30);
const SETTLE = arg('--settle', 30);
const TIMEOUT = arg('--timeout', 600);
const HOLD = arg('--hold', 30);
const CONC = arg('--concurrent', 8);
const KEEP_LOGS = process.argv.includes('--keep-logs');
// The kernel's ARP table is one table for all namespaces: past gc_thresh3 (1024
// by default) dynamic entries it refuses new ones ("neighbor table overflow"),
// and a full mesh needs N*(N-1) of them, so from about 32 nodes some nodes
// cannot reach their peers at all. Permanent entries are exempt from that limit
// (Linux 5.0+), so --static-arp writes them into each node namespace: what a
// real cluster, one kernel per node, never runs into. The root namespace's
// limits are not changed.
const STATIC_ARP = process.argv.includes('--static-arp');
const LOG_LEVEL = process.argv.includes('--debug') ? 'debug' : 'info';
if (!(N >= 2 && N <= 4000)) throw new Error('--nodes must be 2..4000');

const work = fs.mkdtempSync(path.join(os.tmpdir(), 'tern-scale-'));
const daemons = []; // { name, pid, child }
let stopping = false;
const killDaemons = (sig) => { for (const d of daemons) try { process.kill(d.pid, sig); } catch { /* gone */ } };
// Registered before Namespaces so the daemons die by PID before their namespaces go.
process.on('exit', () => {
  killDaemons('SIGKILL');
  if (KEEP_LOGS) console.error(`logs kept in ${work}`);
  else fs.rmSync(work, { recursive: true, force: true });
});
const ns = new Namespaces('scale');
const t = () => Number(process.hrtime.bigint() / 1000000n);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const log = (...a) => console.error(`[${((t() - T0) / 1000).toFixed(1)}s]`, ...a);
const T0 = t();

// Addresses: 192.0.2.0/24 up to 240 nodes, else 10.250.0.0/16.
const big = N > 240;
const nodeIp = (i) => (big ? `10.250.${Math.floor((i + 11) / 256)}.${(i + 11) % 256}` : `192.0.2.${11 + i}`);
const plen = big ? 16 : 24;
const swIp = big ? '10.250.0.1' : '192.0.2.1';
const ternctl = path.join(root, 'dist/bin/ternctl');
const db = path.join(work, 'tern.db');

// ---- topology ----
const sw = ns.add('sw');
sh('ip', ['-n', sw, 'link', 'add', 'br0', 'type', 'bridge']);
sh('ip', ['-n', sw, 'addr', 'add', `${swIp}/${plen}`, 'dev', 'br0']);
sh('ip', ['-n', sw, 'link', 'set', 'br0', 'up']);
const nodes = [];
for (let i = 0; i < N; i++) {
  const name = `node${i}`;
  const nsName = ns.add(`n${i}`);
  const ip = nodeIp(i);
  sh('ip', ['-n', nsName, 'link', 'add', 'uplink0', 'type', 'veth', 'peer', 'name', `p${i}`, 'netns', sw]);
  sh('ip', ['-n', sw, 'link', 'set', `p${i}`, 'master', 'br0', 'up']);
  sh('ip', ['-n', nsName, 'addr', 'add', `${ip}/${plen}`, 'dev', 'uplink0']);
  const mac = `02:7e:00:00:${((i >> 8) & 255).toString(16).padStart(2, '0')}:${(i & 255).toString(16).padStart(2, '0')}`;
  sh('ip', ['-n', nsName, 'link', 'set', 'uplink0', 'address', mac]);
  sh('ip', ['-n', nsName, 'link', 'set', 'uplink0', 'up']);
  sh('ip', ['-n', nsName, 'route', 'add', 'default', 'via', swIp]);
  sh('ip', ['netns', 'exec', nsName, 'sysctl', '-qw', 'net.ipv4.ip_forward=1']);
  const socket = path.join(work, `${name}.sock`);
  const cfg = path.join(work, `${name}.yaml`);
  fs.writeFileSync(cfg, [
    `nodename: ${name}`, `nodenameFile: ${work}/${name}.nodename`, `addresses: [${ip}/${plen}]`, `cniSocket: ${socket}`,
    'healthListen: 127.0.0.1:9099', "policyDir: ''", `datastore: {type: sqlite, path: ${db}}`, 'asn: 64512',
    `bgp: {mesh: true, holdTime: ${HOLD}, restartTime: 0}`, `logLevel: ${LOG_LEVEL}`, '',
  ].join('\n'));
  const conf = {
    cniVersion: '1.0.0', name: 'tern-net', type: 'tern', nodename: name, cni_socket: socket,
    ipam: { type: 'tern-ipam', pools: ['10.244.0.0/16'] }, datastore: { type: 'sqlite', path: db },
    log_file: path.join(work, 'cni.log'), log_level: 'warn',
  };
  nodes.push({ i, name, ns: nsName, ip, mac, socket, cfg, conf, logFile: path.join(work, `${name}.log`) });
}
if (STATIC_ARP) {
  for (const n of nodes) {
    const lines = nodes.filter((m) => m !== n).map((m) => `neigh replace ${m.ip} lladdr ${m.mac} dev uplink0 nud permanent`);
    sh('ip', ['-n', n.ns, '-batch', '-'], { input: lines.join('\n') + '\n' });
  }
}
log(`${N} node namespaces on one bridge (${ns.prefix}-*), datastore ${db}`);

// ---- daemons: all started at once, as a cluster boots ----
const tFirstStart = t();
for (const n of nodes) {
  const fd = fs.openSync(n.logFile, 'a');
  const child = spawn('nsenter', [`--net=/run/netns/${n.ns}`, '--', ternctl, 'node', 'run', '--config', n.cfg], { stdio: ['ignore', fd, fd] });
  fs.closeSync(fd);
  child.on('exit', (code, sig) => { if (!stopping) log(`daemon ${n.name} (pid ${child.pid}) exited: ${code ?? sig}`); n.exited = true; });
  n.pid = child.pid; // nsenter execs ternctl (node): the daemon itself
  daemons.push({ name: n.name, pid: child.pid, child });
}
const tLastSpawn = t();
for (const n of nodes) {
  while (!fs.existsSync(n.socket)) {
    if (n.exited) throw new Error(`daemon ${n.name} died:\n${fs.readFileSync(n.logFile, 'utf8').slice(-3000)}`);
    if (t() - tFirstStart > TIMEOUT * 1000) throw new Error(`daemon ${n.name} did not open its CNI socket`);
    await sleep(50);
  }
  n.tSocket = t();
}
const tAllStarted = Math.max(...nodes.map((n) => n.tSocket));
log(`all ${N} daemons serving CNI after ${((tAllStarted - tFirstStart) / 1000).toFixed(1)} s`);

// ---- one pod per node through the real CNI binary ----
function cniAdd(n) {
  const podNs = ns.add(`q${n.i}`);
  const env = { PATH: process.env.PATH, CNI_COMMAND: 'ADD', CNI_CONTAINERID: `scale-${n.i}`, CNI_NETNS: `/run/netns/${podNs}`, CNI_IFNAME: 'eth0', CNI_PATH: `${path.join(root, 'dist/bin')}:/usr/lib/cni` };
  return new Promise((resolve, reject) => {
    const t0 = t();
    const c = spawn('nsenter', [`--net=/run/netns/${n.ns}`, '--', path.join(root, 'dist/bin/tern')], { env, stdio: ['pipe', 'pipe', 'pipe'] });
    let out = '';
    c.stdout.on('data', (d) => (out += d));
    c.stderr.on('data', (d) => (out += d));
    c.on('close', (code) => {
      if (code !== 0) return reject(new Error(`CNI ADD on ${n.name}: ${out}`));
      n.pod = { ns: podNs, ip: JSON.parse(out).ips[0].address.split('/')[0], addMs: t() - t0 };
      resolve();
    });
    c.stdin.end(JSON.stringify(n.conf));
  });
}
{
  const queue = [...nodes];
  await Promise.all(Array.from({ length: Math.min(CONC, N) }, async () => { while (queue.length) await cniAdd(queue.shift()); }));
}
const tPods = t();
log(`${N} pods attached after ${((tPods - tFirstStart) / 1000).toFixed(1)} s (ADD p50 ${pct(nodes.map((n) => n.pod.addMs), 50)} ms)`);

const statusOf = (n) => {
  const r = sh('ip', ['netns', 'exec', n.ns, 'curl', '-sS', '--max-time', '10', 'http://127.0.0.1:9099/status'], { allowFail: true });
  try { return JSON.parse(r.stdout); } catch { return undefined; }
};

// ---- convergence: every node has a gateway route for every other node's block ----
// Block blackholes (proto 85) and BGP-learned routes (proto 86).
const routesOf = (n) => JSON.parse(sh('ip', ['-n', n.ns, '-j', 'route', 'show']).stdout || '[]').filter((r) => r.protocol === '85' || r.protocol === '86');
let tConv;
let lastMissing = '';
for (;;) {
  const tables = nodes.map((n) => routesOf(n));
  const owned = tables.map((rs) => rs.filter((r) => r.type === 'blackhole').map((r) => r.dst));
  let missing = 0;
  let example = '';
  for (const n of nodes) {
    const learned = new Map(tables[n.i].filter((r) => r.gateway).map((r) => [r.dst, r.gateway]));
    for (const m of nodes) {
      if (m === n) continue;
      const blocks = owned[m.i].length ? owned[m.i] : ['(no block yet)'];
      for (const b of blocks) if (learned.get(b) !== m.ip) { missing++; example ||= `${n.name} lacks ${b} via ${m.ip}`; }
    }
  }
  if (!missing) { tConv = t(); break; }
  if (t() - tFirstStart > TIMEOUT * 1000) {
    // What each node has: learned routes and its sessions by state, from its daemon's /status.
    for (const n of nodes) {
      const st = statusOf(n);
      const states = {};
      for (const p of st?.bgp?.peers ?? []) states[p.state] = (states[p.state] ?? 0) + 1;
      log(`${n.name}: ${tables[n.i].filter((r) => r.gateway).length}/${N - 1} blocks learned, peers ${JSON.stringify(states)}${st ? '' : ' (status unreadable)'}`);
    }
    throw new Error(`no convergence within ${TIMEOUT} s: ${missing} routes missing, e.g. ${example}`);
  }
  if (example !== lastMissing) { lastMissing = example; }
  await sleep(200);
}
log(`converged ${((tConv - tFirstStart) / 1000).toFixed(1)} s after the first daemon start`);

// ---- memory and CPU per daemon ----
const procStatus = (pid) => Object.fromEntries(fs.readFileSync(`/proc/${pid}/status`, 'utf8').split('\n').filter(Boolean).map((l) => { const [k, v] = l.split(/:\s*/); return [k, v]; }));
const kb = (s) => Number(String(s).split(/\s+/)[0]);
const cpuSec = (pid) => { const f = fs.readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' '); return (Number(f[11]) + Number(f[12])) / 100; };
const memNow = () => nodes.map((n) => {
  const st = procStatus(n.pid);
  if (st.Name !== 'node') throw new Error(`pid ${n.pid} is ${st.Name}, not the daemon`);
  return { rss: kb(st.VmRSS) / 1024, hwm: kb(st.VmHWM) / 1024, cpu: cpuSec(n.pid) };
});
const atConv = memNow();
const cpuAtConv = atConv.reduce((a, m) => a + m.cpu, 0);
log(`settling ${SETTLE} s before the steady-state memory sample`);
await sleep(SETTLE * 1000);
const steady = memNow();
const cpuIdle = (steady.reduce((a, m) => a + m.cpu, 0) - cpuAtConv) / SETTLE;

// ---- sessions: from each daemon's /status (inside its namespace), and flaps from the logs ----
let established = 0;
let peersSeen = 0;
for (const n of nodes) {
  const st = statusOf(n);
  if (!st?.bgp) { log(`status of ${n.name} unreadable`); continue; }
  peersSeen += st.bgp.peers.length;
  established += st.bgp.peers.filter((p) => p.state === 'Established').length;
}
let downs = 0;
let toEstablished = 0;
let lastEstablishedAt = 0;
const reasons = {};
for (const n of nodes) {
  for (const line of fs.readFileSync(n.logFile, 'utf8').split('\n')) {
    if (!line.startsWith('{')) continue;
    let e;
    try { e = JSON.parse(line); } catch { continue; }
    if (e.msg === 'session down') { downs++; reasons[e.reason] = (reasons[e.reason] ?? 0) + 1; }
    if (e.msg === 'state change' && e.to === 'Established') { toEstablished++; lastEstablishedAt = Math.max(lastEstablishedAt, e.time); }
  }
}
const sessions = established / 2;

// ---- reachability spot check: a few pod pairs across the cluster ----
const pairs = [[0, N - 1], [N - 1, 0], [Math.floor(N / 2), 1], [1, Math.floor(N / 3)], [N - 2, Math.floor((2 * N) / 3)]].filter(([a, b]) => a !== b && a < N && b < N);
let pingOk = 0;
for (const [a, b] of pairs) {
  const r = sh('ip', ['netns', 'exec', nodes[a].pod.ns, 'ping', '-c', '2', '-i', '0.2', '-W', '2', '-q', nodes[b].pod.ip], { allowFail: true });
  if (r.status === 0) pingOk++; else log(`ping ${nodes[a].name} pod -> ${nodes[b].name} pod (${nodes[b].pod.ip}) failed`);
}

// ---- report ----
const s = (ms) => `${(ms / 1000).toFixed(1)} s`;
const mmm = (xs, f = (x) => x.toFixed(0)) => `${f(Math.min(...xs))} / ${f(pct(xs, 50))} / ${f(Math.max(...xs))}`;
const wallClockOfFirstStart = Date.now() - (t() - tFirstStart);
console.log(`\nCluster scale run: ${N} nodes, full mesh,${STATIC_ARP ? ' static ARP,' : ''} ${os.cpus().length} cores, load ${os.loadavg().map((x) => x.toFixed(1)).join(' ')}\n`);
console.log(`daemons spawned in ${s(tLastSpawn - tFirstStart)}; all serving CNI after ${s(tAllStarted - tFirstStart)} (first at ${s(Math.min(...nodes.map((n) => n.tSocket)) - tFirstStart)})`);
console.log(`pods attached (${CONC} concurrent ADDs) after ${s(tPods - tFirstStart)}, ADD p50 ${pct(nodes.map((n) => n.pod.addMs), 50)} ms, max ${Math.max(...nodes.map((n) => n.pod.addMs))} ms`);
console.log(`last BGP session Established (from the logs) ${s(lastEstablishedAt - wallClockOfFirstStart)} after the first start`);
console.log(`full convergence ${s(tConv - tFirstStart)} after the first start, ${s(tConv - tAllStarted)} after all daemons serve CNI, ${s(tConv - tPods)} after the last pod`);
console.log(`sessions Established: ${sessions} of ${(N * (N - 1)) / 2} (peers listed ${peersSeen}); transitions to Established ${toEstablished} (${N * (N - 1)} needed), session downs ${downs}${downs ? ` ${JSON.stringify(reasons)}` : ''}`);
console.log(`daemon CPU to convergence: ${cpuAtConv.toFixed(1)} s total (${mmm(atConv.map((m) => m.cpu), (x) => x.toFixed(2))} s min/median/max); steady state ${(cpuIdle * 100).toFixed(1)} % of one core for all ${N} daemons`);
console.log(`reachability: ${pingOk}/${pairs.length} pod pairs across nodes`);
console.log('\n| nodes | sessions | first start → converged | all started → converged | last pod → converged | RSS MiB min / median / max (at convergence) | RSS MiB min / median / max (after ' + SETTLE + ' s) | peak RSS MiB max | pings |');
console.log('|---:|---:|---:|---:|---:|---|---|---:|---:|');
console.log(`| ${N} | ${sessions} | ${s(tConv - tFirstStart)} | ${s(tConv - tAllStarted)} | ${s(tConv - tPods)} | ${mmm(atConv.map((m) => m.rss))} | ${mmm(steady.map((m) => m.rss))} | ${Math.max(...steady.map((m) => m.hwm)).toFixed(0)} | ${pingOk}/${pairs.length} |`);

// ---- stop: SIGTERM by PID, then the exit handlers SIGKILL what is left and delete the namespaces ----
stopping = true;
killDaemons('SIGTERM');
for (let i = 0; i < 50 && nodes.some((n) => !n.exited); i++) await sleep(100);
process.exit(0);
