// ACL benchmark: compile + apply time, rule and ipset counts, admitting a pod,
// rules traversed per new connection. Applies inside throwaway network namespaces only.
// Run: npm run build && node bench/acl/compile-apply.mjs
// Side by side with a reference build (another checkout, built): REF=/path/to/checkout
//
// Rules per new connection are counted by the kernel: two real probe pods
// (veths into the bench node namespace) selected by five policies each way
// (ordered after every generated policy), one TCP SYN between them, and the
// packet counters of `iptables -L -v -x -n` before and after
// (src/acl/counters.ts); the simulator's count for the same packet is printed
// next to it. Layout: by default every pod is on the bench node (the worst
// case for per-endpoint chains); PODS_PER_NODE=100 spreads the cluster's pods
// over nodes of 100 and the bench node (n0) holds its share plus the probes
// (a reference build without per-node chains compiles the same input).
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import * as path from 'node:path';
import { performance } from 'node:perf_hooks';
import * as current from '../../dist/src/acl/index.js';
import { ifaceGroup } from '../../dist/src/lib/iface-group.js';
import { endpoint, namespacesYaml, policiesYaml, probePoliciesYaml } from './gen.mjs';

const impls = [['this', current]];
if (process.env.REF) impls.unshift(['ref', await import(path.resolve(process.env.REF, 'dist/src/acl/index.js'))]);

const ms = (t0) => Math.round(performance.now() - t0);
const sizes = (process.env.SIZES ?? '100x1000,100x5000,1000x1000,1000x5000').split(',').map((s) => s.split('x').map(Number));
const perNode = Number(process.env.PODS_PER_NODE ?? 0);
const prefix = `${process.env.TERN_TEST_PREFIX ?? 'ha'}-bench`;
const PORT = 7000;
const sh = (cmd, args, input) => execFileSync(cmd, args, { encoding: 'utf8', input, maxBuffer: 1 << 30, stdio: ['pipe', 'pipe', 'pipe'] });
const inNs = (ns, cmd, ...args) => sh('ip', ['netns', 'exec', ns, cmd, ...args]);

/** Two pods wired like the CNI plugin does it (proxy ARP, /32 host routes); dst drops the probe port itself, so no answer crosses the node. */
function probePods(node) {
  inNs(node, 'sysctl', '-qw', 'net.ipv4.ip_forward=1');
  sh('ip', ['-n', node, 'link', 'set', 'lo', 'up']);
  sh('ip', ['-n', node, 'route', 'add', 'default', 'dev', 'lo']);
  const pods = [];
  for (const [i, role] of [[1, 'src'], [2, 'dst']]) {
    const ns = `${node}-${role}`;
    const host = `tern${createHash('sha256').update(`probe${i}`).digest('hex').slice(0, 11)}`; // named like the CNI plugin's veths
    const ip = `10.250.0.${i}`;
    sh('ip', ['netns', 'add', ns]);
    sh('ip', ['-n', node, 'link', 'add', host, 'address', 'ee:ee:ee:ee:ee:ee', 'type', 'veth', 'peer', 'name', 'eth0', 'netns', ns]);
    sh('ip', ['-n', node, 'link', 'set', host, 'group', String(ifaceGroup(host))]); // as the CNI plugin sets it
    inNs(node, 'sysctl', '-qw', `net.ipv4.conf.${host}.proxy_arp=1`, `net.ipv4.neigh.${host}.proxy_delay=0`);
    sh('ip', ['-n', node, 'link', 'set', host, 'up']);
    sh('ip', ['-n', ns, 'link', 'set', 'eth0', 'up']);
    sh('ip', ['-n', ns, 'link', 'set', 'lo', 'up']);
    sh('ip', ['-n', ns, 'addr', 'add', `${ip}/32`, 'dev', 'eth0']);
    sh('ip', ['-n', ns, 'route', 'add', '169.254.1.1', 'dev', 'eth0', 'scope', 'link']);
    sh('ip', ['-n', ns, 'route', 'add', 'default', 'via', '169.254.1.1', 'dev', 'eth0']);
    sh('ip', ['-n', node, 'route', 'add', `${ip}/32`, 'dev', host, 'scope', 'link']);
    pods.push({ ns, ip, resource: { kind: 'Endpoint', key: `probe/${role}`, value: { name: role, namespace: 'probe', labels: { role: 'probe' }, ips: [ip], hostIface: host, namedPorts: [], node: 'n0' } } });
  }
  inNs(pods[1].ns, 'iptables', '-I', 'INPUT', '-p', 'tcp', '--dport', String(PORT), '-j', 'DROP');
  return pods;
}

