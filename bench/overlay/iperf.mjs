// iperf3 pod -> pod across two nodes, three paths side by side in one run:
//   floor   node -> node over the underlay veth (one veth hop, a plain route)
//   routed  pod -> node -> node -> pod with plain routes to the pod blocks (Tern routed shape)
//   vxlan   the same pods, with the routes replaced by Tern's VXLAN overlay (VxlanReconciler)
// Rounds are interleaved (floor, routed, vxlan, floor, ...) and the median is reported, so
// load from other work on the machine hits all three alike.
//
// Run as root after `npm run build`:
//   node bench/overlay/iperf.mjs [--seconds 5] [--rounds 3]
// Everything happens in network namespaces named hob<pid>-*; the root namespace is untouched.
import { execFileSync, spawn } from 'node:child_process';
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);
const { VxlanReconciler, vtepMacFor } = require('../../dist/src/overlay/index.js');

const arg = (name, def) => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? Number(process.argv[i + 1]) : def;
};
const SECONDS = arg('seconds', 5);
const ROUNDS = arg('rounds', 3);
const P = `hob${process.pid}`;
const made = [];

const ip = (...a) => execFileSync('ip', a, { encoding: 'utf8' });
const inNs = (ns, cmd, ...a) => execFileSync('ip', ['netns', 'exec', `${P}-${ns}`, cmd, ...a], { encoding: 'utf8', timeout: (SECONDS + 30) * 1000 });
const netns = (n) => {
  ip('netns', 'add', `${P}-${n}`);
  made.push(`${P}-${n}`);
  ip('-n', `${P}-${n}`, 'link', 'set', 'lo', 'up');
};
const nsIp = (n, ...a) => ip('-n', `${P}-${n}`, ...a);

function build() {
  for (const n of ['n1', 'n2', 'p1', 'p2']) netns(n);
  nsIp('n1', 'link', 'add', 'eth0', 'type', 'veth', 'peer', 'name', 'eth0', 'netns', `${P}-n2`);
  nsIp('n1', 'addr', 'add', '10.10.1.2/24', 'dev', 'eth0');
  nsIp('n2', 'addr', 'add', '10.10.1.3/24', 'dev', 'eth0');
  for (const [node, pod, podIp, hv] of [['n1', 'p1', '10.244.1.2', 'tern0000000b01'], ['n2', 'p2', '10.244.2.2', 'tern0000000b02']]) {
    inNs(node, 'sysctl', '-qw', 'net.ipv4.ip_forward=1');
    nsIp(node, 'link', 'set', 'eth0', 'up');
    // Proxy ARP answers for 169.254.1.1 only if the node routes it elsewhere: nodes have a default route.
    nsIp(node, 'route', 'add', 'default', 'via', node === 'n1' ? '10.10.1.3' : '10.10.1.2');
    nsIp(node, 'link', 'add', hv, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', `${P}-${pod}`);
    nsIp(node, 'link', 'set', hv, 'address', 'ee:ee:ee:ee:ee:ee', 'up');
    inNs(node, 'sysctl', '-qw', `net.ipv4.conf.${hv}.proxy_arp=1`);
    nsIp(node, 'route', 'add', `${podIp}/32`, 'dev', hv, 'scope', 'link');
    nsIp(pod, 'addr', 'add', `${podIp}/32`, 'dev', 'eth0');
    nsIp(pod, 'link', 'set', 'eth0', 'up');
    nsIp(pod, 'route', 'add', '169.254.1.1/32', 'dev', 'eth0', 'scope', 'link');
    nsIp(pod, 'route', 'add', 'default', 'via', '169.254.1.1', 'dev', 'eth0');
  }
}

const nodes = {
  n1: { name: 'n1', underlayIp: '10.10.1.2', tunnelIp: '10.244.1.1', block: '10.244.1.0/26', subnet: '10.10.1.0/24' },
  n2: { name: 'n2', underlayIp: '10.10.1.3', tunnelIp: '10.244.2.1', block: '10.244.2.0/26', subnet: '10.10.1.0/24' },
};
const remote = (n) => ({ name: n.name, underlayIp: n.underlayIp, vtepMac: vtepMacFor(n.name), tunnelIp: n.tunnelIp, blocks: [n.block], subnet: n.subnet });

async function setMode(mode) {
  for (const [self, other] of [['n1', 'n2'], ['n2', 'n1']]) {
    const r = new VxlanReconciler({ netnsPath: `/run/netns/${P}-${self}` });
    try {
      await r.reconcile({ self: { name: self, underlayIp: nodes[self].underlayIp, tunnelIp: nodes[self].tunnelIp }, remotes: [remote(nodes[other])], mode: mode === 'vxlan' ? 'vxlan' : 'routed' });
    } finally {
      r.close();
    }
    const viaUnderlay = [nodes[other].block, 'via', nodes[other].underlayIp, 'dev', 'eth0'];
    if (mode === 'routed') nsIp(self, 'route', 'replace', ...viaUnderlay);
    else {
      try {
        execFileSync('ip', ['-n', `${P}-${self}`, 'route', 'del', nodes[other].block, 'via', nodes[other].underlayIp], { stdio: 'ignore' });
      } catch {
        /* not there */
      }
    }
  }
}

function iperf(fromNs, toNs, host) {
  const srv = spawn('ip', ['netns', 'exec', `${P}-${toNs}`, 'iperf3', '-s', '-1', '-B', host], { stdio: 'ignore' });
  try {
    for (let i = 0; i < 50; i++) {
      try {
        const j = JSON.parse(inNs(fromNs, 'iperf3', '-c', host, '-t', String(SECONDS), '-J', '--connect-timeout', '3000'));
        if (j.error) throw Object.assign(new Error(j.error), { stdout: j.error });
        return j.end.sum_received.bits_per_second;
      } catch (e) {
        const msg = String(e.stdout ?? e.message);
        if (!/Connection refused|unable to connect|unable to send/.test(msg)) throw new Error(`iperf3 ${fromNs} -> ${host}: ${msg.slice(0, 300)}`);
        execFileSync('sleep', ['0.1']);
      }
    }
    throw new Error('iperf3 server did not come up');
  } finally {
    srv.kill('SIGKILL');
  }
}

function cleanup() {
  for (const n of made.splice(0).reverse()) execFileSync('ip', ['netns', 'del', n], { stdio: 'ignore' });
}
for (const sig of ['SIGINT', 'SIGTERM']) process.once(sig, () => (cleanup(), process.exit(130)));

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

try {
  build();
  const res = { floor: [], routed: [], vxlan: [] };
  for (let round = 0; round < ROUNDS; round++) {
    res.floor.push(iperf('n1', 'n2', '10.10.1.3'));
    await setMode('routed');
    res.routed.push(iperf('p1', 'p2', '10.244.2.2'));
    await setMode('vxlan');
    res.vxlan.push(iperf('p1', 'p2', '10.244.2.2'));
    await setMode('none');
  }
  const floor = median(res.floor);
  console.log(`iperf3 TCP, ${SECONDS}s x ${ROUNDS} rounds, median Gbit/s (ratio to floor)`);
  for (const [k, v] of Object.entries(res)) {
    const m = median(v);
    console.log(`${k.padEnd(7)} ${(m / 1e9).toFixed(2).padStart(7)}  ${((m / floor) * 100).toFixed(1).padStart(6)}%   runs: ${v.map((x) => (x / 1e9).toFixed(2)).join(' ')}`);
  }
} finally {
  cleanup();
}
