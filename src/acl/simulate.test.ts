import { describe, it, expect } from 'vitest';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { parsePolicyText, type Resource } from './parse';
import { compileRuleset, OVERLAY_IFACE, VLAN_BRIDGES } from './compile';
import { explainPacket } from './explain';
import { VTEP_NAME } from '../overlay/plan';
import { vlanNames } from '../overlay/vlan-plan';
import { simulate, type SimPacket } from './simulate';
import { toInput } from './state';
import type { Endpoint } from './model';

const GOLDEN = path.join(__dirname, '__golden__');
const PACKETS = [
  { protocol: 6, dstPort: 80 },
  { protocol: 6, dstPort: 443 },
  { protocol: 6, dstPort: 5432 },
  { protocol: 6, dstPort: 5433 },
  { protocol: 6, dstPort: 6005 },
  { protocol: 6, dstPort: 6007 },
  { protocol: 6, dstPort: 8080 },
  { protocol: 17, dstPort: 5005 },
  { protocol: 17, dstPort: 53 },
  { protocol: 132, dstPort: 9 },
  { protocol: 1, icmpType: 8, icmpCode: 0 },
  { protocol: 1, icmpType: 0, icmpCode: 0 },
];

describe('compiled chains agree with explain on every pod pair and packet', () => {
  for (const f of fs.readdirSync(GOLDEN).filter((x) => x.endsWith('.yaml'))) {
    it(f, () => {
      const input = toInput(parsePolicyText(fs.readFileSync(path.join(GOLDEN, f), 'utf8'), f));
      const rs = compileRuleset(input);
      let checked = 0;
      for (const a of input.endpoints)
        for (const b of input.endpoints) {
          if (a === b) continue;
          for (const p of PACKETS) {
            const src = a.ips.find((x) => !x.includes(':'))!.split('/')[0];
            const dst = b.ips.find((x) => !x.includes(':'))!.split('/')[0];
            const sim = simulate(rs.v4, 'FORWARD', { src, dst, inIface: a.hostIface, outIface: b.hostIface, ...p });
            const ex = explainPacket(input, { src, dst, protocol: p.protocol, dstPort: p.dstPort, icmp: p.icmpType === undefined ? undefined : { type: p.icmpType, code: p.icmpCode! } });
            expect(`${a.name}->${b.name} ${JSON.stringify(p)} ${sim.verdict}`).toBe(`${a.name}->${b.name} ${JSON.stringify(p)} ${ex.verdict === 'allow' ? 'accept' : 'drop'}`);
            checked++;
          }
        }
      expect(checked).toBeGreaterThan(20);
    });
  }

  it('fails closed and stops spoofed sources', () => {
    const input = toInput(parsePolicyText(fs.readFileSync(path.join(GOLDEN, 'k8s-basic.yaml'), 'utf8'), 'k'));
    const rs = compileRuleset(input);
    expect(simulate(rs.v4, 'FORWARD', { src: '10.0.0.11', dst: '10.0.0.10', inIface: 'tern9999999999', outIface: 'tern0000000000a', protocol: 6, dstPort: 80 }).verdict).toBe('drop');
    expect(simulate(rs.v4, 'FORWARD', { src: '10.0.0.99', dst: '10.0.0.10', inIface: 'tern0000000000b', outIface: 'tern0000000000a', protocol: 6, dstPort: 80 }).verdict).toBe('drop');
    expect(simulate(rs.v4, 'INPUT', { src: '10.0.0.10', dst: '192.0.2.1', inIface: 'tern0000000000a', protocol: 6, dstPort: 22 }).verdict).toBe('accept');
  });

  it('the VXLAN VTEP and the VLAN bridges are no workloads: remote and VLAN pods pass their side, the local side is still judged', () => {
    expect(OVERLAY_IFACE).toBe(VTEP_NAME);
    expect(vlanNames({ pool: { vlanId: 100, parent: 'eth1' } as never, containerId: 'c', ifName: 'eth0' }).bridge.startsWith(VLAN_BRIDGES.slice(0, -1))).toBe(true);
    const all = parsePolicyText(fs.readFileSync(path.join(GOLDEN, 'k8s-basic.yaml'), 'utf8'), 'k');
    const withPolicy = compileRuleset(toInput(all)).v4;
    const endpointsOnly = compileRuleset(toInput(all.filter((r) => r.kind === 'Endpoint'))).v4;
    const remoteTo = (dst: string, outIface: string): SimPacket => ({ src: '10.9.9.9', dst, inIface: VTEP_NAME, outIface, protocol: 6, dstPort: 80 });
    const toRemote = (src: string, inIface: string): SimPacket => ({ src, dst: '10.9.9.9', inIface, outIface: VTEP_NAME, protocol: 6, dstPort: 80 });
    const cases: [string, typeof withPolicy, SimPacket, 'FORWARD' | 'INPUT', 'accept' | 'drop'][] = [
      ['remote pod -> local pod, no policy', endpointsOnly, remoteTo('10.0.0.11', 'tern0000000000b'), 'FORWARD', 'accept'],
      ['remote pod -> local pod whose policy allows it (ipBlock)', withPolicy, remoteTo('10.0.0.10', 'tern0000000000a'), 'FORWARD', 'accept'],
      ['remote pod -> local pod under deny-all', withPolicy, remoteTo('10.0.0.11', 'tern0000000000b'), 'FORWARD', 'drop'],
      ['remote pod -> an unknown local interface', endpointsOnly, remoteTo('10.0.0.11', 'tern9999999999'), 'FORWARD', 'drop'],
      ['local pod -> remote pod, no policy', endpointsOnly, toRemote('10.0.0.11', 'tern0000000000b'), 'FORWARD', 'accept'],
      ['local pod under deny-all -> remote pod', withPolicy, toRemote('10.0.0.11', 'tern0000000000b'), 'FORWARD', 'drop'],
      ['local pod, forged source -> remote pod', endpointsOnly, toRemote('10.0.0.99', 'tern0000000000b'), 'FORWARD', 'drop'],
      ['VLAN pod (bridged) -> its router', withPolicy, { src: '10.100.0.5', dst: '10.100.0.1', inIface: 'ternbr100', outIface: 'ternbr100', protocol: 6, dstPort: 80 }, 'FORWARD', 'accept'],
      ['VLAN pod -> this node', withPolicy, { src: '10.100.0.5', dst: '192.0.2.1', inIface: 'ternbr100', protocol: 6, dstPort: 8080 }, 'INPUT', 'accept'],
      ['remote pod -> this node', withPolicy, { src: '10.9.9.9', dst: '192.0.2.1', inIface: VTEP_NAME, protocol: 6, dstPort: 8080 }, 'INPUT', 'accept'],
    ];
    for (const [name, rs, pkt, hook, want] of cases) expect(simulate(rs, hook, pkt).verdict, name).toBe(want);
  });
});