/** One SYN src -> dst: rules the kernel counted, and the simulator's count for the same packet. */
async function countSyn(node, backend, rs, [src, dst]) {
  const list = () => current.parseCounters(inNs(node, backend === 'legacy' ? 'iptables-legacy' : 'iptables-nft', '-t', 'filter', '-L', '-v', '-x', '-n'));
  const sim = current.simulate(rs.v4, 'FORWARD', { src: src.ip, dst: dst.ip, inIface: src.resource.value.hostIface, outIface: dst.resource.value.hostIface, protocol: 6, dstPort: PORT });
  for (let i = 0; i < 5; i++) {
    const before = list();
    inNs(src.ns, 'node', '-e', `const s=require('net').connect(${PORT},'${dst.ip}');s.on('error',()=>{});setTimeout(()=>{s.destroy();process.exit(0)},300)`);
    const after = list();
    if (current.hookPackets(before, after, 'FORWARD', 'tern-FORWARD') === 1) return { kernel: current.rulesTraversed(before, after, 'FORWARD'), sim: sim.rulesTraversed, verdict: sim.verdict };
  }
  return { kernel: NaN, sim: sim.rulesTraversed, verdict: sim.verdict };
}

const rows = [];
for (const [P, E] of sizes) for (const [impl, acl] of impls) {
  const ns = `${prefix}-${impl}-${P}-${E}`;
  execFileSync('ip', ['netns', 'add', ns]);
  try {
    const probes = probePods(ns);
    let t0 = performance.now();
    const policies = acl.parsePolicyText(namespacesYaml() + policiesYaml(P) + probePoliciesYaml(PORT), 'bench.yaml');
    const parseMs = ms(t0);
    const nodes = perNode ? Math.ceil(E / perNode) : undefined;
    const opts = nodes ? { node: 'n0' } : {};
    const eps = [...Array.from({ length: E }, (_, i) => endpoint(i, nodes)), ...probes.map((p) => p.resource)];
    t0 = performance.now();
    const rs = acl.compileRuleset(acl.toInput([...policies, ...eps]), opts);
    const compileMs = ms(t0);
    const rules = rs.v4.chains.reduce((n, c) => n + c.rules.length, 0) + rs.v6.chains.reduce((n, c) => n + c.rules.length, 0);
    const sets = rs.v4.sets.length + rs.v6.sets.length;
    const members = [...rs.v4.sets, ...rs.v6.sets].reduce((n, s) => n + s.members.length, 0);
    const applier = new acl.Applier({ netnsPath: `/run/netns/${ns}`, lockFile: `/tmp/${ns}.lock` });
    t0 = performance.now();
    await applier.apply(rs);
    const applyMs = ms(t0);
    t0 = performance.now();
    const noop = await applier.apply(acl.compileRuleset(acl.toInput([...policies, ...eps]), opts));
    const noopMs = ms(t0);
    const syn = await countSyn(ns, applier.backend, rs, probes);
    // Admit one more pod on the bench node: compile + apply.
    const pod = endpoint(E);
    t0 = performance.now();
    const admit = await applier.apply(acl.compileRuleset(acl.toInput([...policies, ...eps, { ...pod, value: { ...pod.value, ...(nodes ? { node: 'n0' } : {}) } }]), opts));
    const admitMs = ms(t0);
    rows.push({ impl, policies: P, endpoints: E, parseMs, compileMs, applyMs, noopReapplyMs: noopMs, noopChainsWritten: noop.chainsWritten, rules, ipsets: sets, setMembers: members, admitPodMs: admitMs, admitChainsWritten: admit.chainsWritten, admitSetsWritten: admit.setsWritten, podsPerNode: perNode || E, synRulesKernel: syn.kernel, synRulesSim: syn.sim, synVerdict: syn.verdict, backend: applier.backend });
    console.error(JSON.stringify(rows.at(-1)));
  } finally {
    for (const role of ['src', 'dst']) if (sh('ip', ['netns', 'list']).split('\n').some((l) => l.split(' ')[0] === `${ns}-${role}`)) execFileSync('ip', ['netns', 'del', `${ns}-${role}`]);
    execFileSync('ip', ['netns', 'del', ns]);
  }
}
console.table(rows);
