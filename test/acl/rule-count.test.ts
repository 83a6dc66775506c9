/**
 * Rules a new connection traverses, counted by the kernel: one TCP SYN between
 * two real pods through the node namespace, and the node's own packet
 * counters (`iptables -L -v -x -n`, before and after). A matched rule counts
 * the packet; the rules it was checked against are those up to the one that
 * ended each chain it entered (a verdict, a RETURN, a goto, or the chain's
 * end). That count must equal the simulator's for the same packet and ruleset,
 * and must not change with policies that select neither pod.
 */
import { describe, it, expect, beforeAll, afterAll, vi } from 'vitest';
import { Sandbox } from '../sandbox';
import { compileRuleset, hookPackets, parseCounters, rulesTraversed, simulate, type Endpoint, type Resource, type SimPacket } from '../../src/acl';
import { ifaceGroup } from '../../src/lib/iface-group';
import { shortHash } from '../../src/acl/compile';
import { AclTopology } from './topology';

const sb = new Sandbox('arcnt');
vi.setConfig({ testTimeout: 300_000 });
let t: AclTopology;

const SYN_PORT = 7000; // allowed by the fifth policy only, both ways
const DENIED_PORT = 7200; // allowed by none: end-of-tier deny
const OUT_ONLY_PORT = 7300; // allowed out by an egress-only policy, not in: denied at the destination's chain
const OTHER_PODS = 40;

/** Five policies select both pods, in order, after every other; the SYN meets all five in each direction. */
function probePolicies(): string {
  let y = `---\napiVersion: tern.io/v1\nkind: NetworkPolicy\nmetadata: {name: probe-out, namespace: probe}\nspec:\n  order: 9999\n  selector: role == "probe"\n  types: [Egress]\n  egress: [{action: Allow, protocol: TCP, destination: {ports: [${OUT_ONLY_PORT}]}}]\n`;
  for (let k = 0; k < 5; k++) {
    const port = k === 4 ? SYN_PORT : 7100 + k;
    y += `---\napiVersion: tern.io/v1\nkind: NetworkPolicy\nmetadata: {name: probe${k}, namespace: probe}\nspec:\n  order: ${10000 + k}\n  selector: role == "probe"\n  ingress: [{action: Allow, protocol: TCP, source: {selector: role == "probe"}, destination: {ports: [${port}]}}]\n  egress: [{action: Allow, protocol: TCP, destination: {ports: [${port}]}}]\n`;
  }
  return y;
}

/** Policies that select none of the two pods, ordered before the probes' (a per-tier layout would check each): one covering every other local pod, then n-1 covering a few each. */
function unrelatedPolicies(n: number): string {
  let y = `---\napiVersion: tern.io/v1\nkind: NetworkPolicy\nmetadata: {name: other-all, namespace: other}\nspec:\n  order: 0\n  selector: all()\n  ingress: [{action: Allow, protocol: TCP, destination: {ports: [22]}}]\n  egress: [{action: Allow}]\n`;
  for (let i = 1; i < n; i++) {
    y += `---\napiVersion: tern.io/v1\nkind: NetworkPolicy\nmetadata: {name: u${i}, namespace: other}\nspec:\n  order: ${i}\n  selector: app == "o${i % OTHER_PODS}"\n  ingress: [{action: Allow, protocol: TCP, source: {selector: app == "o${(i + 1) % OTHER_PODS}"}, destination: {ports: [${1000 + i}]}}]\n  egress: [{action: Deny, protocol: UDP}]\n`;
  }
  return y;
}

/** Endpoints of this node with no running workload: they shape the interface dispatch like real neighbours. */
function otherPods(): Resource[] {
  return Array.from({ length: OTHER_PODS }, (_, i) => {
    const e: Endpoint = { name: `o${i}`, namespace: 'other', labels: { app: `o${i}` }, ips: [`10.66.9.${i + 1}`], hostIface: `tern${shortHash(`${sb.prefix}/o${i}`, 11)}`, namedPorts: [] };
    return { kind: 'Endpoint', key: `other/o${i}`, value: e };
  });
}

/** The node's filter table with its packet counters. */
function listCounters(): ReturnType<typeof parseCounters> {
  return parseCounters(t.node.must(t.applier.backend === 'legacy' ? 'iptables-legacy' : 'iptables-nft', ['-t', 'filter', '-L', '-v', '-x', '-n']));
}