describe('rules traversed per packet', () => {
  const policies = parsePolicyText(fs.readFileSync(path.join(GOLDEN, 'tern-tiers.yaml'), 'utf8'), 't').filter((r) => r.kind !== 'Endpoint');
  const pods = (n: number): Resource[] =>
    Array.from({ length: n }, (_, i) => {
      const e: Endpoint = { name: `p${i}`, namespace: i % 2 ? 'red' : 'blue', labels: { role: i % 3 ? 'app' : 'db' }, ips: [`10.8.${i >> 8}.${i & 255}`], hostIface: `tern${String(i).padStart(11, '0')}`, namedPorts: [] };
      return { kind: 'Endpoint', key: `${e.namespace}/${e.name}`, value: e };
    });
  const count = (rs: ReturnType<typeof compileRuleset>) =>
    simulate(rs.v4, 'FORWARD', { src: '10.8.0.1', dst: '10.8.0.3', inIface: 'tern00000000001', outIface: 'tern00000000003', protocol: 6, dstPort: 5432 }).rulesTraversed;
  /** Policies that select none of the pods above (another namespace), each with an ingress and an egress rule. */
  const unrelated = (n: number): Resource[] =>
    parsePolicyText(
      Array.from({ length: n }, (_, i) => `---\napiVersion: tern.io/v1\nkind: NetworkPolicy\nmetadata: {name: u${i}, namespace: other}\nspec:\n  selector: app == "u${i}"\n  ingress: [{action: Allow, protocol: TCP, destination: {ports: [${1000 + i}]}}]\n  egress: [{action: Allow}]\n`).join(''),
      'u',
    );
  it('does not grow with unrelated policies', () => {
    const counts = [0, 10, 300].map((n) => count(compileRuleset(toInput([...policies, ...unrelated(n), ...pods(100)]))));
    expect(counts[0]).toBeGreaterThan(5);
    expect(new Set(counts).size).toBe(1);
  });
  it('grows with the pod count only by the interface dispatch, a prefix tree of at most 16 rules per hex digit', () => {
    const counts = [10, 100, 2000].map((n) => count(compileRuleset(toInput([...policies, ...pods(n)]))));
    // 10 pods: names differ in the last digit; 100: last two; 2000: last three. Each extra digit adds one
    // tree level in each direction, at most 16 rules (one per digit value) each.
    expect(counts[1] - counts[0]).toBeLessThanOrEqual(2 * 16);
    expect(counts[2] - counts[1]).toBeLessThanOrEqual(2 * 16);
    expect(counts[2]).toBeLessThan(100);
  });
});
