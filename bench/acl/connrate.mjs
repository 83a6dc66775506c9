// New TCP connections per second pod -> pod through a Tern node namespace,
// with no policies against 1,000 policies loaded, side by side in one run,
// rounds alternating to even out noise. Every connection is a real kernel TCP
// handshake: a client in the source pod's namespace connects and resets (no
// TIME_WAIT, so ports never run out), a listener in the destination pod
// accepts. The policy that admits the bench traffic sorts last in its tier
// (with per-tier chains a SYN crossed every policy's guarded jump; with
// per-endpoint chains only the policies that select the two pods). Namespaces
// only; removed at the end.
// Run: npm run build && node bench/acl/connrate.mjs
import { wireRoutedPods } from '../lib.mjs';
import { execFileSync, spawn } from 'node:child_process';
import * as acl from '../../dist/src/acl/index.js';
import { endpoint, namespacesYaml, policiesYaml } from './gen.mjs';

const prefix = `${process.env.TERN_TEST_PREFIX ?? 'ha'}-bcr`;
const SECONDS = Number(process.env.SECONDS_PER_RUN ?? 3);
const ROUNDS = Number(process.env.ROUNDS ?? 5);
const CONC = Number(process.env.CONCURRENCY ?? 4);
const PORT = 7070;
const ip = (...a) => execFileSync('ip', a, { encoding: 'utf8' });
const inNs = (ns, ...a) => execFileSync('nsenter', [`--net=/run/netns/${ns}`, '--', ...a], { encoding: 'utf8' });
const node = `${prefix}-node`;
const pods = [
  { ns: `${prefix}-a`, ip: '10.100.0.1', host: 'tern00000000001', app: 'app1' },
  { ns: `${prefix}-b`, ip: '10.100.0.2', host: 'tern00000000002', app: 'app2' },
];

// The listener: accept and forget (the client resets).
const serverJs = `require('net').createServer((s) => { s.on('error', () => {}); s.destroy(); }).listen(${PORT}, () => console.log('up'));`;
// The client: CONC loops of connect, then reset, for SECONDS; prints the count of completed handshakes.
const clientJs = `
const net = require('net');
const end = Date.now() + ${SECONDS * 1000};
let n = 0, errors = 0;
const loop = () => new Promise((done) => {
  const once = () => {
    if (Date.now() >= end) return done();
    const s = net.connect({ host: process.argv[1], port: ${PORT} });
    s.once('connect', () => { n++; s.resetAndDestroy(); setImmediate(once); });
    s.once('error', () => { errors++; s.destroy(); setImmediate(once); });
  };
  once();
});
Promise.all(Array.from({ length: ${CONC} }, loop)).then(() => console.log(JSON.stringify({ n, errors })));
`;

const made = [];
let server;
try {
  wireRoutedPods(node, pods, made);
  inNs(pods[1].ns, 'sysctl', '-qw', 'net.core.somaxconn=4096');
  server = spawn('nsenter', [`--net=/run/netns/${pods[1].ns}`, '--', process.execPath, '-e', serverJs], { stdio: ['ignore', 'pipe', 'inherit'] });
  await new Promise((res, rej) => {
    server.stdout.once('data', res);
    server.once('exit', () => rej(new Error('listener exited')));
  });

  // Bench pods live in namespace zzbench; 1,000 more endpoints fill the sets.
  const eps = [...pods.map((p, i) => ({ kind: 'Endpoint', key: `zzbench/bench${i}`, value: { name: `bench${i}`, namespace: 'zzbench', labels: { app: p.app }, ips: [p.ip], hostIface: p.host, namedPorts: [] } })), ...Array.from({ length: 1000 }, (_, i) => endpoint(i + 10))];
  // No order and the last name of the last kind: evaluated after all 1,000 policies.
  const admit = `---\napiVersion: tern.io/v1\nkind: NetworkPolicy\nmetadata: {name: zzz-allow-bench, namespace: zzbench}\nspec:\n  selector: all()\n  ingress:\n    - {action: Allow, protocol: TCP, destination: {ports: [${PORT}]}}\n  egress:\n    - {action: Allow}\n`;
  const many = acl.parsePolicyText(namespacesYaml() + policiesYaml(1000) + admit, 'bench.yaml');
  const applier = new acl.Applier({ netnsPath: `/run/netns/${node}`, lockFile: `/tmp/${node}.lock` });
  const states = {
    none: acl.compileRuleset(acl.toInput(eps)),
    policies1000: acl.compileRuleset(acl.toInput([...many, ...eps])),
  };
  const sim = acl.simulate(states.policies1000.v4, 'FORWARD', { src: pods[0].ip, dst: pods[1].ip, inIface: pods[0].host, outIface: pods[1].host, protocol: 6, dstPort: PORT });
  const run = () => {
    const out = JSON.parse(inNs(pods[0].ns, process.execPath, '-e', clientJs, pods[1].ip));
    if (out.n === 0) throw new Error(`no connection completed (${out.errors} errors)`);
    return { rate: out.n / SECONDS, errors: out.errors };
  };
  const results = { none: [], policies1000: [] };
  for (let r = 0; r < ROUNDS; r++) {
    for (const k of r % 2 ? ['policies1000', 'none'] : ['none', 'policies1000']) {
      await applier.apply(states[k]);
      const x = run();
      results[k].push(x.rate);
      console.error(JSON.stringify({ round: r, state: k, connPerSec: Math.round(x.rate), errors: x.errors }));
    }
  }
  const median = (a) => [...a].sort((x, y) => x - y)[Math.floor(a.length / 2)];
  const none = median(results.none);
  const many1000 = median(results.policies1000);
  const fmt = (a) => a.map((x) => Math.round(x)).join(' ');
  console.table({
    none: { connPerSec: Math.round(none), runs: fmt(results.none) },
    policies1000: { connPerSec: Math.round(many1000), runs: fmt(results.policies1000), rulesPerNewPacket: sim.rulesTraversed, verdict: sim.verdict },
  });
  console.log(`ratio (1000 policies / none): ${((many1000 / none) * 100).toFixed(1)}% (issue target >= 90%)`);
} finally {
  if (server) server.kill('SIGKILL');
  for (const n of made.reverse()) {
    try {
      execFileSync('ip', ['netns', 'del', n]);
    } catch {
      /* gone */
    }
  }
}
