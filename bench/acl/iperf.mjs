// iperf3 pod -> pod throughput through a Tern node namespace with no policies
// against 1,000 policies loaded (several of which select both pods), side by
// side in one run, interleaved to even out noise. Namespaces only; removed at the end.
// Run: npm run build && node bench/acl/iperf.mjs
import { wireRoutedPods } from '../lib.mjs';
import { execFileSync, spawn } from 'node:child_process';
import * as acl from '../../dist/src/acl/index.js';
import { endpoint, namespacesYaml, policiesYaml } from './gen.mjs';

const prefix = `${process.env.TERN_TEST_PREFIX ?? 'ha'}-bip`;
const SECONDS = Number(process.env.SECONDS_PER_RUN ?? 5);
const ROUNDS = Number(process.env.ROUNDS ?? 3);
const ip = (...a) => execFileSync('ip', a, { encoding: 'utf8' });
const inNs = (ns, ...a) => execFileSync('nsenter', [`--net=/run/netns/${ns}`, '--', ...a], { encoding: 'utf8' });
const node = `${prefix}-node`;
const pods = [
  { ns: `${prefix}-a`, ip: '10.100.0.1', host: 'tern00000000001', app: 'app1', nsName: 'ns1' },
  { ns: `${prefix}-b`, ip: '10.100.0.2', host: 'tern00000000002', app: 'app2', nsName: 'ns2' },
];
const made = [];
let server;
try {
  wireRoutedPods(node, pods, made);
  server = spawn('nsenter', [`--net=/run/netns/${pods[1].ns}`, '--', 'iperf3', '-s', '-p', '5201'], { stdio: 'ignore' });
  await new Promise((r) => setTimeout(r, 1000));

  const eps = [...pods.map((p, i) => ({ kind: 'Endpoint', key: `${p.nsName}/bench${i}`, value: { name: `bench${i}`, namespace: p.nsName, labels: { app: p.app }, ips: [p.ip], hostIface: p.host, namedPorts: [] } })), ...Array.from({ length: 1000 }, (_, i) => endpoint(i + 10))];
  const many = acl.parsePolicyText(namespacesYaml() + policiesYaml(1000) + `---\napiVersion: tern.io/v1\nkind: GlobalNetworkPolicy\nmetadata: {name: allow-iperf}\nspec:\n  order: 0\n  selector: all()\n  ingress:\n    - {action: Allow, protocol: TCP, destination: {ports: [5201]}}\n  egress:\n    - {action: Allow}\n`, 'bench.yaml');
  const applier = new acl.Applier({ netnsPath: `/run/netns/${node}`, lockFile: `/tmp/${node}.lock` });
  const states = {
    none: acl.compileRuleset(acl.toInput(eps)),
    policies1000: acl.compileRuleset(acl.toInput([...many, ...eps])),
  };
  const run = () => {
    const out = JSON.parse(inNs(pods[0].ns, 'iperf3', '-c', pods[1].ip, '-p', '5201', '-t', String(SECONDS), '-J'));
    return out.end.sum_received.bits_per_second / 1e9;
  };
  const results = { none: [], policies1000: [] };
  for (let r = 0; r < ROUNDS; r++) {
    for (const k of ['none', 'policies1000']) {
      await applier.apply(states[k]);
      results[k].push(run());
    }
  }
  const median = (a) => [...a].sort((x, y) => x - y)[Math.floor(a.length / 2)];
  const none = median(results.none);
  const many1000 = median(results.policies1000);
  console.table({ none: { gbps: none.toFixed(2), runs: results.none.map((x) => x.toFixed(2)).join(' ') }, policies1000: { gbps: many1000.toFixed(2), runs: results.policies1000.map((x) => x.toFixed(2)).join(' ') } });
  console.log(`ratio (1000 policies / none): ${((many1000 / none) * 100).toFixed(1)}%`);
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