/** One SYN from src to dst:port, nothing else through the node; the kernel's count and the simulator's. */
async function count(port: number, groups: Partial<SimPacket> = {}): Promise<{ kernel: number; simulated: number; verdict: string }> {
  const src = t.pod('src');
  const dst = t.pod('dst');
  const rs = compileRuleset(t.lastInput);
  const sim = simulate(rs.v4, 'FORWARD', { src: src.spec.v4, dst: dst.spec.v4, inIface: src.ep.hostIface, outIface: dst.ep.hostIface, protocol: 6, dstPort: port, ...groups });
  for (let attempt = 0; ; attempt++) {
    const before = listCounters();
    // connect() sends one SYN; the socket is dropped before the first retransmit (1 s), and dst drops the SYN itself, so nothing answers.
    await src.ns.execAsync('node', ['-e', `const s=require('net').connect(${port},'${dst.spec.v4}');s.on('error',()=>{});setTimeout(()=>{s.destroy();process.exit(0)},300)`], { timeoutMs: 10_000 });
    await new Promise((r) => setTimeout(r, 100));
    const after = listCounters();
    const packets = hookPackets(before, after, 'FORWARD', 'tern-FORWARD');
    if (packets === 1) return { kernel: rulesTraversed(before, after, 'FORWARD'), simulated: sim.rulesTraversed, verdict: sim.verdict };
    if (attempt >= 4) throw new Error(`${packets} packets crossed FORWARD for one SYN`);
  }
}

beforeAll(async () => {
  t = await AclTopology.create(sb, [
    { name: 'src', namespace: 'probe', labels: { role: 'probe' }, v4: '10.66.1.10' },
    { name: 'dst', namespace: 'probe', labels: { role: 'probe' }, v4: '10.66.1.20' },
  ]);
  t.base = otherPods();
  // dst drops what reaches it on the probed ports (inside its own namespace): no answer crosses the node.
  for (const p of [SYN_PORT, DENIED_PORT, OUT_ONLY_PORT]) t.pod('dst').ns.must('iptables', ['-I', 'INPUT', '-p', 'tcp', '--dport', String(p), '-j', 'DROP']);
}, 120_000);

afterAll(async () => {
  await t?.dispose();
  await sb.cleanup();
});

describe('rules per new connection, counted by the kernel', () => {
  const seen: Record<string, number> = {};
  const seenDenied: Record<string, number> = {};
  for (const unrelated of [10, 300]) {
    it(`${unrelated} unrelated policies: the SYN's kernel count equals the simulator's`, async () => {
      await t.apply(probePolicies() + unrelatedPolicies(unrelated));
      const ok = await count(SYN_PORT);
      expect(ok.verdict).toBe('accept');
      expect(ok.kernel).toBe(ok.simulated);
      expect((await count(OUT_ONLY_PORT)).verdict).toBe('drop');
      const denied = await count(DENIED_PORT);
      expect(denied.verdict).toBe('drop');
      expect(denied.kernel).toBe(denied.simulated);
      seen[unrelated] = ok.kernel;
      seenDenied[unrelated] = denied.kernel;
      console.info(`${unrelated} unrelated policies: ${ok.kernel} rules for an allowed SYN, ${denied.kernel} for a denied one (kernel counters = simulator)`);
      // 42 local pods, five policies on each side: the issue's budget.
      expect(ok.kernel).toBeLessThanOrEqual(50);
    });
  }
  it('a destination veth without its device group (an older version made it) still meets its policies: same verdicts, kernel = simulator', async () => {
    const host = t.pod('dst').ep.hostIface;
    t.node.ip('link', 'set', host, 'group', '0');
    try {
      for (const [port, verdict] of [[SYN_PORT, 'accept'], [OUT_ONLY_PORT, 'drop'], [DENIED_PORT, 'drop']] as const) {
        const r = await count(port, { outGroup: 0 });
        expect(r.verdict).toBe(verdict);
        expect(r.kernel).toBe(r.simulated);
      }
    } finally {
      t.node.ip('link', 'set', host, 'group', String(ifaceGroup(host)));
    }
  });
  it('unrelated policies do not change the count', () => {
    expect(Object.keys(seen)).toHaveLength(2);
    expect(seen[10]).toBe(seen[300]);
    expect(seenDenied[10]).toBe(seenDenied[300]);
  });
});
